// UTF-8 validity as Postgres judges it: no overlong forms, no surrogates,
// nothing past U+10FFFF. Used by the SMTP message builder and by
// pg_cachekit-cdn for file names.
#pragma once

#include <string_view>

namespace cachekit {

bool valid_utf8(std::string_view s);

}  // namespace cachekit
