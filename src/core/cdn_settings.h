// cachekit.cdn_provider: which providers a purge goes to. One parser for the
// setting's check hook, the purge functions and the dispatcher, so that all
// three read the same list.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cachekit::cdn {

// The names in a comma-separated list, blanks around them dropped, each
// once, in order of first appearance.
std::vector<std::string> provider_list(std::string_view setting);

// cloudfront, fastly, cloudflare or http.
bool known_provider(std::string_view name);

}  // namespace cachekit::cdn
