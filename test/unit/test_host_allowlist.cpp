#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "core/host_allowlist.h"

namespace cachekit {
namespace {

// An IPv4 or IPv6 address as curl would hand it to the open-socket callback.
struct SockAddr {
  sockaddr_storage storage{};
  const sockaddr *get() const { return reinterpret_cast<const sockaddr *>(&storage); }
};

SockAddr addr(const std::string &text) {
  SockAddr a;
  if (text.find(':') == std::string::npos) {
    auto *in = reinterpret_cast<sockaddr_in *>(&a.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(80);
    EXPECT_EQ(inet_pton(AF_INET, text.c_str(), &in->sin_addr), 1) << text;
  } else {
    auto *in6 = reinterpret_cast<sockaddr_in6 *>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(80);
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr), 1) << text;
  }
  return a;
}

bool address_allowed(const HostAllowList &list, const std::string &text, bool by_name = false) {
  return list.address_allowed(addr(text).get(), by_name);
}

void expect_bad(const std::string &setting, const std::string &entry) {
  try {
    HostAllowList::parse(setting);
    ADD_FAILURE() << "accepted: " << setting;
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue) << setting;
    EXPECT_NE(std::string(e.what()).find("\"" + entry + "\""), std::string::npos)
        << setting << ": " << e.what();
    EXPECT_FALSE(e.detail().empty()) << setting;
  }
}

TEST(HostAllowList, EmptySettingAllowsNothing) {
  for (const char *setting : {"", "  ", " , ,"}) {
    HostAllowList list = HostAllowList::parse(setting);
    EXPECT_TRUE(list.allows_nothing()) << setting;
    EXPECT_FALSE(list.host_name_allowed("localhost"));
    EXPECT_FALSE(list.host_name_allowed("127.0.0.1"));
    EXPECT_FALSE(address_allowed(list, "127.0.0.1"));
    EXPECT_FALSE(address_allowed(list, "93.184.216.34", true));
  }
}

TEST(HostAllowList, LoopbackWord) {
  HostAllowList list = HostAllowList::parse("loopback");
  EXPECT_FALSE(list.allows_nothing());
  EXPECT_TRUE(address_allowed(list, "127.0.0.1"));
  EXPECT_TRUE(address_allowed(list, "127.255.255.254"));
  EXPECT_TRUE(address_allowed(list, "::1"));
  EXPECT_TRUE(address_allowed(list, "::ffff:127.0.0.1"));  // IPv4-mapped
  EXPECT_FALSE(address_allowed(list, "128.0.0.1"));
  EXPECT_FALSE(address_allowed(list, "126.255.255.255"));
  EXPECT_FALSE(address_allowed(list, "::2"));
  EXPECT_FALSE(address_allowed(list, "10.0.0.1"));
  EXPECT_TRUE(list.host_name_allowed("127.0.0.1"));
  EXPECT_TRUE(list.host_name_allowed("[::1]"));
  EXPECT_TRUE(list.host_name_allowed("::1"));
  // loopback is addresses, not the name localhost
  EXPECT_FALSE(list.host_name_allowed("localhost"));
  EXPECT_TRUE(HostAllowList::parse(" LoopBack ").host_name_allowed("127.0.0.2"));
}

TEST(HostAllowList, Ipv4Networks) {
  HostAllowList list = HostAllowList::parse("10.0.0.0/8, 192.168.1.0/24,203.0.113.7");
  EXPECT_TRUE(address_allowed(list, "10.0.0.0"));
  EXPECT_TRUE(address_allowed(list, "10.255.255.255"));
  EXPECT_FALSE(address_allowed(list, "11.0.0.0"));
  EXPECT_FALSE(address_allowed(list, "9.255.255.255"));
  EXPECT_TRUE(address_allowed(list, "192.168.1.200"));
  EXPECT_FALSE(address_allowed(list, "192.168.2.1"));
  EXPECT_TRUE(address_allowed(list, "203.0.113.7"));
  EXPECT_FALSE(address_allowed(list, "203.0.113.8"));
  EXPECT_TRUE(address_allowed(list, "::ffff:10.1.2.3"));
  EXPECT_FALSE(address_allowed(list, "127.0.0.1"));
  EXPECT_TRUE(list.host_name_allowed("10.20.30.40"));
  EXPECT_FALSE(list.host_name_allowed("127.0.0.1"));
  EXPECT_FALSE(list.host_name_allowed("intranet"));

  HostAllowList all_v4 = HostAllowList::parse("0.0.0.0/0");
  EXPECT_TRUE(address_allowed(all_v4, "8.8.8.8"));
  EXPECT_TRUE(address_allowed(all_v4, "127.0.0.1"));
  EXPECT_FALSE(address_allowed(all_v4, "2001:db8::1"));

  HostAllowList odd = HostAllowList::parse("172.16.0.0/12,100.64.0.0/10");
  EXPECT_TRUE(address_allowed(odd, "172.31.255.255"));
  EXPECT_FALSE(address_allowed(odd, "172.32.0.0"));
  EXPECT_TRUE(address_allowed(odd, "100.127.0.1"));
  EXPECT_FALSE(address_allowed(odd, "100.128.0.1"));
}

TEST(HostAllowList, Ipv6Networks) {
  HostAllowList list = HostAllowList::parse("2001:db8::/32,[fd00::1],fe80::/10");
  EXPECT_TRUE(address_allowed(list, "2001:db8::1"));
  EXPECT_TRUE(address_allowed(list, "2001:db8:ffff:ffff::1"));
  EXPECT_FALSE(address_allowed(list, "2001:db9::1"));
  EXPECT_TRUE(address_allowed(list, "fd00::1"));
  EXPECT_FALSE(address_allowed(list, "fd00::2"));
  EXPECT_TRUE(address_allowed(list, "febf::1"));
  EXPECT_FALSE(address_allowed(list, "fec0::1"));
  EXPECT_FALSE(address_allowed(list, "10.0.0.1"));
  EXPECT_TRUE(list.host_name_allowed("[2001:db8::abcd]"));
  EXPECT_FALSE(list.host_name_allowed("[2001:dead::1]"));

  HostAllowList everything = HostAllowList::parse("::/0");
  EXPECT_TRUE(address_allowed(everything, "2001:db8::1"));
  EXPECT_TRUE(address_allowed(everything, "8.8.8.8"));  // IPv4 is ::ffff:0:0/96
}

TEST(HostAllowList, NameEntries) {
  HostAllowList list = HostAllowList::parse("API.Example.com, *.hooks.example.org,my_host");
  EXPECT_TRUE(list.host_name_allowed("api.example.com"));
  EXPECT_TRUE(list.host_name_allowed("API.EXAMPLE.COM."));
  EXPECT_FALSE(list.host_name_allowed("example.com"));
  EXPECT_FALSE(list.host_name_allowed("www.api.example.com"));
  EXPECT_FALSE(list.host_name_allowed("api.example.com.evil.net"));
  EXPECT_TRUE(list.host_name_allowed("a.hooks.example.org"));
  EXPECT_TRUE(list.host_name_allowed("a.b.hooks.example.org"));
  EXPECT_FALSE(list.host_name_allowed("hooks.example.org"));
  EXPECT_FALSE(list.host_name_allowed("xhooks.example.org"));
  EXPECT_FALSE(list.host_name_allowed("hooks.example.org.evil.net"));
  EXPECT_TRUE(list.host_name_allowed("my_host"));
  EXPECT_FALSE(list.host_name_allowed("127.0.0.1"));
  EXPECT_FALSE(list.host_name_allowed(""));
  // Not names at all, or not in the form a resolver takes as a name.
  EXPECT_FALSE(list.host_name_allowed("api.example.com%2f"));
  EXPECT_FALSE(HostAllowList::parse("*").host_name_allowed("10.1"));
  EXPECT_FALSE(HostAllowList::parse("*").host_name_allowed("b\xc3\xbc.example.com"));
}

TEST(HostAllowList, AnyName) {
  HostAllowList list = HostAllowList::parse("*");
  EXPECT_TRUE(list.host_name_allowed("example.com"));
  EXPECT_TRUE(list.host_name_allowed("localhost"));
  // address literals need address entries
  EXPECT_FALSE(list.host_name_allowed("93.184.216.34"));
  EXPECT_FALSE(list.host_name_allowed("[2001:db8::1]"));
}

TEST(HostAllowList, NameEntriesDoNotOpenInternalAddresses) {
  HostAllowList list = HostAllowList::parse("example.com");
  EXPECT_TRUE(address_allowed(list, "93.184.216.34", true));
  EXPECT_TRUE(address_allowed(list, "2606:2800:220:1:248:1893:25c8:1946", true));
  EXPECT_FALSE(address_allowed(list, "93.184.216.34", false));
  for (const char *internal : {"127.0.0.1",
                               "127.1.2.3",
                               "10.1.2.3",
                               "172.16.0.1",
                               "172.31.255.255",
                               "192.168.0.10",
                               "169.254.169.254",
                               "100.64.0.1",
                               "0.0.0.0",
                               "224.0.0.1",
                               "255.255.255.255",
                               "::1",
                               "::",
                               "fd12:3456::1",
                               "fe80::1",
                               "ff02::1",
                               "::ffff:127.0.0.1",
                               "::ffff:10.0.0.1",
                               "64:ff9b::a00:1",
                               "64:ff9b::7f00:1"}) {
    EXPECT_FALSE(address_allowed(list, internal, true)) << internal;
    EXPECT_TRUE(HostAllowList::internal_address(addr(internal).get())) << internal;
  }
  EXPECT_FALSE(HostAllowList::internal_address(addr("64:ff9b::5db8:d822").get()));  // NAT64 public
  EXPECT_TRUE(address_allowed(list, "64:ff9b::5db8:d822", true));

  // Internal ranges are reachable through names once an address entry covers them.
  HostAllowList with_nets = HostAllowList::parse("example.com,10.0.0.0/8,loopback");
  EXPECT_TRUE(address_allowed(with_nets, "10.1.2.3", true));
  EXPECT_TRUE(address_allowed(with_nets, "127.0.0.1", true));
  EXPECT_TRUE(address_allowed(with_nets, "::1", true));
  EXPECT_FALSE(address_allowed(with_nets, "192.168.0.10", true));
  EXPECT_FALSE(address_allowed(with_nets, "169.254.169.254", true));
}

TEST(HostAllowList, OtherAddressFamiliesRefused) {
  HostAllowList list = HostAllowList::parse("*,::/0");
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/tmp/x.sock");
  EXPECT_FALSE(list.address_allowed(reinterpret_cast<const sockaddr *>(&un), true));
  EXPECT_FALSE(list.address_allowed(nullptr, true));
}

TEST(HostAllowList, BadEntries) {
  expect_bad("10.0.0.0/33", "10.0.0.0/33");
  expect_bad("loopback, ::1/129", "::1/129");
  expect_bad("10.0.0.1/8", "10.0.0.1/8");  // host bits set
  expect_bad("fd00::1/8", "fd00::1/8");
  expect_bad("10.0.0.0/", "10.0.0.0/");
  expect_bad("10.0.0.0/x", "10.0.0.0/x");
  expect_bad("10.0.0.0/-1", "10.0.0.0/-1");
  expect_bad("[::1]/128", "[::1]/128");
  expect_bad("example.com/24", "example.com/24");
  expect_bad("exa mple.com", "exa mple.com");
  expect_bad("http://example.com", "http://example.com");
  expect_bad("example.com:8080", "example.com:8080");
  expect_bad("foo*.example.com", "foo*.example.com");
  expect_bad("*.*.example.com", "*.*.example.com");
  expect_bad("*.", "*.");
  expect_bad("a..b", "a..b");
  expect_bad("10.1", "10.1");  // a partial IPv4 address, not a name
  expect_bad("256.1.1.1", "256.1.1.1");
  expect_bad("b\xc3\xbc.example.com", "b\xc3\xbc.example.com");
  expect_bad("ok.example.com, bad!", "bad!");
  expect_bad(std::string(64, 'a') + ".com", std::string(64, 'a') + ".com");
}

TEST(HostAllowList, AddressLiterals) {
  EXPECT_TRUE(HostAllowList::is_address_literal("127.0.0.1"));
  EXPECT_TRUE(HostAllowList::is_address_literal("[::1]"));
  EXPECT_TRUE(HostAllowList::is_address_literal("::ffff:1.2.3.4"));
  EXPECT_FALSE(HostAllowList::is_address_literal("localhost"));
  EXPECT_FALSE(HostAllowList::is_address_literal("127.1"));
  EXPECT_FALSE(HostAllowList::is_address_literal("[127.0.0.1"));
}

}  // namespace
}  // namespace cachekit
