#include "cli/asset_scan.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "cli/cli_error.h"

namespace cachekit::cli {

namespace fs = std::filesystem;

bool valid_utf8(const std::string &s) {
  std::size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    unsigned int cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF: Postgres refuses them too.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return false;
    i += len;
  }
  return true;
}

std::vector<LocalFile> scan_directory(const std::string &dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw CliError(kExitUsage, "\"" + dir + "\" is not a directory",
                   ec ? ec.message() + "." : std::string());
  std::vector<LocalFile> out;
  // Entries come out as base/<relative>, so the relative part is lexical: no
  // canonicalisation that would resolve a symbolic link to where it points.
  const fs::path base = fs::path(dir).lexically_normal();
  fs::recursive_directory_iterator it(base, fs::directory_options::none, ec), end;
  if (ec)
    throw CliError(kExitUsage, "could not read directory \"" + dir + "\"", ec.message() + ".");
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const fs::directory_entry &e = *it;
    std::error_code fec;
    // is_regular_file follows a symbolic link to its target.
    if (!e.is_regular_file(fec)) continue;
    std::string rel = e.path().lexically_relative(base).generic_string();
    if (rel.empty()) continue;
    if (!valid_utf8(rel))
      throw CliError(kExitUsage, "file name is not valid UTF-8",
                     "The file \"" + e.path().string() +
                         "\" cannot be named in the asset manifest, which is text.",
                     "Rename the file.");
    std::uintmax_t size = e.file_size(fec);
    if (fec)
      throw CliError(kExitUsage, "could not read file \"" + e.path().string() + "\"",
                     fec.message() + ".");
    out.push_back(LocalFile{"/" + rel, e.path().string(), static_cast<std::uint64_t>(size)});
  }
  if (ec)
    throw CliError(kExitUsage, "could not read directory \"" + dir + "\"", ec.message() + ".");
  std::sort(out.begin(), out.end(),
            [](const LocalFile &a, const LocalFile &b) { return a.path < b.path; });
  return out;
}

}  // namespace cachekit::cli
