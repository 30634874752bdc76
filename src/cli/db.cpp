#include "cli/db.h"

#include <cstdio>
#include <utility>

#include "cli/cli_error.h"

namespace cachekit::cli {

namespace {

std::string trim_trailing_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string field(const PGresult *r, int code) {
  const char *v = PQresultErrorField(r, code);
  return v != nullptr ? v : "";
}

}  // namespace

std::optional<std::string> Result::value(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return text(row, col);
}

Db Db::connect(const std::optional<std::string> &conninfo, bool verbose) {
  // expand_dbname: "dbname" may be a whole conninfo string or a URI; the
  // environment (PGHOST, PGPORT, ...) fills in whatever it leaves out.
  const char *keywords[] = {"dbname", "fallback_application_name", nullptr};
  const char *values[] = {conninfo ? conninfo->c_str() : nullptr, "pg_cachekit-cdn", nullptr};
  Db db(PQconnectdbParams(keywords, values, 1));
  if (!db.conn_) throw CliError(kExitDatabase, "out of memory");
  if (PQstatus(db.conn_.get()) != CONNECTION_OK) {
    // libpq's text names host and port but never the password.
    throw CliError(kExitDatabase, "could not connect to the database",
                   trim_trailing_newlines(PQerrorMessage(db.conn_.get())),
                   "Give --dbname or set PGHOST, PGPORT, PGDATABASE and PGUSER.");
  }
  if (verbose) std::fprintf(stderr, "pg_cachekit-cdn: connected to %s\n", db.describe().c_str());
  return db;
}

std::string Db::describe() const {
  PGconn *c = conn_.get();
  std::string host = PQhost(c) != nullptr ? PQhost(c) : "";
  return "database \"" + std::string(PQdb(c)) + "\" on host \"" + host + "\", port " + PQport(c) +
         ", as user \"" + PQuser(c) + "\"";
}

Result Db::exec(const std::string &sql, const std::vector<std::optional<std::string>> &params) {
  std::vector<const char *> values;
  values.reserve(params.size());
  for (const auto &p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult *r = PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  Result owned(r);
  ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return owned;
  if (r == nullptr || field(r, PG_DIAG_MESSAGE_PRIMARY).empty()) {
    throw CliError(kExitDatabase, "lost the connection to the database",
                   trim_trailing_newlines(PQerrorMessage(conn_.get())));
  }
  std::string sqlstate = field(r, PG_DIAG_SQLSTATE);
  std::string detail = field(r, PG_DIAG_MESSAGE_DETAIL);
  if (!sqlstate.empty())
    detail += (detail.empty() ? "" : " ") + std::string("SQLSTATE ") + sqlstate + ".";
  throw CliError(kExitDatabase, field(r, PG_DIAG_MESSAGE_PRIMARY), detail,
                 field(r, PG_DIAG_MESSAGE_HINT));
}

std::string text_array_literal(const std::vector<std::string> &items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace cachekit::cli
