// The little of libpq the tool needs: a connection, queries with text
// parameters, and SQL errors turned into CliError(kExitDatabase) with the
// server's message, detail and hint.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cachekit::cli {

struct ResultDeleter {
  void operator()(PGresult *r) const { PQclear(r); }
};

class Result {
 public:
  explicit Result(PGresult *r) : r_(r) {}
  int rows() const { return PQntuples(r_.get()); }
  bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string text(int row, int col) const { return PQgetvalue(r_.get(), row, col); }
  // NULL as nullopt.
  std::optional<std::string> value(int row, int col) const;

 private:
  std::unique_ptr<PGresult, ResultDeleter> r_;
};

class Db {
 public:
  // conninfo: a connection string or URI; nullopt: the libpq environment alone.
  static Db connect(const std::optional<std::string> &conninfo, bool verbose);

  // One statement with text parameters ($1, $2, ...); a NULL parameter is nullopt.
  Result exec(const std::string &sql, const std::vector<std::optional<std::string>> &params = {});

  // "database "x" on host h, port p, as user u" for messages.
  std::string describe() const;

 private:
  struct ConnDeleter {
    void operator()(PGconn *c) const { PQfinish(c); }
  };
  explicit Db(PGconn *c) : conn_(c) {}
  std::unique_ptr<PGconn, ConnDeleter> conn_;
};

// '{"a","b"}': a text[] literal for a parameter, every element quoted.
std::string text_array_literal(const std::vector<std::string> &items);

}  // namespace cachekit::cli
