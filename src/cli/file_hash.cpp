#include "cli/file_hash.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "cli/cli_error.h"

namespace cachekit::cli {

namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX *c) const { EVP_MD_CTX_free(c); }
};
struct FileCloser {
  void operator()(std::FILE *f) const { std::fclose(f); }
};

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
      throw CliError(kExitUsage, "could not initialise SHA-256");
  }
  void update(const void *data, std::size_t n) {
    if (EVP_DigestUpdate(ctx_.get(), data, n) != 1) throw CliError(kExitUsage, "SHA-256 failed");
  }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) throw CliError(kExitUsage, "SHA-256 failed");
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * len);
    for (unsigned int i = 0; i < len; ++i) {
      out += digits[md[i] >> 4];
      out += digits[md[i] & 0xf];
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx_;
};

}  // namespace

FileDigest sha256_file(const std::string &file) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(file.c_str(), "rb"));
  if (!f)
    throw CliError(kExitUsage, "could not open file \"" + file + "\"",
                   std::string(std::strerror(errno)) + ".");
  Sha256 sha;
  FileDigest d;
  static thread_local char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    sha.update(buf, n);
    d.size += n;
  }
  if (std::ferror(f.get()))
    throw CliError(kExitUsage, "could not read file \"" + file + "\"",
                   std::string(std::strerror(errno)) + ".");
  d.sha256_hex = sha.hex();
  return d;
}

std::string sha256_hex(std::string_view data) {
  Sha256 sha;
  sha.update(data.data(), data.size());
  return sha.hex();
}

}  // namespace cachekit::cli
