// Per-backend prepared queries of cached_query: the hit path must not parse,
// analyse or plan, so each distinct (query text, search_path, role,
// depends_on) is prepared once and kept with what the key needs: parameter
// types, the tables it depends on, a digest of the analysed query, and
// whether (and why) it cannot be cached. Entries are dropped on relcache,
// function and role invalidations.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "executor/spi.h"
}

namespace cachekit::pg {

struct PreparedQuery {
  SPIPlanPtr plan = nullptr;  // kept (SPI_keepplan)
  std::vector<Oid> param_types;
  std::vector<Oid> result_types;
  std::vector<Oid> deps;        // tables, with their ancestors
  bool row_security = false;    // RLS applies to a dependency for this role
  bool reads_settings = false;  // calls current_setting()
  std::string analysed_digest;  // hex SHA-256 of the rewritten query tree
  uint64_t fingerprint = 0;     // of the query text, for query_stats
  // Set when the query cannot be cached safely.
  bool uncacheable = false;
  std::string reason, detail, hint;
};

// The prepared form of `query`. Throws cachekit::Error / PgError for queries
// that do not parse or are not a single SELECT-like statement.
// connect_spi is called before anything that needs SPI (only when the query
// is not prepared yet).
PreparedQuery &prepare_query(const std::string &query, const std::vector<Oid> &depends_on,
                             const std::function<void()> &connect_spi);

// cached_query calls in progress in this backend (nesting depth); kept by
// CallDepth in cached_query.cpp.
extern int active_calls;

// Registers the invalidation callbacks; from _PG_init.
void install_plan_cache_callbacks();

// SHA-256 of bytes, as 64 hex digits (Postgres' own cryptohash).
std::string sha256_hex(const std::string &bytes);

}  // namespace cachekit::pg
