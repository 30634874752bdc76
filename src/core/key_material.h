// The canonical byte string a cached_query key is hashed from.
//
// Each field is written as tag, length and value, so no two different field
// sequences produce the same bytes (no ambiguity between "ab"+"c" and
// "a"+"bc"). The glue hashes the result with SHA-256 and the key becomes
// <prefix>q:<64 hex digits>.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cachekit {

class KeyMaterial {
 public:
  void add(char tag, std::string_view value);
  void add_u64(char tag, uint64_t value);
  void add_null(char tag);
  const std::string &bytes() const { return buf_; }
  void clear() { buf_.clear(); }

 private:
  std::string buf_;
};

std::string hex_encode(const unsigned char *data, size_t len);

}  // namespace cachekit
