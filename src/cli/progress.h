// Progress of a sync on stderr: on a terminal one line rewritten in place,
// otherwise (with --progress) one line per file uploaded.
#pragma once

#include <cstdint>
#include <string>

namespace cachekit::cli {

std::string human_bytes(std::uint64_t bytes);  // "512 B", "1.5 KiB", "3.2 MiB"

class Progress {
 public:
  Progress(bool enabled, bool terminal) : enabled_(enabled), terminal_(terminal) {}
  ~Progress() { finish(); }

  void hashing(std::size_t done, std::size_t total);
  // `current_bytes` of the file now going up; done_files/done_bytes before it.
  void uploading(std::size_t done_files, std::size_t total_files, std::uint64_t done_bytes,
                 std::uint64_t total_bytes, std::uint64_t current_bytes);
  void uploaded(std::size_t done_files, std::size_t total_files, std::uint64_t done_bytes,
                std::uint64_t total_bytes, const std::string &path);
  void finish();  // clears the terminal line

 private:
  void show(const std::string &line, bool force);
  bool enabled_, terminal_;
  bool line_shown_ = false;
  std::int64_t last_ms_ = 0;
};

}  // namespace cachekit::cli
