#include "core/host_allowlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <optional>
#include <string>

#include "core/error.h"

namespace cachekit {

namespace {

using Address = std::array<uint8_t, 16>;

constexpr const char kHint[] =
    "Entries are host names (api.example.com, *.example.com, *), addresses (10.1.2.3, ::1), "
    "networks (10.0.0.0/8, fd00::/8) or the word loopback, separated by commas.";

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string s) {
  for (char &c : s) c = ascii_lower(c);
  return s;
}

std::string trim(const std::string &s) {
  std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  std::size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

Address mapped_v4(const unsigned char *v4) {
  Address a{};
  a[10] = 0xff;
  a[11] = 0xff;
  std::memcpy(&a[12], v4, 4);
  return a;
}

// An address literal as written in a URL or a setting, IPv4 in mapped form.
std::optional<Address> parse_address(std::string text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return mapped_v4(buf);
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    Address a;
    std::memcpy(a.data(), buf, 16);
    return a;
  }
  return std::nullopt;
}

std::optional<Address> sockaddr_address(const struct sockaddr *sa) {
  if (sa == nullptr) return std::nullopt;
  if (sa->sa_family == AF_INET) {
    const auto *in = reinterpret_cast<const sockaddr_in *>(sa);
    return mapped_v4(reinterpret_cast<const unsigned char *>(&in->sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6) {
    const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(sa);
    Address a;
    std::memcpy(a.data(), in6->sin6_addr.s6_addr, 16);
    return a;
  }
  return std::nullopt;
}

bool label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// A lower-case DNS name of ASCII labels. A last label of digits only is
// refused: it is no top-level domain, and resolvers may read it as a partial
// IPv4 address ("10.1" is 10.0.0.1), which must not pass as a name.
bool valid_name(const std::string &name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  bool last_all_digits = false;
  while (true) {
    std::size_t dot = name.find('.', start);
    std::size_t end = dot == std::string::npos ? name.size() : dot;
    std::size_t len = end - start;
    if (len == 0 || len > 63) return false;
    last_all_digits = true;
    for (std::size_t i = start; i < end; ++i) {
      if (!label_char(name[i])) return false;
      if (name[i] < '0' || name[i] > '9') last_all_digits = false;
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return !last_all_digits;
}

std::string normalize_name(const std::string &host) {
  std::string name = lower(host);
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

[[noreturn]] void bad_entry(const std::string &entry, const std::string &why) {
  throw Error(sqlstate::kInvalidParameterValue,
              "invalid entry \"" + entry + "\" in cachekit.http_allowed_hosts", why, kHint);
}

// Ranges a name entry does not open up (see internal_address in the header).
constexpr const char *kInternalRanges[] = {
    "0.0.0.0/8",       // "this network"; 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8",      // RFC 1918
    "100.64.0.0/10",   // shared address space (CGNAT)
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local, including cloud metadata endpoints
    "172.16.0.0/12",   // RFC 1918
    "192.0.0.0/24",    // IETF protocol assignments
    "192.168.0.0/16",  // RFC 1918
    "198.18.0.0/15",   // benchmarking
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved and broadcast
    "::/96",           // unspecified, loopback, deprecated IPv4-compatible
    "100::/64",        // discard
    "fc00::/7",        // unique local
    "fe80::/10",       // link-local
    "fec0::/10",       // deprecated site-local
    "ff00::/8",        // multicast
};

}  // namespace

bool HostAllowList::network_contains(const Network &net, const Address &addr) {
  int bits = net.prefix_bits;
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((addr[i] & mask) != (net.base[i] & mask)) return false;
  }
  return true;
}

bool HostAllowList::in_networks(const Address &addr) const {
  for (const Network &net : networks_)
    if (network_contains(net, addr)) return true;
  return false;
}

HostAllowList HostAllowList::parse(const std::string &setting) {
  HostAllowList list;
  std::size_t start = 0;
  while (start <= setting.size()) {
    std::size_t comma = setting.find(',', start);
    if (comma == std::string::npos) comma = setting.size();
    std::string entry = trim(setting.substr(start, comma - start));
    start = comma + 1;
    if (entry.empty()) continue;  // "a,,b" and a trailing comma are harmless

    std::string folded = lower(entry);
    if (folded == "loopback") {
      list.networks_.push_back(Network{*parse_address("127.0.0.0"), 96 + 8});
      list.networks_.push_back(Network{*parse_address("::1"), 128});
      continue;
    }
    if (folded == "*") {
      list.any_name_ = true;
      continue;
    }

    std::size_t slash = entry.find('/');
    std::string addr_text = slash == std::string::npos ? entry : entry.substr(0, slash);
    std::optional<Address> addr = parse_address(addr_text);
    if (addr) {
      bool v4 = addr_text.find(':') == std::string::npos;
      int max_bits = v4 ? 32 : 128;
      int bits = max_bits;
      if (slash != std::string::npos) {
        std::string len = entry.substr(slash + 1);
        if (len.empty() || len.size() > 3 ||
            len.find_first_not_of("0123456789") != std::string::npos)
          bad_entry(entry, "The prefix length must be a number.");
        bits = std::stoi(len);
        if (bits > max_bits)
          bad_entry(entry, "The prefix length must be at most " + std::to_string(max_bits) + ".");
        if (addr_text.front() == '[') bad_entry(entry, "Write a network without brackets.");
      }
      Network net{*addr, (v4 ? 96 : 0) + bits};
      Network masked = net;
      for (int i = 0; i < 16; ++i) {
        int keep = net.prefix_bits - i * 8;
        uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
        masked.base[i] &= mask;
      }
      if (masked.base != net.base)
        bad_entry(entry, "The address has bits set to the right of the prefix length.");
      list.networks_.push_back(net);
      continue;
    }
    if (slash != std::string::npos) bad_entry(entry, "The part before \"/\" is not an address.");

    bool wildcard = folded.rfind("*.", 0) == 0;
    std::string name = normalize_name(wildcard ? folded.substr(2) : folded);
    if (!valid_name(name))
      bad_entry(entry,
                "A host name consists of labels of letters, digits, hyphens and underscores "
                "separated by dots, with a last label that is not all digits; a wildcard is "
                "allowed only as a whole first label (*.example.com).");
    if (wildcard)
      list.suffixes_.push_back("." + name);
    else
      list.names_.push_back(name);
  }
  return list;
}

bool HostAllowList::is_address_literal(const std::string &host) {
  return parse_address(host).has_value();
}

bool HostAllowList::host_name_allowed(const std::string &host) const {
  if (std::optional<Address> addr = parse_address(host)) return in_networks(*addr);
  std::string name = normalize_name(host);
  if (!valid_name(name)) return false;
  if (any_name_) return true;
  for (const std::string &n : names_)
    if (n == name) return true;
  for (const std::string &suffix : suffixes_)
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  return false;
}

bool HostAllowList::internal_address(const struct sockaddr *sa) {
  std::optional<Address> addr = sockaddr_address(sa);
  if (!addr) return true;
  static const std::vector<Network> internal = [] {
    std::vector<Network> nets;
    for (const char *range : kInternalRanges) {
      std::string text(range);
      std::size_t slash = text.find('/');
      std::string base = text.substr(0, slash);
      int bits = std::stoi(text.substr(slash + 1));
      bool v4 = base.find(':') == std::string::npos;
      nets.push_back(Network{*parse_address(base), (v4 ? 96 : 0) + bits});
    }
    return nets;
  }();
  Address a = *addr;
  static const Network nat64{*parse_address("64:ff9b::"), 96};
  if (network_contains(nat64, a)) a = mapped_v4(&a[12]);
  for (const Network &net : internal)
    if (network_contains(net, a)) return true;
  return false;
}

bool HostAllowList::address_allowed(const struct sockaddr *sa, bool host_allowed_by_name) const {
  std::optional<Address> addr = sockaddr_address(sa);
  if (!addr) return false;
  if (in_networks(*addr)) return true;
  bool has_name_entries = any_name_ || !names_.empty() || !suffixes_.empty();
  return host_allowed_by_name && has_name_entries && !internal_address(sa);
}

}  // namespace cachekit
