// Randomized consistency checker for cachekit.cached_query.
//
//   cachekit_consistency --writers 3 --readers 3 --ops 2000 --seed 42
//                        [--rows 20] [--writer-pause-us 200] [--direct] [--fake-stale]
//                        [--watch-by id [--bucket-width N]] [--transparent]
//
// Connects with the usual PG* environment variables. Writer threads increment
// counters in consistency.items (in several transaction shapes, some rolled
// back); reader threads read one counter, or the sum of all, through
// cachekit.cached_query. Every commit is recorded with the steady_clock time
// just before COMMIT was sent and just after it returned; every read with the
// time just before it was sent and just after its result arrived. Afterwards
// each read is checked against that history:
//
//   stale:    a read must see at least every commit that had finished before
//             it started (v >= the highest v committed for the id; sum >= the
//             number of increments committed);
//   phantom:  a read must not see more than was committed by transactions
//             whose COMMIT had been sent before the read finished (catches
//             rolled-back or not-yet-committed data leaking through the cache).
//
// Writers also read through cached_query inside their own transaction after
// an update and expect to see their own write (own_write_violations). The op
// sequence of every thread depends only on --seed; readers repeat a query 1-4
// times back to back (so the cache can hit) and, between such bursts, keep
// pace with the writers' progress, and writers pause between transactions:
// half the time not at all, else 0..4x --writer-pause-us (default 1000).
//
// --direct runs the inner queries without cached_query (a plain server
// without pg_cachekit suffices; cachekit.watch is skipped). --fake-stale makes
// readers answer repeated queries from a client-side memo that is never
// invalidated: a deliberately broken cache, to prove the checker can fail.
// --watch-by id watches the table by its id column (per-value invalidation:
// single-id reads then depend on their id's bucket only, sums on the whole
// table), with --bucket-width N on ranges of N ids. --transparent sends the
// inner queries as they are (extended protocol, $1 bound), to be served by
// transparent caching: run it with PGOPTIONS='-c cachekit.transparent=all'.
//
// Exit status: 0 when every read checked out and no SQL error occurred
// (setup included), 1 otherwise, 2 for a usage error.
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// A rolled-back transaction adds this much, so that any read showing it is
// certainly a phantom (committed transactions only ever add 1).
constexpr int64_t kRollbackDelta = 1000000;
constexpr size_t kMaxReported = 10;

struct Options {
  int writers = 3;
  int readers = 3;
  long ops = 2000;
  uint64_t seed = 42;
  int rows = 20;
  int writer_pause_us = 1000;
  bool direct = false;
  bool fake_stale = false;
  bool transparent = false;  // plain queries, served by cachekit.transparent
  std::string watch_by;      // empty: watch the whole table
  std::string bucket_width;  // with watch_by
};

[[noreturn]] void usage(const char *msg) {
  if (msg) fprintf(stderr, "cachekit_consistency: %s\n", msg);
  fprintf(stderr,
          "usage: cachekit_consistency --writers N --readers N --ops N --seed N\n"
          "                            [--rows N] [--writer-pause-us N (1000)] [--direct] "
          "[--fake-stale] [--transparent]\n"
          "                            [--watch-by id|v [--bucket-width N]]\n"
          "Connects using the PG* environment variables.\n");
  exit(2);
}

long parse_long(const char *name, const char *text, long min, long max) {
  char *end = nullptr;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
    std::string msg = std::string("invalid value for ") + name + ": " + text;
    usage(msg.c_str());
  }
  return v;
}

Options parse_args(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char * {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--writers") {
      o.writers = static_cast<int>(parse_long("--writers", value(), 0, 1000));
    } else if (a == "--readers") {
      o.readers = static_cast<int>(parse_long("--readers", value(), 0, 1000));
    } else if (a == "--ops") {
      o.ops = parse_long("--ops", value(), 0, 1000000000L);
    } else if (a == "--seed") {
      const char *t = value();
      char *end = nullptr;
      errno = 0;
      o.seed = strtoull(t, &end, 10);
      if (errno != 0 || end == t || *end != '\0' || *t == '-')
        usage((std::string("invalid value for --seed: ") + t).c_str());
    } else if (a == "--rows") {
      o.rows = static_cast<int>(parse_long("--rows", value(), 1, 10000000));
    } else if (a == "--writer-pause-us") {
      o.writer_pause_us = static_cast<int>(parse_long("--writer-pause-us", value(), 0, 1000000));
    } else if (a == "--direct") {
      o.direct = true;
    } else if (a == "--transparent") {
      o.transparent = true;
    } else if (a == "--fake-stale") {
      o.fake_stale = true;
    } else if (a == "--watch-by") {
      o.watch_by = value();
      if (o.watch_by != "id" && o.watch_by != "v") usage("--watch-by takes id or v");
    } else if (a == "--bucket-width") {
      o.bucket_width = std::to_string(parse_long("--bucket-width", value(), 1, 1000000));
    } else if (a == "--help" || a == "-h") {
      usage(nullptr);
    } else {
      usage(("unknown argument: " + a).c_str());
    }
  }
  if (o.writers + o.readers == 0 && o.ops > 0) usage("need at least one writer or reader");
  return o;
}

// --- libpq helpers -----------------------------------------------------------

struct ResultDeleter {
  void operator()(PGresult *r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn *c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;

std::string one_line(const char *s) {
  std::string out = s ? s : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  for (char &c : out)
    if (c == '\n') c = ' ';
  return out;
}

// Ok when the status is COMMAND_OK or TUPLES_OK; otherwise `error` says why.
struct Exec {
  Result res;
  std::string error;
  bool ok() const { return error.empty(); }
};

Exec run(PGconn *c, const char *sql, const std::vector<std::string> &params = {}) {
  std::vector<const char *> values;
  for (const std::string &p : params) values.push_back(p.c_str());
  Exec e;
  e.res.reset(PQexecParams(c, sql, static_cast<int>(values.size()), nullptr,
                           values.empty() ? nullptr : values.data(), nullptr, nullptr, 0));
  if (!e.res) {
    e.error = "no result: " + one_line(PQerrorMessage(c));
    return e;
  }
  ExecStatusType st = PQresultStatus(e.res.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    const char *state = PQresultErrorField(e.res.get(), PG_DIAG_SQLSTATE);
    e.error =
        std::string(state ? state : "?????") + " " + one_line(PQresultErrorMessage(e.res.get()));
    if (e.error.size() == 6) e.error += one_line(PQerrorMessage(c));
  }
  return e;
}

Conn connect_db(std::string &error) {
  Conn c(PQconnectdb("application_name=cachekit_consistency"));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    error = c ? one_line(PQerrorMessage(c.get())) : "out of memory";
    return nullptr;
  }
  // Keep NOTICEs (DROP ... IF EXISTS etc.) out of the output, and do not hang
  // forever if the server side does.
  for (const char *sql : {"SET client_min_messages = warning", "SET statement_timeout = '120s'"}) {
    Exec e = run(c.get(), sql);
    if (!e.ok()) {
      error = e.error;
      return nullptr;
    }
  }
  return c;
}

std::optional<int64_t> int_value(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col)) return std::nullopt;
  const char *t = PQgetvalue(r, row, col);
  char *end = nullptr;
  errno = 0;
  long long v = strtoll(t, &end, 10);
  if (errno != 0 || end == t || *end != '\0') return std::nullopt;
  return v;
}

// --- shared state ------------------------------------------------------------

// One committed (or possibly committed) increment of one row.
struct Commit {
  int id;
  int64_t v;       // the row's value after the increment
  TimePoint sent;  // just before COMMIT (or the autocommit statement) was sent
  TimePoint done;  // just after it returned
  bool certain;    // false: COMMIT's outcome is unknown (connection lost)
  int writer;
  long op;
};

enum class Outcome { kNone, kHit, kMiss, kBypass, kOther };

struct Read {
  bool is_sum;
  int id;  // for !is_sum
  int64_t value;
  TimePoint start;
  TimePoint end;
  Outcome outcome;
  std::string outcome_text;
  bool memo;  // --fake-stale: answered from the client-side memo
  int reader;
  long op;
};

struct Problem {
  TimePoint when;
  std::string text;
};

struct Shared {
  Options opt;
  std::mutex mu;
  std::vector<Commit> commits;
  std::vector<Read> reads;
  std::vector<Problem> sql_errors;
  std::vector<Problem> bad_results;
  std::vector<Problem> own_write_violations;
  long committed_txns = 0;
  long rolled_back_txns = 0;
  // Start gate: every thread connects first, then all start together.
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  int connected = 0;
  int failed_to_connect = 0;
  bool go = false;
  TimePoint t0;
  // Readers keep pace with the writers (never further through their share of
  // the ops than the writers are), so that reads cover the whole run.
  long writer_ops_total = 0;
  std::atomic<long> writer_ops_done{0};
  std::atomic<int> writers_running{0};

  void add_problem(std::vector<Problem> &list, std::string text) {
    std::lock_guard<std::mutex> g(mu);
    list.push_back({Clock::now(), std::move(text)});
  }
};

long long us_since(const Shared &s, TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t - s.t0).count();
}

// Registers this thread at the start gate and waits until all threads are
// there; returns whether this one has a connection to run with.
bool wait_for_start(Shared &s, bool connected_ok) {
  std::unique_lock<std::mutex> g(s.gate_mu);
  if (connected_ok)
    ++s.connected;
  else
    ++s.failed_to_connect;
  s.gate_cv.notify_all();
  s.gate_cv.wait(g, [&] { return s.go; });
  return connected_ok;
}

std::mt19937_64 thread_rng(uint64_t seed, int role, int index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(role), static_cast<uint32_t>(index)};
  return std::mt19937_64(seq);
}

// Uniform in [lo, hi], from the raw generator so that the sequence depends on
// nothing but the seed (distributions may differ between standard libraries).
long pick(std::mt19937_64 &rng, long lo, long hi) {
  uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  return lo + static_cast<long>(rng() % span);
}

const char *kSingleCached =
    "SELECT id, v FROM cachekit.cached_query("
    "'SELECT id, v FROM consistency.items WHERE id = $1', ARRAY[$1::text]) AS r(id int, v bigint)";
const char *kSingleDirect = "SELECT id, v FROM consistency.items WHERE id = $1";
const char *kSumCached =
    "SELECT s FROM cachekit.cached_query('SELECT sum(v)::bigint FROM consistency.items') "
    "AS r(s bigint)";
const char *kSumDirect = "SELECT sum(v)::bigint FROM consistency.items";

// Reads one row's value with the single-id query; nullopt (and `error` set)
// when the result is not exactly that row.
std::optional<int64_t> parse_single(const PGresult *r, int id, std::string &error) {
  if (PQntuples(r) != 1 || PQnfields(r) != 2) {
    error = "single-id read of id " + std::to_string(id) + " returned " +
            std::to_string(PQntuples(r)) + " rows of " + std::to_string(PQnfields(r)) +
            " columns, want 1 row of 2";
    return std::nullopt;
  }
  std::optional<int64_t> got_id = int_value(r, 0, 0);
  std::optional<int64_t> v = int_value(r, 0, 1);
  if (!got_id || *got_id != id || !v) {
    error = "single-id read of id " + std::to_string(id) + " returned (" +
            (PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0)) + ", " +
            (PQgetisnull(r, 0, 1) ? "NULL" : PQgetvalue(r, 0, 1)) + ")";
    return std::nullopt;
  }
  return v;
}

// --- writers -----------------------------------------------------------------

class Writer {
  bool plain() const { return s_.opt.direct || s_.opt.transparent; }

 public:
  Writer(Shared &s, int index, long ops) : s_(s), index_(index), ops_(ops) {
    rng_ = thread_rng(s.opt.seed, 1, index);
  }

  void operator()() {
    struct Done {
      Shared &s;
      ~Done() { s.writers_running.fetch_sub(1); }
    } done{s_};
    std::string error;
    conn_ = connect_db(error);
    if (!conn_) s_.add_problem(s_.sql_errors, "writer " + std::to_string(index_) + ": " + error);
    if (!wait_for_start(s_, conn_ != nullptr)) return;
    for (op_ = 0; op_ < ops_; ++op_) {
      if (PQstatus(conn_.get()) != CONNECTION_OK) {
        s_.add_problem(s_.sql_errors, where() + "connection lost, writer stops");
        return;
      }
      // Everything drawn up front, so the sequence depends on the seed only.
      long kind = pick(rng_, 0, 99);
      int a = static_cast<int>(pick(rng_, 1, s_.opt.rows));
      uint64_t b_raw = rng_();
      int b = a;  // a second id, distinct from a (when there is one)
      if (s_.opt.rows > 1) {
        b = 1 + static_cast<int>(b_raw % static_cast<uint64_t>(s_.opt.rows - 1));
        if (b >= a) ++b;
      }
      uint64_t pause_raw = rng_();
      // Half the time none (commits racing reads), else 0..4x: mean 1x.
      long pause = (pause_raw & 1)
                       ? 0
                       : static_cast<long>((pause_raw >> 1) % (4ull * s_.opt.writer_pause_us + 1));
      if (kind < 28) {
        explicit_update(a, false);
      } else if (kind < 40) {
        autocommit_update(a);
      } else if (kind < 55) {
        if (s_.opt.rows > 1)
          two_rows(std::min(a, b), std::max(a, b));
        else
          explicit_update(a, false);
      } else if (kind < 65) {
        rolled_back(a);
      } else if (kind < 80) {
        upsert(a);
      } else if (kind < 92) {
        select_then_update(a);
      } else {
        explicit_update(a, true);
      }
      s_.writer_ops_done.fetch_add(1);
      if (pause > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause));
    }
  }

 private:
  std::string where() const {
    return "writer " + std::to_string(index_) + " op " + std::to_string(op_) + ": ";
  }

  bool check(const Exec &e, const char *what) {
    if (e.ok()) return true;
    s_.add_problem(s_.sql_errors, where() + what + ": " + e.error);
    return false;
  }

  void abort_txn() {
    Exec e = run(conn_.get(), "ROLLBACK");
    check(e, "ROLLBACK");
  }

  bool begin() { return check(run(conn_.get(), "BEGIN"), "BEGIN"); }

  // UPDATE ... RETURNING v for one id; nullopt after an error.
  std::optional<int64_t> update(int id, int64_t delta, const char *what) {
    Exec e = run(conn_.get(), "UPDATE consistency.items SET v = v + $2 WHERE id = $1 RETURNING v",
                 {std::to_string(id), std::to_string(delta)});
    if (!check(e, what)) return std::nullopt;
    std::optional<int64_t> v;
    if (PQntuples(e.res.get()) == 1) v = int_value(e.res.get(), 0, 0);
    if (!v)
      s_.add_problem(s_.bad_results,
                     where() + what + " of id " + std::to_string(id) + " did not return one value");
    return v;
  }

  // Reads id through the readers' query (cached_query unless --direct) inside
  // the open transaction, which has just set it to `want`.
  bool read_own_write(int id, int64_t want) {
    Exec e = run(conn_.get(), plain() ? kSingleDirect : kSingleCached, {std::to_string(id)});
    if (!check(e, "read in own transaction")) return false;
    std::string error;
    std::optional<int64_t> v = parse_single(e.res.get(), id, error);
    if (!v) {
      s_.add_problem(s_.bad_results, where() + error + " (in own transaction)");
      return false;
    }
    if (*v != want) {
      s_.add_problem(s_.own_write_violations, where() + "after setting id " + std::to_string(id) +
                                                  " to " + std::to_string(want) +
                                                  " in its open transaction, the same transaction "
                                                  "read v=" +
                                                  std::to_string(*v));
    }
    return true;
  }

  // Sends COMMIT and records the increments on success.
  void commit(const std::vector<std::pair<int, int64_t>> &increments) {
    TimePoint sent = Clock::now();
    Exec e = run(conn_.get(), "COMMIT");
    TimePoint done = Clock::now();
    if (e.ok() && strcmp(PQcmdStatus(e.res.get()), "COMMIT") == 0) {
      record(increments, sent, done, true);
      return;
    }
    if (e.ok()) {
      s_.add_problem(s_.sql_errors, where() + "COMMIT answered " + PQcmdStatus(e.res.get()));
      return;
    }
    s_.add_problem(s_.sql_errors, where() + "COMMIT: " + e.error);
    // Lost connection: it may have committed. Such increments may explain
    // what readers saw, but nobody is required to see them.
    if (PQstatus(conn_.get()) != CONNECTION_OK) record(increments, sent, done, false);
  }

  void record(const std::vector<std::pair<int, int64_t>> &increments, TimePoint sent,
              TimePoint done, bool certain) {
    std::lock_guard<std::mutex> g(s_.mu);
    for (const auto &[id, v] : increments)
      s_.commits.push_back({id, v, sent, done, certain, index_, op_});
    if (certain) ++s_.committed_txns;
  }

  // BEGIN; UPDATE ... RETURNING v; [read it back]; COMMIT
  void explicit_update(int id, bool read_back) {
    if (!begin()) return;
    std::optional<int64_t> v = update(id, 1, "UPDATE");
    if (!v || (read_back && !read_own_write(id, *v))) return abort_txn();
    commit({{id, *v}});
  }

  // A single UPDATE outside a transaction block: it commits on its own.
  void autocommit_update(int id) {
    TimePoint sent = Clock::now();
    std::optional<int64_t> v = update(id, 1, "autocommit UPDATE");
    TimePoint done = Clock::now();
    if (v) record({{id, *v}}, sent, done, true);
  }

  // Two rows in one transaction, always in ascending id order so that
  // writers cannot deadlock each other.
  void two_rows(int lo, int hi) {
    if (!begin()) return;
    std::optional<int64_t> v1 = update(lo, 1, "UPDATE (first of two)");
    if (!v1) return abort_txn();
    std::optional<int64_t> v2 = update(hi, 1, "UPDATE (second of two)");
    if (!v2) return abort_txn();
    commit({{lo, *v1}, {hi, *v2}});
  }

  // A big increment that is rolled back: nobody may ever see it.
  void rolled_back(int id) {
    if (!begin()) return;
    std::optional<int64_t> v = update(id, kRollbackDelta, "UPDATE (to be rolled back)");
    if (v) read_own_write(id, *v);
    abort_txn();
    std::lock_guard<std::mutex> g(s_.mu);
    ++s_.rolled_back_txns;
  }

  // INSERT ... ON CONFLICT DO UPDATE: the row always exists, so it increments.
  void upsert(int id) {
    TimePoint sent = Clock::now();
    Exec e = run(conn_.get(),
                 "INSERT INTO consistency.items AS i (id, v) VALUES ($1, 1) "
                 "ON CONFLICT (id) DO UPDATE SET v = i.v + 1 RETURNING v",
                 {std::to_string(id)});
    TimePoint done = Clock::now();
    if (!check(e, "INSERT ... ON CONFLICT")) return;
    std::optional<int64_t> v;
    if (PQntuples(e.res.get()) == 1) v = int_value(e.res.get(), 0, 0);
    if (!v) {
      s_.add_problem(s_.bad_results, where() + "upsert did not return one value");
      return;
    }
    record({{id, *v}}, sent, done, true);
  }

  // BEGIN; SELECT v; UPDATE; COMMIT
  void select_then_update(int id) {
    if (!begin()) return;
    Exec e =
        run(conn_.get(), "SELECT v FROM consistency.items WHERE id = $1", {std::to_string(id)});
    if (!check(e, "SELECT before UPDATE")) return abort_txn();
    std::optional<int64_t> v = update(id, 1, "UPDATE after SELECT");
    if (!v) return abort_txn();
    commit({{id, *v}});
  }

  Shared &s_;
  int index_;
  long ops_;
  long op_ = 0;
  std::mt19937_64 rng_;
  Conn conn_;
};

// --- readers -----------------------------------------------------------------

class Reader {
 public:
  Reader(Shared &s, int index, long ops) : s_(s), index_(index), ops_(ops) {
    rng_ = thread_rng(s.opt.seed, 2, index);
  }
  bool plain() const { return s_.opt.direct || s_.opt.transparent; }

  void operator()() {
    std::string error;
    conn_ = connect_db(error);
    if (!conn_) s_.add_problem(s_.sql_errors, "reader " + std::to_string(index_) + ": " + error);
    if (!wait_for_start(s_, conn_ != nullptr)) return;
    bool is_sum = false;
    int id = 1;
    long repeats = 0;
    std::vector<Read> reads;
    for (op_ = 0; op_ < ops_; ++op_) {
      if (PQstatus(conn_.get()) != CONNECTION_OK) {
        s_.add_problem(s_.sql_errors, where() + "connection lost, reader stops");
        break;
      }
      // The same query a few times in a row, back to back, so that the cache
      // gets hits; pacing happens between such bursts only.
      if (repeats == 0) {
        pace();
        is_sum = pick(rng_, 0, 3) == 0;
        id = static_cast<int>(pick(rng_, 1, s_.opt.rows));
        repeats = pick(rng_, 1, 4);
      }
      --repeats;
      std::optional<Read> r = read(is_sum, id);
      if (r) reads.push_back(std::move(*r));
    }
    std::lock_guard<std::mutex> g(s_.mu);
    for (Read &r : reads) s_.reads.push_back(std::move(r));
  }

 private:
  std::string where() const {
    return "reader " + std::to_string(index_) + " op " + std::to_string(op_) + ": ";
  }

  // Waits until the writers are at least as far through their ops as this
  // reader is through its own.
  void pace() {
    if (s_.writer_ops_total == 0) return;
    while (s_.writers_running.load() > 0 &&
           static_cast<double>(s_.writer_ops_done.load()) / s_.writer_ops_total <
               static_cast<double>(op_) / ops_)
      std::this_thread::sleep_for(std::chrono::microseconds(20));
  }

  std::optional<Read> read(bool is_sum, int id) {
    Read r{is_sum, is_sum ? 0 : id, 0, {}, {}, Outcome::kNone, "", false, index_, op_};
    int memo_key = is_sum ? 0 : id;
    if (s_.opt.fake_stale) {
      // The broken cache: whatever was read first is served forever.
      auto it = memo_.find(memo_key);
      if (it != memo_.end()) {
        r.start = Clock::now();
        r.value = it->second;
        r.end = Clock::now();
        r.memo = true;
        r.outcome = Outcome::kHit;
        r.outcome_text = "hit (client-side memo)";
        return r;
      }
    }
    const char *sql =
        is_sum ? (plain() ? kSumDirect : kSumCached) : (plain() ? kSingleDirect : kSingleCached);
    std::vector<std::string> params;
    if (!is_sum) params.push_back(std::to_string(id));
    r.start = Clock::now();
    Exec e = run(conn_.get(), sql, params);
    r.end = Clock::now();
    if (!e.ok()) {
      s_.add_problem(s_.sql_errors,
                     where() + (is_sum ? "sum read: " : "single-id read: ") + e.error);
      return std::nullopt;
    }
    std::string error;
    std::optional<int64_t> v;
    if (is_sum) {
      if (PQntuples(e.res.get()) == 1 && PQnfields(e.res.get()) == 1)
        v = int_value(e.res.get(), 0, 0);
      if (!v)
        error = "sum read returned " + std::to_string(PQntuples(e.res.get())) +
                " rows, want one non-NULL bigint";
    } else {
      v = parse_single(e.res.get(), id, error);
    }
    if (!v) {
      s_.add_problem(s_.bad_results, where() + error);
      return std::nullopt;
    }
    r.value = *v;
    if (!s_.opt.direct) {
      Exec o = run(conn_.get(), "SELECT cachekit.last_outcome()");
      if (!o.ok()) {
        s_.add_problem(s_.sql_errors, where() + "last_outcome(): " + o.error);
      } else if (PQntuples(o.res.get()) == 1 && !PQgetisnull(o.res.get(), 0, 0)) {
        r.outcome_text = PQgetvalue(o.res.get(), 0, 0);
        if (r.outcome_text == "hit")
          r.outcome = Outcome::kHit;
        else if (r.outcome_text == "miss")
          r.outcome = Outcome::kMiss;
        else if (r.outcome_text.rfind("bypass", 0) == 0)
          r.outcome = Outcome::kBypass;
        else
          r.outcome = Outcome::kOther;
      } else {
        r.outcome = Outcome::kOther;
        r.outcome_text = "(no value)";
      }
    }
    if (s_.opt.fake_stale) memo_[memo_key] = r.value;
    return r;
  }

  Shared &s_;
  int index_;
  long ops_;
  long op_ = 0;
  std::mt19937_64 rng_;
  Conn conn_;
  std::map<int, int64_t> memo_;
};

// --- checking ----------------------------------------------------------------

// Commits of one series (one id, or all increments for the sum), indexed both
// by when COMMIT returned and by when it was sent.
struct Series {
  // (done, running max of v / running count), certain commits only
  std::vector<std::pair<TimePoint, int64_t>> by_done;
  std::vector<size_t> by_done_index;  // commit that set the running max
  // (sent, running max of v / running count), all commits incl. uncertain
  std::vector<std::pair<TimePoint, int64_t>> by_sent;
};

// Highest value among entries strictly before t (or `none`), and the index
// into the sorted vector of the entry holding it.
int64_t bound_before(const std::vector<std::pair<TimePoint, int64_t>> &v, TimePoint t, int64_t none,
                     size_t *pos = nullptr) {
  auto it = std::lower_bound(
      v.begin(), v.end(), t,
      [](const std::pair<TimePoint, int64_t> &e, TimePoint x) { return e.first < x; });
  if (it == v.begin()) return none;
  if (pos) *pos = static_cast<size_t>(it - v.begin()) - 1;
  return std::prev(it)->second;
}

struct Checker {
  const Shared &s;
  std::map<int, Series> per_id;
  Series sum;
  std::map<int, std::vector<const Commit *>> per_id_commits;  // sorted by done
  std::vector<const Commit *> sum_commits;                    // sorted by done

  explicit Checker(const Shared &shared) : s(shared) {
    std::vector<const Commit *> all;
    for (const Commit &c : s.commits) all.push_back(&c);
    auto by_done = [](const Commit *a, const Commit *b) { return a->done < b->done; };
    auto by_sent = [](const Commit *a, const Commit *b) { return a->sent < b->sent; };
    std::map<int, std::vector<const Commit *>> groups;
    for (const Commit *c : all) groups[c->id].push_back(c);
    for (auto &[id, list] : groups)
      build(per_id[id], per_id_commits[id], list, by_done, by_sent, false);
    build(sum, sum_commits, all, by_done, by_sent, true);
  }

  template <typename Less1, typename Less2>
  static void build(Series &out, std::vector<const Commit *> &done_order,
                    std::vector<const Commit *> list, Less1 by_done, Less2 by_sent, bool count) {
    std::sort(list.begin(), list.end(), by_sent);
    int64_t acc = 0;
    for (const Commit *c : list) {
      acc = count ? acc + 1 : std::max(acc, c->v);
      out.by_sent.push_back({c->sent, acc});
    }
    std::sort(list.begin(), list.end(), by_done);
    acc = 0;
    size_t arg = 0;
    for (const Commit *c : list) {
      if (!c->certain) continue;
      if (count) {
        ++acc;
        arg = done_order.size();
      } else if (c->v >= acc) {
        acc = c->v;
        arg = done_order.size();
      }
      done_order.push_back(c);
      out.by_done.push_back({c->done, acc});
      out.by_done_index.push_back(arg);
    }
  }
};

std::string describe_read(const Shared &s, const Read &r) {
  std::string what = r.is_sum ? "sum read" : "read of id " + std::to_string(r.id);
  std::string how = r.memo ? "client-side memo" : (r.outcome_text.empty() ? "-" : r.outcome_text);
  return "reader " + std::to_string(r.reader) + " op " + std::to_string(r.op) + ": " + what + " [" +
         std::to_string(us_since(s, r.start)) + ".." + std::to_string(us_since(s, r.end)) +
         "us, outcome " + how + "] returned " + std::to_string(r.value);
}

}  // namespace

int main(int argc, char **argv) {
  Shared s;
  s.opt = parse_args(argc, argv);
  const Options &o = s.opt;

  // --- setup ---
  {
    std::string error;
    Conn c = connect_db(error);
    if (!c) {
      fprintf(stderr, "cachekit_consistency: cannot connect: %s\n", error.c_str());
      return 1;
    }
    std::vector<std::string> steps = {
        "DROP SCHEMA IF EXISTS consistency CASCADE",
        "CREATE SCHEMA consistency",
        "CREATE TABLE consistency.items (id int PRIMARY KEY, v bigint NOT NULL)",
    };
    // Watched before the rows go in, so that even the initial load is a
    // change the cache has to respect.
    if (!o.direct && o.watch_by.empty())
      steps.push_back("SELECT cachekit.watch('consistency.items')");
    else if (!o.direct)
      steps.push_back("SELECT cachekit.watch('consistency.items', by => '" + o.watch_by + "'" +
                      (o.bucket_width.empty() ? "" : ", bucket_width => '" + o.bucket_width + "'") +
                      ")");
    steps.push_back("INSERT INTO consistency.items (id, v) SELECT g, 0 FROM generate_series(1, " +
                    std::to_string(o.rows) + ") AS g");
    for (const std::string &sql : steps) {
      Exec e = run(c.get(), sql.c_str());
      if (!e.ok()) {
        fprintf(stderr, "cachekit_consistency: setup failed: %s: %s\n", sql.c_str(),
                e.error.c_str());
        return 1;
      }
    }
  }

  // --- run ---
  int nthreads = o.writers + o.readers;
  auto share = [&](int k) {
    return nthreads == 0 ? 0L : o.ops / nthreads + (k < o.ops % nthreads ? 1L : 0L);
  };
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Writer>> writers;
  std::vector<std::unique_ptr<Reader>> readers;
  for (int i = 0; i < o.writers; ++i) writers.push_back(std::make_unique<Writer>(s, i, share(i)));
  for (int i = 0; i < o.readers; ++i)
    readers.push_back(std::make_unique<Reader>(s, i, share(o.writers + i)));
  for (int i = 0; i < o.writers; ++i) s.writer_ops_total += share(i);
  s.writers_running = o.writers;
  for (auto &w : writers) threads.emplace_back(std::ref(*w));
  for (auto &r : readers) threads.emplace_back(std::ref(*r));
  {
    std::unique_lock<std::mutex> g(s.gate_mu);
    s.gate_cv.wait(g, [&] { return s.connected + s.failed_to_connect == nthreads; });
    s.t0 = Clock::now();
    s.go = true;
    s.gate_cv.notify_all();
  }
  for (std::thread &t : threads) t.join();
  TimePoint t_end = Clock::now();

  // --- check ---
  Checker chk(s);
  struct Finding {
    TimePoint when;
    std::string text;
  };
  std::vector<Finding> stale, phantom;
  long hits = 0, misses = 0, bypasses = 0, other = 0;
  for (const Read &r : s.reads) {
    switch (r.outcome) {
      case Outcome::kHit:
        ++hits;
        break;
      case Outcome::kMiss:
        ++misses;
        break;
      case Outcome::kBypass:
        ++bypasses;
        break;
      case Outcome::kOther:
        ++other;
        break;
      case Outcome::kNone:
        break;
    }
    const Series *series = nullptr;
    const std::vector<const Commit *> *done_order = nullptr;
    if (r.is_sum) {
      series = &chk.sum;
      done_order = &chk.sum_commits;
    } else if (auto it = chk.per_id.find(r.id); it != chk.per_id.end()) {
      series = &it->second;
      done_order = &chk.per_id_commits.at(r.id);
    }
    int64_t min_ok = 0, max_ok = 0;
    size_t pos = 0;
    bool have_pos = false;
    if (series) {
      size_t p = SIZE_MAX;
      min_ok = bound_before(series->by_done, r.start, 0, &p);
      if (p != SIZE_MAX) {
        pos = p;
        have_pos = true;
      }
      max_ok = bound_before(series->by_sent, r.end, 0);
    }
    if (r.value < min_ok) {
      std::string text = describe_read(s, r) + ", but ";
      if (r.is_sum) {
        text += std::to_string(min_ok) + " increments had committed before it started";
      } else {
        text += "v=" + std::to_string(min_ok) + " had committed before it started";
      }
      if (have_pos) {
        const Commit *c = (*done_order)[series->by_done_index[pos]];
        text += " (" + std::string(r.is_sum ? "the last of them" : "that commit") + ": writer " +
                std::to_string(c->writer) + " op " + std::to_string(c->op) + ", id " +
                std::to_string(c->id) + " -> " + std::to_string(c->v) + ", COMMIT returned at " +
                std::to_string(us_since(s, c->done)) + "us)";
      }
      stale.push_back({r.start, text});
    } else if (r.value > max_ok) {
      std::string text = describe_read(s, r) + ", but ";
      text += r.is_sum ? "only " + std::to_string(max_ok) +
                             " increments had even been sent to COMMIT before it finished"
                       : "the highest v any COMMIT sent before it finished could set is " +
                             std::to_string(max_ok);
      if (r.value >= kRollbackDelta) text += " (it shows a rolled-back update)";
      phantom.push_back({r.start, text});
    }
  }

  bool fail = !stale.empty() || !phantom.empty() || !s.sql_errors.empty() ||
              !s.bad_results.empty() || !s.own_write_violations.empty();

  auto print_list = [&](const char *label, auto list) {
    std::sort(list.begin(), list.end(),
              [](const auto &a, const auto &b) { return a.when < b.when; });
    for (size_t i = 0; i < list.size() && i < kMaxReported; ++i)
      printf("%s: %s\n", label, list[i].text.c_str());
    if (list.size() > kMaxReported)
      printf("%s: ... and %zu more\n", label, list.size() - kMaxReported);
  };
  print_list("stale read", stale);
  print_list("phantom read", phantom);
  print_list("own-write violation", s.own_write_violations);
  print_list("bad result", s.bad_results);
  print_list("sql error", s.sql_errors);

  TimePoint last_read = s.t0, last_commit = s.t0;
  for (const Read &r : s.reads) last_read = std::max(last_read, r.end);
  for (const Commit &c : s.commits) last_commit = std::max(last_commit, c.done);
  long long elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t_end - s.t0).count();
  printf(
      "consistency: seed=%llu writers=%d readers=%d ops=%ld rows=%d mode=%s%s reads_checked=%zu "
      "hits=%ld misses=%ld bypasses=%ld other_outcomes=%ld stale_reads=%zu phantom_reads=%zu "
      "own_write_violations=%zu bad_results=%zu sql_errors=%zu commits=%ld rollbacks=%ld "
      "increments=%zu last_read_ms=%lld last_commit_ms=%lld elapsed_ms=%lld -> %s\n",
      static_cast<unsigned long long>(o.seed), o.writers, o.readers, o.ops, o.rows,
      o.direct        ? "direct"
      : o.transparent ? "transparent"
                      : "cached_query",
      o.fake_stale ? "+fake-stale" : "", s.reads.size(), hits, misses, bypasses, other,
      stale.size(), phantom.size(), s.own_write_violations.size(), s.bad_results.size(),
      s.sql_errors.size(), s.committed_txns, s.rolled_back_txns, s.commits.size(),
      us_since(s, last_read) / 1000, us_since(s, last_commit) / 1000, elapsed_ms,
      fail ? "FAIL" : "ok");
  fflush(stdout);
  return fail ? 1 : 0;
}
