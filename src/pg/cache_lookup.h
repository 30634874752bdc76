// One use of the result cache, shared by cached_query() and the transparent
// path (transparent_scan.cpp): the same bypasses, the same key, the same
// L1 -> Redis -> coalescing lookup and the same store, so a statement served
// transparently is exactly as fresh as the cached_query call that would
// have run it. The order of the steps is what makes it correct (see
// cached_query.cpp and generations.cpp): the generations are read (key) before
// the snapshot the rows come from on a miss is taken.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pg/query_plan.h"
#include "pg/query_stats.h"

namespace cachekit::pg {

struct CacheCall {
  QueryCall call{Outcome::kMiss, Bypass::kCount, 0, 0, 0, 0};
  bool use_cache = true;
  bool l1_on = false;
  std::string key;
  // The lease of `key` (leases.h), released when the call ends however it
  // ends: waiters then look in Redis or run it themselves.
  bool lease_held = false;
  // The result was stored in Redis: a session that missed before it and asks
  // for the lease after it was released looks again (leases.h).
  bool stored = false;
  // An error reply of Redis (LOADING, READONLY, MISCONF...) is a bypass, not
  // an error of the statement: the application's own SQL must not fail
  // because of the cache (unless cachekit.strict). cached_query raises.
  bool lenient = false;
  // What the key holds besides generations and parameters (role, session
  // user, settings), as key material: a store checks it is unchanged (a
  // cursor's rows are read after its key was built, maybe under another SET).
  std::string context;
  CacheCall() = default;
  CacheCall(const CacheCall &) = delete;
  CacheCall &operator=(const CacheCall &) = delete;
  ~CacheCall();
  void bypass(Bypass why);
  void release();  // the lease, now
};

// Step 2: should this call use the cache at all? (uncacheable, hot standby,
// REPEATABLE READ, the transaction wrote a dependency, a prepared
// transaction in doubt). need_spi connects SPI when the first call after a
// restart must read pg_prepared_xacts.
void check_bypasses(CacheCall &c, const PreparedQuery &q, const std::function<void()> &need_spi);

// Steps 3-4: the generations (before any snapshot of the rows exists) and
// the key. params: the parameters' text, in the types q.param_types names.
void build_query_key(CacheCall &c, const PreparedQuery &q,
                     const std::vector<std::optional<std::string>> &params, const std::string &ns);

// Step 6: L1, then Redis (a hit fills L1), then coalescing with a session
// running the same key. serve(stored) decodes a stored result and returns
// false when it cannot (then it is a miss). Sets c.call.outcome to kHit, or
// bypasses with kRedisUnavailable.
void look_up(CacheCall &c, const std::function<bool(const std::string &)> &serve);

// Step 7: the result under the key, in Redis and L1, for ttl seconds.
void store_result(CacheCall &c, const std::string &value, int ttl);

// What CacheCall::context holds, for the current role and settings.
std::string key_context(const PreparedQuery &q);

// The ttl a result is stored for: given, else the namespace's, else
// cachekit.default_ttl; capped by cachekit.max_ttl. Reads
// cachekit.namespace_ttls through SPI (connected by the caller) when needed.
int result_ttl(std::optional<int> ttl, const std::string &ns);

// For the tests of the races: waits on an advisory lock at a named point
// (DebugPausePoint).
void debug_pause(int point);

// "hit", "miss" or "bypass:<reason>"; last_outcome is the session's last
// call's (cached_query or transparent), for cachekit.last_outcome().
std::string outcome_text(const QueryCall &call);
extern std::string last_outcome;

// The settings every key includes, by name (cachekit.explain shows them).
std::vector<std::string> key_setting_names();
// The names in cachekit.key_settings (comma-separated, trimmed), in order.
std::vector<std::string> key_settings_listed();

// Output functions of the columns, for encoding rows (RowEncoder).
std::vector<Oid> output_functions(const std::vector<Oid> &types);

}  // namespace cachekit::pg
