#include "core/row_codec.h"

#include <cstring>

#include "core/error.h"
#include "core/le_bytes.h"

namespace cachekit {

namespace {

constexpr char kMagic[3] = {'C', 'K', 'R'};
constexpr uint32_t kNull = 0xFFFFFFFFu;
constexpr uint64_t kMaxColumnlessRows = 100000000;

}  // namespace

RowEncoder::RowEncoder(const std::vector<uint32_t> &column_types) : ncols_(column_types.size()) {
  buf_.append(kMagic, sizeof kMagic);
  buf_.push_back(static_cast<char>(kRowFormatVersion));
  put_le32(buf_, static_cast<uint32_t>(ncols_));
  for (uint32_t t : column_types) put_le32(buf_, t);
  rows_offset_ = buf_.size();
  put_le64(buf_, 0);
}

void RowEncoder::add_null() {
  put_le32(buf_, kNull);
  ++in_row_;
}

void RowEncoder::add_value(std::string_view text) {
  if (text.size() >= kNull)
    throw Error(sqlstate::kProgramLimitExceeded, "value too large for the result cache");
  put_le32(buf_, static_cast<uint32_t>(text.size()));
  buf_.append(text.data(), text.size());
  ++in_row_;
}

void RowEncoder::end_row() {
  if (in_row_ != ncols_)
    throw Error(sqlstate::kInternalError, "row has the wrong number of columns");
  in_row_ = 0;
  ++rows_;
}

std::string RowEncoder::finish() {
  for (int i = 0; i < 8; ++i) buf_[rows_offset_ + i] = static_cast<char>((rows_ >> (8 * i)) & 0xFF);
  return std::move(buf_);
}

std::optional<RowDecoder> RowDecoder::open(std::string_view data) {
  RowDecoder d;
  d.data_ = data;
  if (data.size() < sizeof kMagic + 1 || memcmp(data.data(), kMagic, sizeof kMagic) != 0)
    return std::nullopt;
  if (static_cast<uint8_t>(data[3]) != kRowFormatVersion) return std::nullopt;
  d.pos_ = 4;
  uint32_t ncols = 0;
  if (!get_le32(data, d.pos_, ncols)) return std::nullopt;
  // Each column type takes 4 bytes: a count larger than the buffer is corrupt.
  if (ncols > (data.size() - d.pos_) / 4) return std::nullopt;
  d.types_.resize(ncols);
  for (auto &t : d.types_)
    if (!get_le32(data, d.pos_, t)) return std::nullopt;
  if (!get_le64(data, d.pos_, d.rows_)) return std::nullopt;
  // Every row takes at least 4 bytes per column.
  if (ncols > 0 && d.rows_ > (data.size() - d.pos_) / (4ull * ncols)) return std::nullopt;
  // No rows or no columns: nothing may follow the header (next_row() would
  // never look at the trailing bytes).
  if ((d.rows_ == 0 || ncols == 0) && d.pos_ != data.size()) return std::nullopt;
  // Rows without columns take no bytes, so their count cannot be checked
  // against the buffer: cap it instead of trusting it.
  if (ncols == 0 && d.rows_ > kMaxColumnlessRows) return std::nullopt;
  d.current_.resize(ncols);
  return d;
}

bool RowDecoder::next_row() {
  if (corrupt_ || read_ >= rows_) return false;
  for (auto &c : current_) {
    uint32_t len = 0;
    if (!get_le32(data_, pos_, len)) {
      corrupt_ = true;
      return false;
    }
    if (len == kNull) {
      c.reset();
      continue;
    }
    if (data_.size() - pos_ < len) {
      corrupt_ = true;
      return false;
    }
    c = data_.substr(pos_, len);
    pos_ += len;
  }
  ++read_;
  if (read_ == rows_ && pos_ != data_.size()) corrupt_ = true;  // trailing bytes
  return !corrupt_;
}

}  // namespace cachekit
