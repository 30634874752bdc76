#include <gtest/gtest.h>

#include "core/cdn_settings.h"

using cachekit::cdn::known_provider;
using cachekit::cdn::provider_list;

TEST(CdnSettings, ProviderListTrimsDedupsAndKeepsOrder) {
  EXPECT_EQ(provider_list(" http, cloudfront ,http,,\tfastly "),
            (std::vector<std::string>{"http", "cloudfront", "fastly"}));
  EXPECT_TRUE(provider_list("").empty());
  EXPECT_TRUE(provider_list(" , ").empty());
}

TEST(CdnSettings, KnownProviders) {
  for (const char *p : {"cloudfront", "fastly", "cloudflare", "http"})
    EXPECT_TRUE(known_provider(p));
  for (const char *p : {"akamai", "HTTP", "", "http "}) EXPECT_FALSE(known_provider(p));
}
