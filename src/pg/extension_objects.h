// The objects of pg_cachekit in the current database, found through the
// catalogs (pg_extension, pg_depend), never through name resolution: code
// that runs with more rights than the database's users (the relay, health())
// must act only on what the extension created, whatever else someone named
// "cachekit.outbox".
#pragma once

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

struct ExtensionObjects {
  Oid extension = InvalidOid;
  Oid owner = InvalidOid;           // pg_extension.extowner
  Oid outbox = InvalidOid;          // cachekit.outbox
  Oid key_rules = InvalidOid;       // cachekit._key_rules
  Oid tasks = InvalidOid;           // cachekit._tasks
  Oid queues = InvalidOid;          // cachekit._queues
  Oid schedules = InvalidOid;       // cachekit._schedules
  Oid cdn_queue = InvalidOid;       // cachekit._cdn_queue
  Oid cdn_batches = InvalidOid;     // cachekit._cdn_batches
  Oid cdn_providers = InvalidOid;   // cachekit._cdn_providers
  Oid caches = InvalidOid;          // cachekit._caches (transparent caching's registry)
  Oid namespace_ttls = InvalidOid;  // cachekit.namespace_ttls
};

// Looks pg_cachekit up in this database (inside a transaction). Tables that
// are not members of the extension (pg_depend deptype 'e') or not ordinary
// tables stay InvalidOid. Plain Postgres calls that may ereport: call through
// pg_call from C++.
ExtensionObjects find_extension_objects();

// The schema-qualified, quoted name of a relation, for SQL text (palloc'd).
const char *qualified_name(Oid relid);

}  // namespace cachekit::pg
