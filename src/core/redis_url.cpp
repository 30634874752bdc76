#include "core/redis_url.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>

#include "core/error.h"

namespace cachekit {

namespace {

constexpr long kMaxDb = 1000000;
// sizeof(sockaddr_un::sun_path) is 108 on Linux, including the terminating NUL.
constexpr std::size_t kMaxSocketPathBytes = 107;
constexpr const char kMask[] = "********";
constexpr const char kUrlHint[] =
    "Use redis://[[username]:password@]host[:port][/db] or "
    "unix:///path/to/redis.sock[?db=N][&password=...].";

// Messages never quote user input that could contain the password.
[[noreturn]] void bad_url(const std::string &what, std::string hint = {}) {
  throw Error(sqlstate::kInvalidParameterValue, "invalid Redis URL: " + what, {}, std::move(hint));
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s, const char *what) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 1 < s.size() ? hex_value(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0)
      bad_url(std::string("bad percent-encoding in the ") + what,
              "Write a literal \"%\" as %25 and other special characters as %XX.");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// Unreserved characters (RFC 3986) plus `extra` stay as they are.
std::string percent_encode(std::string_view s, std::string_view extra = {}) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        extra.find(c) != std::string_view::npos) {
      out.push_back(c);
    } else {
      unsigned char u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

// Only ASCII digits, at most 9 of them (no overflow), value <= max.
bool parse_number(std::string_view s, long max, long &out) {
  if (s.empty() || s.size() > 9) return false;
  long v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}

int parse_db(std::string_view s) {
  if (s.empty()) bad_url("database number is missing");
  std::size_t digits = 0;
  while (digits < s.size() && is_digit(s[digits])) ++digits;
  if (digits == 0) bad_url("database number must be a non-negative integer");
  if (digits < s.size()) bad_url("unexpected characters after the database number");
  long v = 0;
  if (!parse_number(s, kMaxDb, v))
    bad_url("database number must be between 0 and " + std::to_string(kMaxDb));
  return static_cast<int>(v);
}

bool valid_hostname(std::string_view h) {
  for (char c : h)
    if (!(is_alnum(c) || c == '-' || c == '.' || c == '_')) return false;
  return true;
}

bool valid_ipv6(std::string_view h) {
  if (h.find(':') == std::string_view::npos) return false;
  std::size_t zone = h.find('%');
  std::string_view addr = h.substr(0, zone);
  for (char c : addr)
    if (!(hex_value(c) >= 0 || c == ':' || c == '.')) return false;
  if (zone != std::string_view::npos) {
    std::string_view id = h.substr(zone + 1);
    if (id.empty()) return false;
    for (char c : id)
      if (!(is_alnum(c) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

RedisEndpoint parse_tcp(std::string_view rest) {
  RedisEndpoint ep;
  ep.transport = RedisEndpoint::Transport::kTcp;

  // The user info ends at the last '@', so that an unencoded '@', '/' or ':'
  // in a password still works.
  std::size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    // A user name without a password takes its password from
    // cachekit.redis_password_file.
    std::size_t colon = userinfo.find(':');
    ep.username = percent_decode(userinfo.substr(0, colon), "user name");
    if (colon != std::string_view::npos)
      ep.password = percent_decode(userinfo.substr(colon + 1), "password");
  }

  std::size_t end = rest.find_first_of("/?#");
  std::string_view hostport = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);

  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!hostport.empty() && hostport[0] == '[') {
    std::size_t close = hostport.find(']');
    if (close == std::string_view::npos) bad_url("missing \"]\" after the IPv6 address");
    host = hostport.substr(1, close - 1);
    if (host.empty()) bad_url("host is missing", kUrlHint);
    if (!valid_ipv6(host)) bad_url("invalid IPv6 address");
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') bad_url("unexpected characters after the IPv6 address");
      has_port = true;
      port = after.substr(1);
    }
  } else {
    std::size_t colon = hostport.find(':');
    host = hostport.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port = hostport.substr(colon + 1);
      if (port.find(':') != std::string_view::npos)
        bad_url("IPv6 addresses must be enclosed in brackets",
                "Write redis://[::1]:6379/0, for example.");
    }
    if (host.empty()) bad_url("host is missing", kUrlHint);
    if (!valid_hostname(host)) bad_url("host name contains invalid characters");
  }
  ep.host = std::string(host);

  if (has_port) {
    long p = 0;
    if (!parse_number(port, 65535, p) || p < 1)
      bad_url("port must be a number between 1 and 65535");
    ep.port = static_cast<int>(p);
  }

  if (!tail.empty()) {
    if (tail[0] == '/') {
      std::string_view db = tail.substr(1);
      if (!db.empty()) ep.db = parse_db(db);
    } else if (tail[0] == '?') {
      bad_url("query parameters are not supported in redis:// URLs",
              "Put the database number in the path, as in redis://host:6379/2.");
    } else {
      bad_url("unexpected characters after the host");
    }
  }
  return ep;
}

RedisEndpoint parse_unix(std::string_view rest) {
  RedisEndpoint ep;
  ep.transport = RedisEndpoint::Transport::kUnix;
  ep.host.clear();
  ep.port = 0;

  if (rest.empty() || rest[0] != '/')
    bad_url("unix socket path must be absolute",
            "Write unix:///path/to/redis.sock (three slashes).");
  std::size_t q = rest.find('?');
  ep.socket_path = percent_decode(rest.substr(0, q), "socket path");
  if (ep.socket_path.find('\0') != std::string::npos)
    bad_url("unix socket path must not contain NUL bytes");
  if (ep.socket_path.size() > kMaxSocketPathBytes)
    bad_url("unix socket path is too long",
            "Unix socket paths are limited to " + std::to_string(kMaxSocketPathBytes) + " bytes.");

  if (q == std::string_view::npos) return ep;
  std::string_view query = rest.substr(q + 1);
  bool seen_db = false, seen_password = false, seen_username = false;
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (param.empty()) continue;
    std::size_t eq = param.find('=');
    if (eq == std::string_view::npos) bad_url("query parameter without a value", kUrlHint);
    std::string_view name = param.substr(0, eq);
    std::string_view value = param.substr(eq + 1);
    if (iequals(name, "db")) {
      if (seen_db) bad_url("parameter \"db\" given more than once");
      seen_db = true;
      ep.db = parse_db(value);
    } else if (iequals(name, "password")) {
      if (seen_password) bad_url("parameter \"password\" given more than once");
      seen_password = true;
      ep.password = percent_decode(value, "password");
    } else if (iequals(name, "username")) {
      if (seen_username) bad_url("parameter \"username\" given more than once");
      seen_username = true;
      ep.username = percent_decode(value, "user name");
    } else {
      // The name is not quoted: a mistyped URL could have a password there.
      bad_url("unknown query parameter",
              "Unix socket URLs accept the parameters db, username and password.");
    }
  }
  return ep;
}

}  // namespace

std::string RedisEndpoint::redacted() const {
  if (transport == Transport::kUnix) {
    std::string s = "unix://" + percent_encode(socket_path, "/");
    char sep = '?';
    if (db != 0) {
      s += sep;
      s += "db=" + std::to_string(db);
      sep = '&';
    }
    if (!username.empty()) {
      s += sep;
      s += "username=" + percent_encode(username);
      sep = '&';
    }
    if (!password.empty()) {
      s += sep;
      s += "password=";
      s += kMask;
    }
    return s;
  }
  std::string s = "redis://";
  if (!password.empty()) {
    s += percent_encode(username);
    s += ':';
    s += kMask;
    s += '@';
  } else if (!username.empty()) {
    s += percent_encode(username) + "@";
  }
  s += address();
  s += "/" + std::to_string(db);
  return s;
}

std::string RedisEndpoint::address() const {
  if (transport == Transport::kUnix) return socket_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool RedisEndpoint::operator==(const RedisEndpoint &o) const {
  return transport == o.transport && host == o.host && port == o.port &&
         socket_path == o.socket_path && username == o.username && password == o.password &&
         db == o.db;
}

RedisEndpoint parse_redis_url(std::string_view url) {
  if (url.empty())
    throw Error(sqlstate::kInvalidParameterValue, "Redis URL must not be empty", {}, kUrlHint);
  for (char c : url) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f)
      bad_url("contains spaces or control characters",
              "Percent-encode such characters in the password, as in %20 for a space.");
  }
  std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) bad_url("missing scheme", kUrlHint);
  std::string_view scheme = url.substr(0, sep);
  std::string_view rest = url.substr(sep + 3);
  if (iequals(scheme, "redis")) return parse_tcp(rest);
  if (iequals(scheme, "unix")) return parse_unix(rest);
  if (iequals(scheme, "rediss"))
    throw Error(sqlstate::kFeatureNotSupported,
                "TLS connections to Redis (rediss://) are not supported",
                "pg_cachekit is built with hiredis 0.14, which has no TLS support.",
                "Use redis:// to a local TLS tunnel such as stunnel, or a unix socket.");
  bad_url("unsupported scheme", kUrlHint);
}

std::string read_private_file(const std::string &path, const char *what) {
  const std::string quoted = "\"" + path + "\"";
  const auto refuse = [&](const std::string &why) -> std::string {
    throw Error(sqlstate::kConfigFileError, std::string(what) + " cannot be used", why,
                "Make it a file owned by the database server's operating system user, with "
                "permissions u=rw (0600) or less.");
  };
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return refuse("Could not examine " + quoted + ": " + std::strerror(errno) + ".");
  if (!S_ISREG(st.st_mode)) return refuse(quoted + " is not a regular file.");
  // As PostgreSQL requires of ssl_key_file: owned by the server's user and
  // private to it, or owned by root and at most readable by the group.
  const bool own = st.st_uid == geteuid();
  if (!own && st.st_uid != 0)
    return refuse(quoted + " must be owned by the database server's user or by root.");
  if ((own && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
      (!own && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
    return refuse(quoted + " has group or world access.");
  if (st.st_size > 64 * 1024) return refuse(quoted + " is larger than 64 kB.");
  std::ifstream in(path, std::ios::binary);
  if (!in) return refuse("Could not read " + quoted + ".");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return refuse("Could not read " + quoted + ".");
  return content;
}

std::string read_password_file(const std::string &path, const char *what) {
  std::string content = read_private_file(path, what);
  std::string line = content.substr(0, content.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string redact_redis_url(std::string_view url) {
  std::string out(url);
  std::size_t sep = out.find("://");
  std::size_t start = sep == std::string::npos ? 0 : sep + 3;

  // Everything up to the last '@' is user info (that is how the parser reads it).
  std::size_t at = out.rfind('@');
  if (at != std::string::npos && at >= start) {
    if (at > start) out.replace(start, at - start, kMask);
  } else {
    // No '@': a password may still sit where the port belongs ("redis://:secret").
    std::size_t end = out.find_first_of("/?#", start);
    if (end == std::string::npos) end = out.size();
    std::string_view authority(out.data() + start, end - start);
    if (!authority.empty() && authority[0] != '[') {
      std::size_t colon = authority.find(':');
      if (colon != std::string_view::npos) {
        std::string_view after = authority.substr(colon + 1);
        bool digits = true;
        for (char c : after)
          if (!is_digit(c)) digits = false;
        if (!digits) out.replace(start + colon + 1, after.size(), kMask);
      }
    }
  }

  // password=... query parameters.
  static constexpr std::string_view kKey = "password=";
  std::size_t pos = 0;
  while (pos + kKey.size() <= out.size()) {
    std::size_t i = pos;
    bool found = false;
    for (; i + kKey.size() <= out.size(); ++i) {
      if (iequals(std::string_view(out).substr(i, kKey.size()), kKey)) {
        found = true;
        break;
      }
    }
    if (!found) break;
    if (i > 0 && (out[i - 1] == '?' || out[i - 1] == '&')) {
      std::size_t vstart = i + kKey.size();
      std::size_t vend = out.find('&', vstart);
      if (vend == std::string::npos) vend = out.size();
      out.replace(vstart, vend - vstart, kMask);
      pos = vstart + sizeof(kMask) - 1;
    } else {
      pos = i + 1;
    }
  }
  return out;
}

}  // namespace cachekit
