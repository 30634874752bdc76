// Trigger-driven invalidation for applications: the per-transaction record
// of changed watched tables and of the application keys their key rules
// produce, the durable outbox row written before commit, and the delivery
// right after commit. The background worker (worker/) delivers what the
// backend could not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pg/relay_state.h"

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

enum TableOp : uint8_t { kOpInsert = 1, kOpUpdate = 2, kOpDelete = 4, kOpTruncate = 8 };

void install_app_event_callbacks();

// From the statement trigger of a watched table (op: one TableOp).
void note_statement(Oid relid, uint8_t op);

}  // namespace cachekit::pg
