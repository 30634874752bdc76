#include "pg/owner_query.h"

#include "pg/boundary.h"

extern "C" {
#include "postgres.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
}

namespace cachekit::pg {

namespace {

// Restores the caller's user on every way out (a PgError included).
class AsOwner {
 public:
  explicit AsOwner(Oid owner) {
    GetUserIdAndSecContext(&user_, &sec_);
    SetUserIdAndSecContext(owner,
                           sec_ | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  }
  ~AsOwner() { SetUserIdAndSecContext(user_, sec_); }
  AsOwner(const AsOwner &) = delete;
  AsOwner &operator=(const AsOwner &) = delete;

 private:
  Oid user_;
  int sec_;
};

}  // namespace

std::vector<OwnerRow> owner_rows(
    const std::function<std::string(const ExtensionObjects &)> &sql_for) {
  std::vector<OwnerRow> out;
  ExtensionObjects ext = pg_call([] { return find_extension_objects(); });
  if (!OidIsValid(ext.owner)) return out;
  std::string sql = sql_for(ext);
  if (sql.empty()) return out;
  AsOwner as_owner(ext.owner);
  // As a function's SET clause does: the caller's search_path must not
  // resolve an operator or function of the statement (it runs as the owner).
  int nest = pg_call([] {
    int level = NewGUCNestLevel();
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                            GUC_ACTION_SAVE, true, 0, false);
    return level;
  });
  pg_call([] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  });
  const char *text = sql.c_str();
  int ret = pg_call([&] { return SPI_execute(text, true, 0); });
  if (ret == SPI_OK_SELECT) {
    uint64 n = SPI_processed;
    for (uint64 i = 0; i < n; ++i) {
      OwnerRow row;
      int natts = SPI_tuptable->tupdesc->natts;
      for (int c = 1; c <= natts; ++c) {
        char *v =
            pg_call([&] { return SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c); });
        row.push_back(v ? std::optional<std::string>(v) : std::nullopt);
      }
      out.push_back(std::move(row));
    }
  }
  pg_call([&] {
    SPI_finish();
    AtEOXact_GUC(true, nest);
  });
  return out;
}

}  // namespace cachekit::pg
