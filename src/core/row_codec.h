// The stored form of a cached query result.
//
//   "CKR" | format version (1 byte) | ncols (u32) | ncols x type oid (u32)
//   | nrows (u64) | rows: per column, length (u32; 0xFFFFFFFF = NULL) + bytes
//
// Values are the types' text output (so every type works, and the output
// settings that shape it are part of the cache key). Integers are little
// endian. A reader checks the magic, the version and the column types against
// what the caller expects, and every length against the buffer: a corrupt,
// truncated or foreign entry is reported (and treated as a miss by the
// caller), never trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachekit {

inline constexpr uint8_t kRowFormatVersion = 1;

class RowEncoder {
 public:
  explicit RowEncoder(const std::vector<uint32_t> &column_types);
  void add_null();
  void add_value(std::string_view text);
  void end_row();
  // Finishes the buffer (patches the row count) and hands it over.
  std::string finish();
  size_t size() const { return buf_.size(); }
  uint64_t rows() const { return rows_; }

 private:
  std::string buf_;
  size_t ncols_;
  size_t in_row_ = 0;
  uint64_t rows_ = 0;
  size_t rows_offset_;
};

class RowDecoder {
 public:
  // nullopt when the bytes are not a complete result of this format version.
  static std::optional<RowDecoder> open(std::string_view data);

  const std::vector<uint32_t> &column_types() const { return types_; }
  uint64_t rows() const { return rows_; }
  // Advances to the next row; false at the end. Throws nothing: a malformed
  // row makes it return false and sets corrupt().
  bool next_row();
  // Column i of the current row; nullopt for NULL.
  std::optional<std::string_view> column(size_t i) const { return current_[i]; }
  bool corrupt() const { return corrupt_; }

 private:
  RowDecoder() = default;
  std::string_view data_;
  size_t pos_ = 0;
  std::vector<uint32_t> types_;
  uint64_t rows_ = 0;
  uint64_t read_ = 0;
  std::vector<std::optional<std::string_view>> current_;
  bool corrupt_ = false;
};

}  // namespace cachekit
