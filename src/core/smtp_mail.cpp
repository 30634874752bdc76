#include "core/smtp_mail.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "core/curl_handle.h"
#include "core/error.h"
#include "core/utf8.h"

namespace cachekit {

namespace {

constexpr long kMaxTimeoutMs = 24L * 60 * 60 * 1000;
// RFC 5322 asks for 78; RFC 2047 allows 76 on lines with encoded-words.
constexpr std::size_t kFoldAt = 76;
constexpr std::size_t kMaxLineBytes = 998;  // RFC 5322 2.1.1: MUST
constexpr const char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

[[noreturn]] void invalid(const std::string &message, std::string detail = {}) {
  throw Error(sqlstate::kInvalidParameterValue, message, std::move(detail));
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

std::string trim(std::string_view s) {
  std::size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  std::size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

// CR, LF and NUL are what header injection needs; other control characters
// have no business in a header either.
void check_header_text(std::string_view s, const std::string &what) {
  for (unsigned char c : s) {
    if (c == '\r' || c == '\n') invalid(what + " contains a line break");
    if ((c < 0x20 && c != '\t') || c == 0x7f) invalid(what + " contains a control character");
  }
  if (!valid_utf8(s)) invalid(what + " is not valid UTF-8");
}

std::string base64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += kBase64[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kBase64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// RFC 2047 B encoded-words, split between UTF-8 characters (a word must
// decode on its own) and separated by spaces, which decoders drop between
// adjacent encoded-words. Words are at most 72 characters, so that a folded
// line " word" stays within 76; the first is at most first_word_chars so that
// it fits on the line that starts with the field name (folding right after
// "Subject:" is legal, but some readers then keep a leading space).
std::string encoded_words(std::string_view text, std::size_t first_word_chars = 72) {
  constexpr std::size_t kOverhead = 12;  // "=?UTF-8?B?" and "?="
  auto max_bytes = [](std::size_t word_chars) {
    return word_chars >= kOverhead + 4 ? (word_chars - kOverhead) / 4 * 3 : 45;
  };
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = std::min(text.size(), i + max_bytes(out.empty() ? first_word_chars : 72));
    while (end > i && end < text.size() && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80)
      --end;
    if (end == i) {  // the budget is smaller than one character: take the character
      ++end;
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) ++end;
    }
    if (!out.empty()) out += ' ';
    out += "=?UTF-8?B?" + base64(text.substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

// Unstructured text (a subject, an extra header's value) as it may appear in
// a header: itself when plain ASCII that no reader could take for an
// encoded-word and that folds into lines of at most 998 characters.
std::string header_text(std::string_view text, std::size_t first_word_chars) {
  bool encode = !is_ascii(text) || text.find("=?") != std::string_view::npos;
  std::size_t run = 0;
  for (char c : text) {
    run = (c == ' ' || c == '\t') ? 0 : run + 1;
    if (run > 900) encode = true;
  }
  return encode ? encoded_words(text, first_word_chars) : std::string(text);
}

// Inserts CRLF before spaces so lines stay within 76 characters where the
// text allows (also right after "Name:", so that a long encoded-word moves to
// its own line); unfolding (removing the CRLFs) gives back the line.
std::string fold(const std::string &line) {
  std::string out;
  std::size_t start = 0;
  std::size_t name_end = line.find(':') + 1;
  while (line.size() - start > kFoldAt) {
    std::size_t limit = start + kFoldAt;
    std::size_t best = std::string::npos;
    for (std::size_t i = std::max(start + 1, name_end); i < line.size(); ++i) {
      bool point = (line[i] == ' ' || line[i] == '\t') && i + 1 < line.size() &&
                   line[i + 1] != ' ' && line[i + 1] != '\t';
      if (!point) continue;
      if (i <= limit || best == std::string::npos) best = i;
      if (i > limit) break;
    }
    if (best == std::string::npos) break;
    out.append(line, start, best - start);
    out += "\r\n";
    start = best;
  }
  out.append(line, start, std::string::npos);
  for (std::size_t b = 0; b < out.size();) {
    std::size_t e = out.find("\r\n", b);
    if (e == std::string::npos) e = out.size();
    if (e - b > kMaxLineBytes)
      invalid("header \"" + line.substr(0, name_end - 1) + "\" is too long",
              "A header line must not exceed 998 characters.");
    b = e + 2;
  }
  return out + "\r\n";
}

bool atext(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr && c != '\0';
}

bool valid_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = domain.find('.', start);
    std::size_t end = dot == std::string_view::npos ? domain.size() : dot;
    std::size_t len = end - start;
    if (len == 0 || len > 63 || domain[start] == '-' || domain[end - 1] == '-') return false;
    for (std::size_t i = start; i < end; ++i) {
      char c = domain[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
        return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool valid_address(std::string_view addr) {
  if (addr.size() > 254) return false;
  std::size_t at = addr.find('@');
  if (at == std::string_view::npos || addr.find('@', at + 1) != std::string_view::npos)
    return false;
  std::string_view local = addr.substr(0, at);
  if (local.empty() || local.size() > 64 || local.front() == '.' || local.back() == '.' ||
      local.find("..") != std::string_view::npos)
    return false;
  for (unsigned char c : local)
    if (!atext(c) && c != '.') return false;
  return valid_domain(addr.substr(at + 1));
}

struct Mailbox {
  std::string display;
  std::string address;
};

Mailbox parse_mailbox(const std::string &text, const std::string &what) {
  check_header_text(text, what);
  std::string s = trim(text);
  Mailbox mb;
  if (!s.empty() && s.back() == '>') {
    std::size_t lt = s.rfind('<');
    if (lt == std::string::npos) invalid("invalid " + what, "A \">\" has no matching \"<\".");
    mb.address = s.substr(lt + 1, s.size() - lt - 2);
    std::string display = trim(std::string_view(s).substr(0, lt));
    if (display.size() >= 2 && display.front() == '"' && display.back() == '"') {
      std::string unquoted;
      for (std::size_t i = 1; i + 1 < display.size(); ++i) {
        if (display[i] == '\\' && i + 2 < display.size()) ++i;
        unquoted += display[i];
      }
      display = unquoted;
    }
    mb.display = display;
  } else {
    mb.address = s;
  }
  if (!valid_address(mb.address))
    invalid("invalid " + what + " \"" + mb.address + "\"",
            "An address must look like local@example.com: one \"@\", an ASCII dot-atom "
            "local part and a host name.");
  return mb;
}

std::string format_mailbox(const Mailbox &mb, std::size_t first_word_chars = 72) {
  if (mb.display.empty()) return mb.address;
  std::string phrase;
  if (!is_ascii(mb.display) || mb.display.find("=?") != std::string::npos) {
    phrase = encoded_words(mb.display, first_word_chars);
  } else {
    bool atoms = true;
    for (unsigned char c : mb.display) atoms = atoms && (atext(c) || c == ' ');
    if (atoms) {
      phrase = mb.display;
    } else {
      phrase = "\"";
      for (char c : mb.display) {
        if (c == '"' || c == '\\') phrase += '\\';
        phrase += c;
      }
      phrase += '"';
    }
  }
  return phrase + " <" + mb.address + ">";
}

std::string address_list(const std::vector<std::string> &list, const std::string &what) {
  std::string out;
  for (const std::string &entry : list) {
    if (!out.empty()) out += ", ";
    out += format_mailbox(parse_mailbox(entry, what));
  }
  return out;
}

std::string random_hex(std::size_t bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    unsigned v = rd() & 0xff;
    out += kHex[v >> 4];
    out += kHex[v & 15];
  }
  return out;
}

std::string rfc5322_date(int64_t now_utc) {
  static const char *kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t t = static_cast<time_t>(now_utc);
  struct tm tm;
  if (gmtime_r(&t, &tm) == nullptr) invalid("mail date out of range");
  char buf[64];
  snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
           kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string crlf_lines(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 32);
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out += "\r\n";
    } else if (s[i] == '\n') {
      out += "\r\n";
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string quoted_printable(std::string_view body) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  std::size_t line_len = 0;
  // A "." starting a line is encoded: some relays mangle it despite dot-stuffing.
  auto put = [&](std::string token) {
    if (line_len + token.size() > 75) {  // leaves room for the soft break's "="
      out += "=\r\n";
      line_len = 0;
    }
    if (line_len == 0 && token == ".") token = "=2E";
    out += token;
    line_len += token.size();
  };
  for (std::size_t i = 0; i < body.size(); ++i) {
    auto c = static_cast<unsigned char>(body[i]);
    if (c == '\r' && i + 1 < body.size() && body[i + 1] == '\n') {
      out += "\r\n";
      line_len = 0;
      ++i;
      continue;
    }
    bool line_end = i + 1 == body.size() || body[i + 1] == '\r';
    bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !line_end);
    if (literal) {
      put(std::string(1, static_cast<char>(c)));
    } else {
      put(std::string{'=', kHex[c >> 4], kHex[c & 15]});
    }
  }
  return out;
}

std::string base64_lines(std::string_view body) {
  std::string encoded = base64(body);
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); i += 76) {
    out.append(encoded, i, 76);
    out += "\r\n";
  }
  if (!out.empty()) out.resize(out.size() - 2);
  return out;
}

struct Part {
  std::string content_type;
  std::string encoding;
  std::string body;  // encoded, CRLF line ends, no final line end
};

Part make_part(const std::string &text, const char *subtype) {
  std::string what = std::string("mail ") + subtype + " body";
  if (!valid_utf8(text)) invalid(what + " is not valid UTF-8");
  if (text.find('\0') != std::string::npos) invalid(what + " contains a NUL character");
  std::string body = crlf_lines(text);
  Part part;
  part.content_type = std::string("text/") + subtype + "; charset=utf-8";
  std::size_t longest = 0, non_ascii = 0;
  for (std::size_t b = 0; b < body.size();) {
    std::size_t e = body.find("\r\n", b);
    if (e == std::string::npos) e = body.size();
    longest = std::max(longest, e - b);
    b = e + 2;
  }
  for (unsigned char c : body) non_ascii += c >= 0x80;
  if (non_ascii == 0 && longest <= kMaxLineBytes) {
    part.encoding = "7bit";
    part.body = body;
  } else if (non_ascii * 3 > body.size()) {
    part.encoding = "base64";
    part.body = base64_lines(body);
  } else {
    part.encoding = "quoted-printable";
    part.body = quoted_printable(body);
  }
  return part;
}

const char *const kOwnHeaders[] = {
    "From", "To",         "Cc",           "Bcc",          "Subject",
    "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"};

struct Upload {
  const std::string *data;
  std::size_t offset = 0;
};

size_t read_message(char *buffer, size_t size, size_t count, void *userdata) {
  auto *up = static_cast<Upload *>(userdata);
  std::size_t n = std::min(size * count, up->data->size() - up->offset);
  std::memcpy(buffer, up->data->data() + up->offset, n);
  up->offset += n;
  return n;
}

bool session_setup_error(CURLcode rc) {
  return curl_connect_failure(rc) || rc == CURLE_USE_SSL_FAILED || rc == CURLE_LOGIN_DENIED ||
         rc == CURLE_WEIRD_SERVER_REPLY;
}

}  // namespace

std::string mail_address(const std::string &mailbox) {
  return parse_mailbox(mailbox, "e-mail address").address;
}

std::string build_mail(const MailMessage &m, int64_t now_utc,
                       const std::string &message_id_domain) {
  if (m.from.empty()) invalid("mail sender must not be empty");
  Mailbox from = parse_mailbox(m.from, "sender address");
  if (m.to.empty() && m.cc.empty() && m.bcc.empty())
    invalid("mail has no recipient", "Give at least one address in to, cc or bcc.");
  std::string to = address_list(m.to, "recipient address");
  std::string cc = address_list(m.cc, "cc address");
  address_list(m.bcc, "bcc address");  // validated only: Bcc is never written
  if (!valid_domain(message_id_domain)) invalid("invalid Message-ID domain");
  check_header_text(m.subject, "mail subject");

  std::string extra;
  for (const auto &[name, value] : m.headers) {
    if (name.empty()) invalid("mail header name must not be empty");
    for (unsigned char c : name)
      if (c < 33 || c > 126 || c == ':')
        invalid("invalid mail header name",
                "A header name consists of printable ASCII characters other than \":\".");
    for (const char *own : kOwnHeaders)
      if (iequals(name, own))
        invalid("mail header \"" + name + "\" cannot be set",
                "It is written from the message's own fields.");
    check_header_text(value, "value of mail header \"" + name + "\"");
    std::size_t room = name.size() + 2 < kFoldAt ? kFoldAt - name.size() - 2 : 0;
    extra += fold(name + ": " + header_text(value, room));
  }

  std::string out;
  out += fold("Date: " + rfc5322_date(now_utc));
  out += fold("From: " + format_mailbox(from, kFoldAt - 6));
  if (!to.empty()) out += fold("To: " + to);
  if (!cc.empty()) out += fold("Cc: " + cc);
  out += fold("Subject: " + header_text(m.subject, kFoldAt - 9));
  out += fold("Message-ID: <" + random_hex(16) + "@" + message_id_domain + ">");
  out += "MIME-Version: 1.0\r\n";
  out += extra;

  if (!m.text.empty() && !m.html.empty()) {
    Part text = make_part(m.text, "plain");
    Part html = make_part(m.html, "html");
    // "=_" cannot occur in quoted-printable or base64; a 7bit part is checked.
    std::string boundary;
    do {
      boundary = "=_cachekit_" + random_hex(12);
    } while (text.body.find(boundary) != std::string::npos ||
             html.body.find(boundary) != std::string::npos);
    out += fold("Content-Type: multipart/alternative; boundary=\"" + boundary + "\"") + "\r\n";
    for (const Part *part : {&text, &html}) {
      out += "--" + boundary + "\r\n";
      out += "Content-Type: " + part->content_type + "\r\n";
      out += "Content-Transfer-Encoding: " + part->encoding + "\r\n\r\n";
      out += part->body + "\r\n";
    }
    out += "--" + boundary + "--\r\n";
  } else {
    Part part = m.html.empty() ? make_part(m.text, "plain") : make_part(m.html, "html");
    out += "Content-Type: " + part.content_type + "\r\n";
    out += "Content-Transfer-Encoding: " + part.encoding + "\r\n\r\n";
    out += part.body;
    bool ends_line =
        part.body.size() >= 2 && part.body.compare(part.body.size() - 2, 2, "\r\n") == 0;
    if (!part.body.empty() && !ends_line) out += "\r\n";
  }
  return out;
}

void send_mail(const MailMessage &m, const SmtpServer &server, int64_t now_utc) {
  if (server.timeout_ms < 1 || server.timeout_ms > kMaxTimeoutMs)
    invalid("smtp timeout must be between 1 ms and 24 hours");
  CurlUrl url = new_curl_url();
  // The URL may carry credentials: errors name only host and port.
  if (CURLUcode uc = curl_url_set(url.get(), CURLUPART_URL, server.url.c_str(), 0); uc != CURLUE_OK)
    invalid("invalid SMTP server URL", std::string(curl_url_strerror(uc)) + ".");
  std::string scheme = curl_url_part(url.get(), CURLUPART_SCHEME);
  if (!iequals(scheme, "smtp") && !iequals(scheme, "smtps"))
    invalid("SMTP server URL must use smtp or smtps");
  std::string server_name = curl_url_part(url.get(), CURLUPART_HOST) + ":" +
                            curl_url_part(url.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);

  std::string sender = mail_address(m.from);
  std::string message = build_mail(m, now_utc, sender.substr(sender.find('@') + 1));

  CurlList rcpt;
  std::vector<std::string> seen;
  for (const auto *list : {&m.to, &m.cc, &m.bcc}) {
    for (const std::string &mailbox : *list) {
      std::string addr = mail_address(mailbox);
      bool dup = false;
      for (const std::string &s : seen) dup = dup || s == addr;
      if (dup) continue;
      seen.push_back(addr);
      curl_list_append(rcpt, "<" + addr + ">");
    }
  }

  CurlEasy h("smtp,smtps", "could not configure smtp session");
  Upload upload{&message};
  std::string mail_from = "<" + sender + ">";
  h.set(CURLOPT_CURLU, url.get());
  h.set(CURLOPT_TIMEOUT_MS, server.timeout_ms);
  h.set(CURLOPT_CONNECTTIMEOUT_MS, server.timeout_ms);
  if (iequals(scheme, "smtp"))
    h.set(CURLOPT_USE_SSL, server.require_tls ? static_cast<long>(CURLUSESSL_ALL)
                                              : static_cast<long>(CURLUSESSL_NONE));
  if (!server.username.empty()) h.set(CURLOPT_USERNAME, server.username.c_str());
  if (!server.password.empty()) h.set(CURLOPT_PASSWORD, server.password.c_str());
  h.set(CURLOPT_MAIL_FROM, mail_from.c_str());
  h.set(CURLOPT_MAIL_RCPT, rcpt.get());
  h.set(CURLOPT_UPLOAD, 1L);
  h.set(CURLOPT_READFUNCTION, read_message);
  h.set(CURLOPT_READDATA, &upload);
  h.set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));

  CURLcode rc = curl_easy_perform(h.get());
  if (rc == CURLE_OK) return;
  long reply = 0;
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &reply);
  std::string detail = h.error_text(rc);
  if (reply != 0) detail += " The last SMTP reply code was " + std::to_string(reply) + ".";
  if (rc == CURLE_OPERATION_TIMEDOUT)
    throw Error(sqlstate::kQueryCanceled,
                "smtp session with \"" + server_name + "\" timed out after " +
                    std::to_string(server.timeout_ms) + " ms",
                detail);
  if (session_setup_error(rc))
    throw Error(sqlstate::kUnableToConnect,
                "could not set up smtp session with \"" + server_name + "\"", detail);
  throw Error(sqlstate::kConnectionFailure,
              "could not send e-mail through smtp server \"" + server_name + "\"", detail);
}

}  // namespace cachekit
