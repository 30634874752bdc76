#include "core/value_codec.h"

#include <cstring>
#include <string>

#include "core/error.h"

namespace cachekit {

void check_value_size(std::size_t value_bytes, std::size_t max_bytes) {
  if (value_bytes <= max_bytes) return;
  throw Error(sqlstate::kProgramLimitExceeded, "value is too large for the cache",
              "The value has " + std::to_string(value_bytes) +
                  " bytes; cachekit.max_value_bytes is " + std::to_string(max_bytes) + ".",
              "Raise cachekit.max_value_bytes or store a smaller value.");
}

void check_text_compatible(std::string_view value) {
  if (value.empty()) return;
  const void *nul = std::memchr(value.data(), '\0', value.size());
  if (nul == nullptr) return;
  std::size_t offset = static_cast<const char *>(nul) - value.data();
  throw Error(sqlstate::kCharacterNotInRepertoire, "cached value cannot be read as text",
              "It contains a NUL byte at offset " + std::to_string(offset) + ".",
              "Use cachekit.cache_get_bytea() for binary values.");
}

}  // namespace cachekit
