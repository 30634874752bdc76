#include "pg/extension_objects.h"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace cachekit::pg {

namespace {

// A table of the extension's own schema that the extension created.
Oid member_table(Oid extension, Oid schema, const char *name) {
  Oid relid = get_relname_relid(name, schema);
  if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_RELATION) return InvalidOid;
  return getExtensionOfObject(RelationRelationId, relid) == extension ? relid : InvalidOid;
}

}  // namespace

ExtensionObjects find_extension_objects() {
  ExtensionObjects o;
  o.extension = get_extension_oid("pg_cachekit", true);
  if (!OidIsValid(o.extension)) return o;
  Oid schema = InvalidOid;
  Relation rel = table_open(ExtensionRelationId, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
              ObjectIdGetDatum(o.extension));
  SysScanDesc scan = systable_beginscan(rel, ExtensionOidIndexId, true, nullptr, 1, &key);
  HeapTuple tup = systable_getnext(scan);
  if (HeapTupleIsValid(tup)) {
    auto *ext = reinterpret_cast<Form_pg_extension>(GETSTRUCT(tup));
    o.owner = ext->extowner;
    schema = ext->extnamespace;
  }
  systable_endscan(scan);
  table_close(rel, AccessShareLock);
  if (!OidIsValid(o.owner)) return ExtensionObjects{};
  o.outbox = member_table(o.extension, schema, "outbox");
  o.key_rules = member_table(o.extension, schema, "_key_rules");
  o.tasks = member_table(o.extension, schema, "_tasks");
  o.queues = member_table(o.extension, schema, "_queues");
  o.schedules = member_table(o.extension, schema, "_schedules");
  o.cdn_queue = member_table(o.extension, schema, "_cdn_queue");
  o.cdn_batches = member_table(o.extension, schema, "_cdn_batches");
  o.cdn_providers = member_table(o.extension, schema, "_cdn_providers");
  o.caches = member_table(o.extension, schema, "_caches");
  o.namespace_ttls = member_table(o.extension, schema, "namespace_ttls");
  return o;
}

const char *qualified_name(Oid relid) {
  char *schema = get_namespace_name(get_rel_namespace(relid));
  char *rel = get_rel_name(relid);
  if (schema == nullptr || rel == nullptr) elog(ERROR, "relation %u has disappeared", relid);
  return quote_qualified_identifier(schema, rel);
}

}  // namespace cachekit::pg
