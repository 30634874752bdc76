// The files of a directory as the asset manifest names them: "/" followed by
// the path relative to the directory, '/'-separated, not percent-encoded.
#pragma once

#include "core/utf8.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cachekit::cli {

struct LocalFile {
  std::string path;  // manifest path, e.g. "/css/app.css"
  std::string file;  // where it is on disk
  std::uint64_t size = 0;
};

// Regular files, and symbolic links to regular files, below dir, sorted by
// path. Symbolic links to directories are not followed (no cycles, nothing
// outside dir by accident). Throws CliError(kExitUsage) when dir is not a
// readable directory or a file name is not valid UTF-8 (the manifest is text).
std::vector<LocalFile> scan_directory(const std::string &dir);

using cachekit::valid_utf8;  // core/utf8.h

}  // namespace cachekit::cli
