// The hosts that built-in http tasks may connect to (cachekit.http_allowed_hosts).
//
// A comma-separated list of entries, white space around entries ignored:
//
//   loopback            127.0.0.0/8 and ::1
//   10.1.2.3, ::1       one address (IPv6 may be written in brackets)
//   10.0.0.0/8, fd00::/8  a network; bits right of the prefix must be zero
//   api.example.com     that host name (case-insensitive, trailing dot ignored)
//   *.example.com       any name below example.com, at any depth, not example.com itself
//   *                   any host name
//
// The check that matters runs on the address a connection is about to use, after
// DNS resolution (see address_allowed), so a name that re-resolves to another
// address (DNS rebinding) cannot reach anything the list does not allow:
//
// - A URL whose host is an address literal needs an address or network entry.
// - A URL whose host is a name needs a name entry; the name is not even looked
//   up otherwise. Its resolved addresses are then accepted unless they lie in a
//   loopback, private, link-local, shared, multicast or otherwise reserved range
//   (internal_address below), and those are accepted only when an address or
//   network entry covers them. So "api.example.com" never reaches 127.0.0.1 or
//   169.254.169.254, while "localhost,loopback" reaches the local machine.
//
// IPv4 addresses are compared in their IPv4-mapped IPv6 form (::ffff:a.b.c.d),
// so "10.0.0.0/8" also covers ::ffff:10.1.2.3 and "::/0" covers everything.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

struct sockaddr;

namespace cachekit {

class HostAllowList {
 public:
  // Throws cachekit::Error (22023) naming the first bad entry. An empty or
  // all-blank setting allows nothing.
  static HostAllowList parse(const std::string &setting);

  // Whether a URL's host (as in the URL; an IPv6 literal may keep its
  // brackets) may be connected to at all: a name entry matches the name, or
  // the host is an address literal inside an address or network entry.
  bool host_name_allowed(const std::string &host) const;

  // Whether a connection to `addr` (AF_INET or AF_INET6; anything else is
  // refused) may be opened: the address is inside an address or network
  // entry, or `host_allowed_by_name` (the URL's host is a name that a name
  // entry matched) and the address is not internal_address().
  bool address_allowed(const struct sockaddr *addr, bool host_allowed_by_name = false) const;

  // Whether `host` is an IPv4 or IPv6 address literal (brackets allowed).
  static bool is_address_literal(const std::string &host);

  // Loopback, private (RFC 1918, ULA), link-local, CGNAT shared, multicast,
  // unspecified, benchmarking and reserved ranges; NAT64 (64:ff9b::/96) is
  // judged by the IPv4 address it embeds.
  static bool internal_address(const struct sockaddr *addr);

  bool allows_nothing() const {
    return names_.empty() && suffixes_.empty() && !any_name_ && networks_.empty();
  }

 private:
  using Address = std::array<uint8_t, 16>;
  struct Network {
    Address base;
    int prefix_bits;
  };

  static bool network_contains(const Network &net, const Address &addr);
  bool in_networks(const Address &addr) const;

  std::vector<std::string> names_;     // lower case, no trailing dot
  std::vector<std::string> suffixes_;  // ".example.com" for "*.example.com"
  bool any_name_ = false;
  std::vector<Network> networks_;
};

}  // namespace cachekit
