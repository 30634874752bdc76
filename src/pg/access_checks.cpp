#include <algorithm>
#include <string>
#include <vector>

#include "pg/access_checks.h"

#include "core/error.h"
#include "pg/boundary.h"

extern "C" {
#include "utils/rls.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace cachekit::pg {

namespace {

constexpr const char kAdminRole[] = "cachekit_admin";

// Postgres' own spelling of the table (regclass output), for messages.
std::string table_text(Oid relid) {
  return pg_call([&] { return DatumGetCString(DirectFunctionCall1(regclassout, relid)); });
}

std::string current_role_name() {
  return pg_call([] { return GetUserNameFromId(GetUserId(), false); });
}

// Has relid the statement trigger cachekit.watch() installs?
bool is_watched(Oid relid) {
  return pg_call([&] {
    bool found = false;
    Relation rel = table_open(TriggerRelationId, AccessShareLock);
    ScanKeyData key[2];
    ScanKeyInit(&key[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(relid));
    ScanKeyInit(&key[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber, F_NAMEEQ,
                CStringGetDatum("cachekit_invalidate"));
    SysScanDesc scan = systable_beginscan(rel, TriggerRelidNameIndexId, true, nullptr, 2, key);
    HeapTuple tup = systable_getnext(scan);
    if (HeapTupleIsValid(tup)) {
      Oid fn = ((Form_pg_trigger)GETSTRUCT(tup))->tgfoid;
      const char *name = get_func_name(fn);
      const char *ns = get_namespace_name(get_func_namespace(fn));
      found = name && ns && strcmp(name, "_invalidate") == 0 && strcmp(ns, "cachekit") == 0;
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return found;
  });
}

}  // namespace

void check_may_invalidate(Oid relid, Oid fn) {
  const bool trusted = pg_call([&] {
    if (superuser()) return true;
    HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
    if (!HeapTupleIsValid(tup)) return false;
    const bool owner = ((Form_pg_proc)GETSTRUCT(tup))->proowner == GetUserId();
    ReleaseSysCache(tup);
    return owner;
  });
  if (trusted) return;
  if (!pg_call([&] { return SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)); }))
    throw Error(sqlstate::kUndefinedTable,
                "relation with OID " + std::to_string(relid) + " does not exist");
  const bool allowed = pg_call([&] {
    return pg_class_ownercheck(relid, GetUserId()) ||
           has_privs_of_role(GetUserId(), get_role_oid(kAdminRole, true));
  });
  if (!allowed)
    throw Error(sqlstate::kInsufficientPrivilege,
                "permission denied to invalidate " + table_text(relid),
                "Only the table's owner and members of cachekit_admin may invalidate it; role " +
                    current_role_name() + " is neither.",
                "Write to the table instead, or ask its owner.");
  if (!is_watched(relid))
    throw Error(sqlstate::kObjectNotInPrerequisiteState,
                "table " + table_text(relid) + " is not watched",
                "Only watched tables have cached results to invalidate.",
                "Run SELECT cachekit.watch('" + table_text(relid) + "') first.");
}

void check_may_read_columns(Oid relid, const std::vector<std::string> &columns, const char *rule,
                            const char *names) {
  if (pg_call([&] { return pg_class_ownercheck(relid, GetUserId()); })) return;
  // Row-level security limits which rows the role may read, but a rule's
  // trigger sees every changed row: only the owner (or a role that bypasses
  // RLS) may turn them into key names.
  if (pg_call([&] { return check_enable_rls(relid, InvalidOid, true); }) == RLS_ENABLED)
    throw Error(sqlstate::kInsufficientPrivilege,
                "permission denied to create " + std::string(rule) + " on " + table_text(relid),
                "Row-level security limits the rows role " + current_role_name() +
                    " may read, but " + rule + " publishes values of every changed row.",
                "Let the table's owner create the rule.");
  const bool whole_table =
      pg_call([&] { return pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK; });
  if (whole_table) return;
  // Without columns the rule still reports that rows changed: that needs the
  // table, not a column.
  std::vector<std::string> denied;
  for (const std::string &column : columns) {
    const bool readable = pg_call([&] {
      AttrNumber attnum = get_attnum(relid, column.c_str());
      return attnum == InvalidAttrNumber ||
             pg_attribute_aclcheck(relid, attnum, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
    });
    if (!readable && std::find(denied.begin(), denied.end(), column) == denied.end())
      denied.push_back(column);
  }
  if (denied.empty() && !columns.empty()) return;
  std::string what = "the table";
  if (!denied.empty()) {
    what = "column";
    if (denied.size() > 1) what += "s";
    for (size_t i = 0; i < denied.size(); ++i) what += (i == 0 ? " " : ", ") + denied[i];
  }
  throw Error(sqlstate::kInsufficientPrivilege,
              "permission denied to create " + std::string(rule) + " on " + table_text(relid),
              "A" + std::string(rule + 1) + " publishes the values of the columns it uses in " +
                  std::string(names) + "; role " + current_role_name() + " may not read " + what +
                  ".",
              "Grant the role SELECT on them, or let the table's owner create the rule.");
}

}  // namespace cachekit::pg
