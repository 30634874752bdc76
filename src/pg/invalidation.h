// The writer side of cached_query: tables changed by the current transaction,
// recorded by the invalidation trigger (and by DDL and manual invalidation), and
// bumped in shared memory once the commit is visible.
#pragma once

#include <cstdint>
#include <vector>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

// Registers the transaction callbacks; called from _PG_init.
void install_invalidation_callbacks();

// relid followed by every table it inherits from (partition parents included).
std::vector<Oid> table_and_ancestors(Oid relid);

// Records relid and its ancestors for a bump at commit. May throw.
void note_table_changed(Oid relid);
// cachekit.invalidate() of relid, which may have been dropped by this
// transaction: a table that no longer exists gets no generation entry of
// its own (see bump_existing_generation). May throw.
void note_table_invalidated(Oid relid);
// Records a database-wide bump at commit.
void note_database_changed();

// Per-value invalidation of tables watched by a column (value_trigger.cpp,
// value_generations.cpp): the value-bucket slots this transaction changed,
// bumped at commit with the table generations. Beyond kMaxValueSlots
// distinct slots of one table, or after note_structural, the table's
// structural generation is bumped instead. note_value_slot returns false
// once the table is structural in this transaction: later rows need not be
// hashed. Both may throw.
constexpr size_t kMaxValueSlots = 1024;
bool note_value_slot(Oid relid, uint32_t slot);
void note_structural(Oid relid);
bool structural_in_transaction(Oid relid);

// Has the current transaction changed `relid` (or the whole database)?
bool changed_in_transaction(Oid relid);
bool any_change_in_transaction();

}  // namespace cachekit::pg
