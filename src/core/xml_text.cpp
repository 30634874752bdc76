#include "core/xml_text.h"

#include <cstdint>
#include <vector>

#include "core/error.h"

namespace cachekit {

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (unsigned char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
          throw Error(sqlstate::kCharacterNotInRepertoire, "text cannot be sent in XML",
                      "It contains a control character, which XML 1.0 cannot represent.");
        out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

namespace {

bool name_start(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c >= 0x80;
}

bool name_char(unsigned char c) {
  return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

bool xml_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void append_utf8(uint32_t cp, std::string *out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::string_view local_name(std::string_view qname) {
  const size_t colon = qname.rfind(':');
  return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

// One pass over the whole document: well-formedness is checked to the end
// even after the wanted element has been read. The element stack is explicit
// so that deep nesting cannot exhaust the C++ stack.
class Reader {
 public:
  Reader(std::string_view doc, std::string_view path) : doc_(doc) {
    size_t start = 0;
    while (true) {
      const size_t slash = path.find('/', start);
      want_.push_back(path.substr(start, slash - start));
      if (slash == std::string_view::npos) break;
      start = slash + 1;
    }
  }

  std::optional<std::string> run() {
    if (starts("\xEF\xBB\xBF")) pos_ += 3;
    if (starts("<?xml") && pos_ + 5 < doc_.size() && xml_space(doc_[pos_ + 5]))
      skip_past("?>", "unterminated XML declaration");
    skip_misc();
    if (!starts("<")) fail("no root element");
    start_tag();
    while (!stack_.empty()) {
      if (pos_ >= doc_.size()) fail("an element is not closed");
      if (starts("</")) {
        end_tag();
      } else if (starts("<!--")) {
        comment();
      } else if (starts("<![CDATA[")) {
        pos_ += 9;
        const size_t end = doc_.find("]]>", pos_);
        if (end == std::string_view::npos) fail("unterminated CDATA section");
        if (capturing()) text_.append(doc_.substr(pos_, end - pos_));
        pos_ = end + 3;
      } else if (starts("<?")) {
        processing_instruction();
      } else if (starts("<!")) {
        fail("markup declaration inside an element");
      } else if (starts("<")) {
        start_tag();
      } else {
        char_data();
      }
    }
    skip_misc();
    if (pos_ != doc_.size()) fail("content after the root element");
    if (!found_) return std::nullopt;
    return text_;
  }

 private:
  [[noreturn]] void fail(const char *what) const {
    throw Error(sqlstate::kInvalidTextRepresentation, "malformed XML",
                std::string("The document is not well-formed: ") + what + " at byte " +
                    std::to_string(pos_) + ".");
  }

  bool starts(std::string_view s) const { return doc_.substr(pos_, s.size()) == s; }

  bool capturing() const { return capture_depth_ != 0 && stack_.size() == capture_depth_; }

  void skip_past(std::string_view end, const char *what) {
    const size_t at = doc_.find(end, pos_);
    if (at == std::string_view::npos) fail(what);
    pos_ = at + end.size();
  }

  void skip_space() {
    while (pos_ < doc_.size() && xml_space(doc_[pos_])) ++pos_;
  }

  // Whitespace, comments and processing instructions around the root.
  void skip_misc() {
    while (true) {
      skip_space();
      if (starts("<!--")) {
        comment();
      } else if (starts("<?")) {
        processing_instruction();
      } else if (starts("<!")) {
        fail("a DOCTYPE or other declaration, which is not accepted");
      } else {
        return;
      }
    }
  }

  void comment() {
    pos_ += 4;
    const size_t end = doc_.find("--", pos_);
    if (end == std::string_view::npos) fail("unterminated comment");
    pos_ = end;
    if (!starts("-->")) fail("\"--\" inside a comment");
    pos_ += 3;
  }

  void processing_instruction() {
    pos_ += 2;
    const std::string_view target = name();
    if (target.size() == 3 && (target[0] | 0x20) == 'x' && (target[1] | 0x20) == 'm' &&
        (target[2] | 0x20) == 'l')
      fail("an XML declaration that is not at the start");
    skip_past("?>", "unterminated processing instruction");
  }

  std::string_view name() {
    const size_t start = pos_;
    if (pos_ >= doc_.size() || !name_start(static_cast<unsigned char>(doc_[pos_])))
      fail("a name was expected");
    while (pos_ < doc_.size() && name_char(static_cast<unsigned char>(doc_[pos_]))) ++pos_;
    return doc_.substr(start, pos_ - start);
  }

  // At '&': appends the referenced character to out (when out is set).
  void reference(std::string *out) {
    const size_t semi = doc_.find(';', pos_);
    if (semi == std::string_view::npos || semi - pos_ > 12) fail("a bad reference");
    const std::string_view ref = doc_.substr(pos_ + 1, semi - pos_ - 1);
    std::string decoded;
    if (ref == "lt") {
      decoded = "<";
    } else if (ref == "gt") {
      decoded = ">";
    } else if (ref == "amp") {
      decoded = "&";
    } else if (ref == "quot") {
      decoded = "\"";
    } else if (ref == "apos") {
      decoded = "'";
    } else if (ref.size() >= 2 && ref[0] == '#') {
      const bool hex = ref[1] == 'x';
      const std::string_view digits = ref.substr(hex ? 2 : 1);
      if (digits.empty()) fail("a bad character reference");
      uint32_t cp = 0;
      for (char c : digits) {
        int v;
        if (c >= '0' && c <= '9')
          v = c - '0';
        else if (hex && c >= 'a' && c <= 'f')
          v = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F')
          v = c - 'A' + 10;
        else
          fail("a bad character reference");
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
        if (cp > 0x10FFFF) fail("a character reference out of range");
      }
      const bool legal = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
                         (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000;
      if (!legal) fail("a reference to a character XML does not allow");
      append_utf8(cp, &decoded);
    } else {
      fail("a reference to an undeclared entity");
    }
    if (out) *out += decoded;
    pos_ = semi + 1;
  }

  void check_char(unsigned char c) const {
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) fail("a control character");
  }

  void char_data() {
    std::string *out = capturing() ? &text_ : nullptr;
    while (pos_ < doc_.size() && doc_[pos_] != '<') {
      const char c = doc_[pos_];
      if (c == '&') {
        reference(out);
        continue;
      }
      check_char(static_cast<unsigned char>(c));
      if (starts("]]>")) fail("\"]]>\" in text");
      if (out) {
        // Line ends are normalised to LF, as every XML processor does.
        if (c == '\r') {
          out->push_back('\n');
          if (pos_ + 1 < doc_.size() && doc_[pos_ + 1] == '\n') ++pos_;
        } else {
          out->push_back(c);
        }
      }
      ++pos_;
    }
  }

  void start_tag() {
    ++pos_;  // '<'
    const std::string_view qname = name();
    while (true) {
      const size_t before = pos_;
      skip_space();
      if (starts("/>") || starts(">")) break;
      if (pos_ == before) fail("no space before an attribute");
      name();
      skip_space();
      if (!starts("=")) fail("an attribute without a value");
      ++pos_;
      skip_space();
      if (pos_ >= doc_.size() || (doc_[pos_] != '"' && doc_[pos_] != '\''))
        fail("an unquoted attribute value");
      const char quote = doc_[pos_++];
      while (pos_ < doc_.size() && doc_[pos_] != quote) {
        if (doc_[pos_] == '<') fail("'<' in an attribute value");
        if (doc_[pos_] == '&') {
          reference(nullptr);
          continue;
        }
        check_char(static_cast<unsigned char>(doc_[pos_]));
        ++pos_;
      }
      if (pos_ >= doc_.size()) fail("an unterminated attribute value");
      ++pos_;
    }
    const bool empty = starts("/>");
    pos_ += empty ? 2 : 1;

    stack_.push_back(qname);
    const bool match = !found_ && stack_.size() == want_.size() && path_matches();
    if (match) {
      found_ = true;
      capture_depth_ = stack_.size();
    }
    if (empty) close_top();
  }

  void end_tag() {
    pos_ += 2;
    const std::string_view qname = name();
    skip_space();
    if (!starts(">")) fail("a bad end tag");
    ++pos_;
    if (qname != stack_.back()) fail("an end tag that does not match its start tag");
    close_top();
  }

  void close_top() {
    if (stack_.size() == capture_depth_) capture_depth_ = 0;
    stack_.pop_back();
  }

  bool path_matches() const {
    for (size_t i = 0; i < want_.size(); ++i)
      if (local_name(stack_[i]) != want_[i]) return false;
    return true;
  }

  std::string_view doc_;
  size_t pos_ = 0;
  std::vector<std::string_view> want_;
  std::vector<std::string_view> stack_;
  bool found_ = false;
  size_t capture_depth_ = 0;  // stack depth of the element being read; 0 when none
  std::string text_;
};

}  // namespace

std::optional<std::string> xml_element_text(std::string_view doc, std::string_view path) {
  return Reader(doc, path).run();
}

}  // namespace cachekit
