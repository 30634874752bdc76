// Little-endian integers in byte strings, for the project's own compact
// encodings (stored query results, the relay's queue, key material).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cachekit {

inline void put_le32(std::string &b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

inline void put_le64(std::string &b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Reads at pos and advances it; false (pos unchanged) when fewer bytes remain.
inline bool get_le32(std::string_view d, size_t &pos, uint32_t &v) {
  if (d.size() - pos < 4) return false;
  v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<uint8_t>(d[pos + i])) << (8 * i);
  pos += 4;
  return true;
}

inline bool get_le64(std::string_view d, size_t &pos, uint64_t &v) {
  if (d.size() - pos < 8) return false;
  v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(d[pos + i])) << (8 * i);
  pos += 8;
  return true;
}

}  // namespace cachekit
