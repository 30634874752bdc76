// Content-Type of an uploaded file, guessed from its extension as web
// servers do; application/octet-stream when the extension is unknown.
#pragma once

#include <string>
#include <string_view>

namespace cachekit::cli {

std::string guess_content_type(std::string_view path);

}  // namespace cachekit::cli
