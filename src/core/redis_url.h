// Parsing of the connection URLs accepted by cachekit.redis_url and
// cachekit.session_redis_url.
//
//   redis://[[username]:password@]host[:port][/db]
//   redis://[::1]:6379/2                       (IPv6 literal in brackets)
//   unix:///path/to/redis.sock[?db=N][&password=...]
//
// Userinfo and the password query parameter are percent-decoded. A user name
// without a password is allowed: the password then comes from
// cachekit.redis_password_file (read_password_file below). rediss:// (TLS) is
// rejected because Debian 12's hiredis 0.14 has no TLS support.
#pragma once

#include <string>
#include <string_view>

namespace cachekit {

struct RedisEndpoint {
  enum class Transport { kTcp, kUnix };

  Transport transport = Transport::kTcp;
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string socket_path;  // kUnix only
  std::string username;     // empty: AUTH with password only
  std::string password;     // empty: no AUTH
  int db = 0;

  // The URL with any password replaced by "********"; safe for logs and views.
  std::string redacted() const;
  // host:port or the socket path; never contains credentials.
  std::string address() const;

  bool operator==(const RedisEndpoint &o) const;
  bool operator!=(const RedisEndpoint &o) const { return !(*this == o); }
};

// Throws cachekit::Error (SQLSTATE 22023; 0A000 for rediss://) naming what is
// malformed. The message never repeats the password.
RedisEndpoint parse_redis_url(std::string_view url);

// The Redis password kept in a file (cachekit.redis_password_file): its first
// line, without the line end; an empty file means no password. Refuses, as
// PostgreSQL does for ssl_key_file, anything but a regular file owned by this
// process's user with no group or world access (or owned by root, readable
// by the group at most). Throws cachekit::Error (F0000) whose detail says
// why, naming the path, never the content.
std::string read_password_file(const std::string &path, const char *what = "Redis password file");

// The whole content of such a file (at most 64 kB), with the same checks;
// `what` names the file in the error ("CloudFront credentials file").
std::string read_private_file(const std::string &path, const char *what);

// Best-effort redaction of a possibly malformed URL: everything between "://"
// and the last '@' of the authority, and any password= query value, is masked.
std::string redact_redis_url(std::string_view url);

}  // namespace cachekit
