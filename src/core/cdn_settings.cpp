#include "core/cdn_settings.h"

#include <algorithm>

namespace cachekit::cdn {

std::vector<std::string> provider_list(std::string_view setting) {
  std::vector<std::string> out;
  std::string item;
  for (std::size_t i = 0; i <= setting.size(); ++i) {
    char c = i < setting.size() ? setting[i] : ',';
    if (c == ' ' || c == '\t') continue;
    if (c != ',') {
      item.push_back(c);
      continue;
    }
    if (!item.empty() && std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
    item.clear();
  }
  return out;
}

bool known_provider(std::string_view name) {
  return name == "cloudfront" || name == "fastly" || name == "cloudflare" || name == "http";
}

}  // namespace cachekit::cdn
