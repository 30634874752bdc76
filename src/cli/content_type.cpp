#include "cli/content_type.h"

#include <utility>

namespace cachekit::cli {

namespace {

// The types a static-asset directory usually holds. JavaScript is text/javascript
// (RFC 9239); text types carry no charset, like Python's mimetypes, which the
// seed's uploads used.
constexpr std::pair<const char *, const char *> kTypes[] = {
    {"html", "text/html"},       {"htm", "text/html"},
    {"css", "text/css"},         {"js", "text/javascript"},
    {"mjs", "text/javascript"},  {"json", "application/json"},
    {"map", "application/json"}, {"webmanifest", "application/manifest+json"},
    {"xml", "application/xml"},  {"txt", "text/plain"},
    {"md", "text/markdown"},     {"csv", "text/csv"},
    {"svg", "image/svg+xml"},    {"png", "image/png"},
    {"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},        {"webp", "image/webp"},
    {"avif", "image/avif"},      {"ico", "image/vnd.microsoft.icon"},
    {"bmp", "image/bmp"},        {"woff", "font/woff"},
    {"woff2", "font/woff2"},     {"ttf", "font/ttf"},
    {"otf", "font/otf"},         {"eot", "application/vnd.ms-fontobject"},
    {"pdf", "application/pdf"},  {"wasm", "application/wasm"},
    {"mp4", "video/mp4"},        {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},       {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},        {"zip", "application/zip"},
    {"gz", "application/gzip"},
};

}  // namespace

std::string guess_content_type(std::string_view path) {
  std::size_t slash = path.rfind('/');
  std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  std::size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == name.size())
    return "application/octet-stream";
  std::string ext;
  for (char c : name.substr(dot + 1))
    ext += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  for (const auto &[e, type] : kTypes)
    if (ext == e) return type;
  return "application/octet-stream";
}

}  // namespace cachekit::cli
