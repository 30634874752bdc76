// Key templates of cachekit.invalidate_key_on(): 'user_reports:{user_id}'.
//
// A template is literal text with {column} placeholders. Expanding it puts
// each column's value (its text output) in place of the placeholder,
// percent-encoded: every byte outside A-Z a-z 0-9 '-' '.' '_' becomes %XX
// (upper-case hex). So a value containing ':', '{', '}', '*', spaces, NUL or
// bytes that are not UTF-8 cannot make a key of another shape: the expanded
// placeholder only ever holds unreserved characters and %XX triples. A
// literal '{' or '}' is written '{{' or '}}'. A NULL value produces no key
// (there is nothing an application could have cached under it).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachekit {

class KeyTemplate {
 public:
  // Throws cachekit::Error (22023) for an empty template, an unclosed or
  // empty placeholder, a stray '}' or a key longer than 512 bytes of literal
  // text.
  static KeyTemplate parse(std::string_view text);

  // Placeholder column names, in order of first appearance, without repeats.
  const std::vector<std::string> &columns() const { return columns_; }

  // values[i] is the text of columns()[i]; nullopt (NULL) gives no key.
  std::optional<std::string> expand(const std::vector<std::optional<std::string>> &values) const;

  // A Redis SCAN MATCH pattern matching every key this template can produce
  // (placeholders become '*', literal glob characters are escaped).
  std::string pattern() const;

 private:
  struct Part {
    bool placeholder;
    std::string text;  // literal text, or the column name
    size_t column;     // index into columns_ for placeholders
  };
  std::vector<Part> parts_;
  std::vector<std::string> columns_;
};

// Percent-encodes every byte outside the unreserved set (RFC 3986).
std::string percent_encode(std::string_view value);

}  // namespace cachekit
