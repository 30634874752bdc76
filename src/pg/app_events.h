// Trigger-driven invalidation for applications: the commit and subcommit
// callbacks around this transaction's change set (core/change_set.h). They
// decide when what the change set holds is made durable in the outbox
// (only when needed: see app_events.cpp) and deliver it right after commit.
// The key rules' capture triggers (key_capture.cpp) and the invalidation
// trigger (invalidation.cpp) fill the change set; the relay (worker/)
// delivers what the backend could not.
#pragma once

#include <cstdint>

#include "core/change_set.h"
#include "pg/relay_state.h"  // worker/launcher.cpp reaches the relay state through here

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

void install_app_event_callbacks();

// The change set of the current transaction.
ChangeSet &transaction_changes();
// The record of relid at the current subtransaction level, named. May throw.
TableChange &changed_table(Oid relid);

// From the invalidation trigger of a watched table (op: one TableOp).
void note_statement(Oid relid, uint8_t op);

}  // namespace cachekit::pg
