#include "cli/asset_scan.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "cli/cli_error.h"

namespace cachekit::cli {

namespace fs = std::filesystem;

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
