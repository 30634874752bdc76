#include "core/key_template.h"

#include <algorithm>

#include "core/error.h"
#include "core/keys.h"

namespace cachekit {

namespace {
bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

[[noreturn]] void bad(const std::string &why) {
  throw Error(sqlstate::kInvalidParameterValue, "invalid key template", why,
              "Write placeholders as {column}; write a literal brace as {{ or }}.");
}
}  // namespace

std::string percent_encode(std::string_view value) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
  return out;
}

KeyTemplate KeyTemplate::parse(std::string_view text) {
  if (text.empty()) bad("The template is empty.");
  KeyTemplate t;
  std::string literal;
  size_t literal_bytes = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      literal.push_back('{');
      ++i;
    } else if (c == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      literal.push_back('}');
      ++i;
    } else if (c == '}') {
      bad("A '}' at byte " + std::to_string(i + 1) + " closes no placeholder.");
    } else if (c == '{') {
      size_t end = text.find('}', i + 1);
      if (end == std::string_view::npos)
        bad("The placeholder at byte " + std::to_string(i + 1) + " is not closed.");
      std::string name(text.substr(i + 1, end - i - 1));
      if (name.empty()) bad("The placeholder at byte " + std::to_string(i + 1) + " is empty.");
      if (name.find('{') != std::string::npos) bad("Placeholders cannot be nested.");
      if (!literal.empty()) {
        literal_bytes += literal.size();
        t.parts_.push_back(Part{false, literal, 0});
        literal.clear();
      }
      auto it = std::find(t.columns_.begin(), t.columns_.end(), name);
      size_t index = static_cast<size_t>(it - t.columns_.begin());
      if (it == t.columns_.end()) t.columns_.push_back(name);
      t.parts_.push_back(Part{true, name, index});
      i = end;
    } else {
      literal.push_back(c);
    }
  }
  if (!literal.empty()) {
    literal_bytes += literal.size();
    t.parts_.push_back(Part{false, literal, 0});
  }
  if (literal_bytes > kMaxKeyBytes)
    bad("Its literal text alone is longer than " + std::to_string(kMaxKeyBytes) + " bytes.");
  return t;
}

std::optional<std::string> KeyTemplate::expand(
    const std::vector<std::optional<std::string>> &values) const {
  std::string key;
  for (const Part &p : parts_) {
    if (!p.placeholder) {
      key += p.text;
      continue;
    }
    if (p.column >= values.size() || !values[p.column]) return std::nullopt;
    key += percent_encode(*values[p.column]);
  }
  return key;
}

std::string KeyTemplate::pattern() const {
  std::string out;
  for (const Part &p : parts_) out += p.placeholder ? std::string("*") : glob_escape(p.text);
  return out;
}

}  // namespace cachekit
