// SHA-256 of files and strings, as lower-case hex (OpenSSL's libcrypto).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cachekit::cli {

struct FileDigest {
  std::string sha256_hex;
  std::uint64_t size = 0;  // bytes actually read, which is what was hashed
};

// Reads the file once. Throws CliError(kExitUsage) when it cannot be read.
FileDigest sha256_file(const std::string &file);

std::string sha256_hex(std::string_view data);

}  // namespace cachekit::cli
