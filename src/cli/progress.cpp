#include "cli/progress.h"

#include <chrono>
#include <cstdio>

namespace cachekit::cli {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string human_bytes(std::uint64_t bytes) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

void Progress::show(const std::string &line, bool force) {
  // A terminal gets at most ten updates a second; the last one always shows.
  std::int64_t now = now_ms();
  if (!force && now - last_ms_ < 100) return;
  last_ms_ = now;
  std::fprintf(stderr, "\r%-78s", line.c_str());
  std::fflush(stderr);
  line_shown_ = true;
}

void Progress::hashing(std::size_t done, std::size_t total) {
  if (!enabled_ || !terminal_) return;
  show("hashing " + std::to_string(done) + "/" + std::to_string(total) + " files", done == total);
}

void Progress::uploading(std::size_t done_files, std::size_t total_files, std::uint64_t done_bytes,
                         std::uint64_t total_bytes, std::uint64_t current_bytes) {
  if (!enabled_ || !terminal_) return;
  show("uploading " + std::to_string(done_files + 1) + "/" + std::to_string(total_files) + ", " +
           human_bytes(done_bytes + current_bytes) + "/" + human_bytes(total_bytes),
       false);
}

void Progress::uploaded(std::size_t done_files, std::size_t total_files, std::uint64_t done_bytes,
                        std::uint64_t total_bytes, const std::string &path) {
  if (!enabled_) return;
  std::string counts = std::to_string(done_files) + "/" + std::to_string(total_files) + ", " +
                       human_bytes(done_bytes) + "/" + human_bytes(total_bytes);
  if (terminal_) {
    show("uploaded " + counts, done_files == total_files);
  } else {
    std::fprintf(stderr, "pg_cachekit-cdn: uploaded %s %s\n", counts.c_str(), path.c_str());
  }
}

void Progress::finish() {
  if (!line_shown_) return;
  std::fprintf(stderr, "\r%-78s\r", "");
  std::fflush(stderr);
  line_shown_ = false;
}

}  // namespace cachekit::cli
