#include "core/key_material.h"

#include "core/le_bytes.h"

namespace cachekit {

void KeyMaterial::add(char tag, std::string_view value) {
  buf_.push_back(tag);
  put_le64(buf_, value.size());
  buf_.append(value.data(), value.size());
}

void KeyMaterial::add_u64(char tag, uint64_t value) {
  // A length no string can have marks a number, so a number never reads the
  // same as an 8-byte string under the same tag.
  buf_.push_back(tag);
  put_le64(buf_, UINT64_MAX - 1);
  put_le64(buf_, value);
}

void KeyMaterial::add_null(char tag) {
  buf_.push_back(tag);
  put_le64(buf_, UINT64_MAX);  // distinct from any length, so NULL != ''
}

std::string hex_encode(const unsigned char *data, size_t len) {
  static const char digits[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xF];
  }
  return out;
}

}  // namespace cachekit
