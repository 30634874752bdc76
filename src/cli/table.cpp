#include "cli/table.h"

#include <algorithm>

namespace cachekit::cli {

namespace {

// Width in characters, counting UTF-8 continuation bytes as nothing.
std::size_t width(const std::string &s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++n;
  return n;
}

std::string cut(const std::string &s, std::size_t max) {
  std::string flat;
  for (char c : s) flat += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (width(flat) <= max) return flat;
  std::string out;
  std::size_t n = 0;
  for (std::size_t i = 0; i < flat.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(flat[i]);
    if ((c & 0xc0) != 0x80 && ++n > max - 3) break;
    out += flat[i];
  }
  return out + "...";
}

}  // namespace

void print_table(std::FILE *out, const std::vector<std::string> &header,
                 const std::vector<std::vector<std::string>> &rows, std::size_t max_cell) {
  std::vector<std::vector<std::string>> cells;
  cells.push_back(header);
  for (const auto &r : rows) {
    std::vector<std::string> row;
    for (const auto &c : r) row.push_back(cut(c, max_cell));
    cells.push_back(std::move(row));
  }
  std::vector<std::size_t> widths(header.size(), 0);
  for (const auto &r : cells)
    for (std::size_t i = 0; i < r.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], width(r[i]));
  for (const auto &r : cells) {
    std::string line;
    for (std::size_t i = 0; i < r.size() && i < widths.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(widths[i] - width(r[i]) + 2, ' ');
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

}  // namespace cachekit::cli
