#include "pg/spi_text.h"

#include <unordered_map>

#include "pg/boundary.h"

extern "C" {
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/lsyscache.h"
}

namespace cachekit::pg {

std::vector<SpiRow> spi_text_query(const std::string &text, const std::vector<Oid> &types,
                                   const std::vector<std::optional<std::string>> &args) {
  static std::unordered_map<std::string, SPIPlanPtr> plans;
  auto it = plans.find(text);
  if (it == plans.end()) {
    SPIPlanPtr plan = pg_call([&] {
      SPIPlanPtr p = SPI_prepare(text.c_str(), static_cast<int>(types.size()),
                                 const_cast<Oid *>(types.data()));
      if (p == nullptr) elog(ERROR, "pg_cachekit: SPI_prepare failed: %s", text.c_str());
      SPI_keepplan(p);
      return p;
    });
    it = plans.emplace(text, plan).first;
  }
  pg_call([&] {
    int n = static_cast<int>(args.size());
    Datum *values = static_cast<Datum *>(palloc0(sizeof(Datum) * (n + 1)));
    char *nulls = static_cast<char *>(palloc0(n + 1));
    for (int i = 0; i < n; ++i) {
      nulls[i] = args[i] ? ' ' : 'n';
      if (args[i]) {
        Oid in;
        Oid ioparam;
        getTypeInputInfo(types[i], &in, &ioparam);
        values[i] = OidInputFunctionCall(in, const_cast<char *>(args[i]->c_str()), ioparam, -1);
      }
    }
    int ret = SPI_execute_plan(it->second, values, nulls, false, 0);
    if (ret < 0) elog(ERROR, "pg_cachekit: SPI error %d", ret);
  });
  std::vector<SpiRow> rows;
  for (uint64 r = 0; SPI_tuptable != nullptr && r < SPI_processed; ++r) {
    SpiRow row;
    for (int c = 1; c <= SPI_tuptable->tupdesc->natts; ++c) {
      char *v =
          pg_call([&] { return SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c); });
      row.push_back(v ? std::optional<std::string>(v) : std::nullopt);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace cachekit::pg
