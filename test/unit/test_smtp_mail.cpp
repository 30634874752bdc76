#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/smtp_mail.h"

extern char **environ;

namespace cachekit {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kNow = 1700000000;  // Tue, 14 Nov 2023 22:13:20 +0000

std::vector<std::string> lines(const std::string &s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b < s.size()) {
    std::size_t e = s.find("\r\n", b);
    if (e == std::string::npos) e = s.size();
    out.push_back(s.substr(b, e - b));
    b = e + 2;
  }
  return out;
}

// The header block, unfolded, as name -> value (first occurrence).
std::string header(const std::string &mail, const std::string &name) {
  std::string head = mail.substr(0, mail.find("\r\n\r\n"));
  std::string unfolded;
  for (std::size_t i = 0; i < head.size(); ++i) {
    if (head.compare(i, 3, "\r\n ") == 0 || head.compare(i, 3, "\r\n\t") == 0) {
      i += 1;
      continue;
    }
    unfolded += head[i];
  }
  for (const std::string &line : lines(unfolded + "\r\n"))
    if (line.size() > name.size() && line.compare(0, name.size() + 2, name + ": ") == 0)
      return line.substr(name.size() + 2);
  return "<missing>";
}

std::string body_of(const std::string &mail) { return mail.substr(mail.find("\r\n\r\n") + 4); }

std::string base64_decode(const std::string &in) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    std::size_t v = kAlphabet.find(c);
    if (v == std::string::npos) continue;  // line breaks, padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string qp_decode(const std::string &in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
    } else if (in.compare(i + 1, 2, "\r\n") == 0) {
      i += 2;
    } else {
      out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
      i += 2;
    }
  }
  return out;
}

// Decodes a header value made of space-separated =?UTF-8?B?...?= words; each
// word must decode to complete UTF-8 characters on its own.
std::string decode_words(const std::string &value, bool *all_words_short = nullptr) {
  std::string out;
  std::istringstream words(value);
  std::string word;
  bool short_words = true;
  while (words >> word) {
    EXPECT_EQ(word.rfind("=?UTF-8?B?", 0), 0u) << word;
    EXPECT_EQ(word.substr(word.size() - 2), "?=") << word;
    short_words = short_words && word.size() <= 75;
    std::string decoded = base64_decode(word.substr(10, word.size() - 12));
    unsigned char last_lead = 0;
    for (unsigned char c : decoded)
      if ((c & 0xc0) != 0x80) last_lead = c;
    std::size_t tail = 0;
    while (tail < decoded.size() &&
           (static_cast<unsigned char>(decoded[decoded.size() - 1 - tail]) & 0xc0) == 0x80)
      ++tail;
    std::size_t want = last_lead >= 0xf0 ? 3 : last_lead >= 0xe0 ? 2 : last_lead >= 0xc0 ? 1 : 0;
    EXPECT_EQ(tail, want) << "word splits a UTF-8 character: " << word;
    out += decoded;
  }
  if (all_words_short) *all_words_short = short_words;
  return out;
}

void expect_line_limits(const std::string &mail, std::size_t max_header, std::size_t max_body) {
  std::size_t head_end = mail.find("\r\n\r\n");
  for (const std::string &line : lines(mail.substr(0, head_end)))
    EXPECT_LE(line.size(), max_header) << line;
  for (const std::string &line : lines(mail.substr(head_end + 4)))
    EXPECT_LE(line.size(), max_body) << line.substr(0, 100);
  // Every line end is CRLF.
  for (std::size_t i = 0; i < mail.size(); ++i) {
    if (mail[i] == '\n') {
      EXPECT_TRUE(i > 0 && mail[i - 1] == '\r') << "bare LF at " << i;
    }
    if (mail[i] == '\r') {
      EXPECT_TRUE(i + 1 < mail.size() && mail[i + 1] == '\n') << "bare CR at " << i;
    }
  }
}

MailMessage simple() {
  MailMessage m;
  m.from = "Reports <reports@example.com>";
  m.to = {"alice@example.com", "Bob Smith <bob@example.org>"};
  m.cc = {"carol@example.net"};
  m.bcc = {"dave@example.com"};
  m.subject = "Daily report";
  m.text = "Hello,\nall is well.\n";
  return m;
}

Error build_error(const MailMessage &m) {
  try {
    build_mail(m, kNow, "example.com");
  } catch (const Error &e) {
    return e;
  }
  ADD_FAILURE() << "build_mail accepted the message";
  return Error(sqlstate::kInternalError, "no error");
}

TEST(BuildMail, Headers) {
  std::string mail = build_mail(simple(), kNow, "mail.example.com");
  EXPECT_EQ(header(mail, "Date"), "Tue, 14 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(header(mail, "From"), "Reports <reports@example.com>");
  EXPECT_EQ(header(mail, "To"), "alice@example.com, Bob Smith <bob@example.org>");
  EXPECT_EQ(header(mail, "Cc"), "carol@example.net");
  EXPECT_EQ(header(mail, "Subject"), "Daily report");
  EXPECT_EQ(header(mail, "MIME-Version"), "1.0");
  EXPECT_EQ(header(mail, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(header(mail, "Content-Transfer-Encoding"), "7bit");
  EXPECT_EQ(mail.find("Bcc"), std::string::npos);
  EXPECT_EQ(mail.find("dave@"), std::string::npos);
  std::string id = header(mail, "Message-ID");
  ASSERT_EQ(id.size(), 1 + 32 + 1 + std::string("mail.example.com").size() + 1) << id;
  EXPECT_EQ(id.front(), '<');
  EXPECT_EQ(id.substr(33), "@mail.example.com>");
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 1), 33u) << id;
  EXPECT_NE(header(build_mail(simple(), kNow, "mail.example.com"), "Message-ID"), id);
  EXPECT_EQ(body_of(mail), "Hello,\r\nall is well.\r\n");
  expect_line_limits(mail, 76, 998);

  MailMessage no_to = simple();
  no_to.to.clear();
  no_to.cc.clear();
  std::string bcc_only = build_mail(no_to, kNow, "example.com");
  EXPECT_EQ(header(bcc_only, "To"), "<missing>");
  EXPECT_EQ(bcc_only.find("dave@"), std::string::npos);
}

TEST(BuildMail, Utf8SubjectIsEncodedWords) {
  MailMessage m = simple();
  m.subject =
      "Gr\xc3\xbc\xc3\x9f"
      "e \xf0\x9f\x8e\x89";  // "Grüße 🎉"
  std::string mail = build_mail(m, kNow, "example.com");
  std::string subject = header(mail, "Subject");
  EXPECT_EQ(subject.rfind("=?UTF-8?B?", 0), 0u) << subject;
  EXPECT_EQ(decode_words(subject), m.subject);
  expect_line_limits(mail, 76, 998);

  // Long enough for several words: each decodes alone, none longer than 75,
  // and folded lines stay within 78.
  std::string long_subject;
  for (int i = 0; i < 30; ++i) long_subject += "\xe2\x82\xac \xf0\x9f\x8e\x89 Gr\xc3\xbc\xc3\x9f";
  m.subject = long_subject;
  mail = build_mail(m, kNow, "example.com");
  bool short_words = false;
  EXPECT_EQ(decode_words(header(mail, "Subject"), &short_words), long_subject);
  EXPECT_TRUE(short_words);
  expect_line_limits(mail, 76, 998);

  // ASCII that a reader could take for an encoded-word is encoded too.
  m.subject = "=?UTF-8?B?SGk=?=";
  EXPECT_EQ(decode_words(header(build_mail(m, kNow, "example.com"), "Subject")), m.subject);
}

TEST(BuildMail, LongAsciiSubjectIsFolded) {
  MailMessage m = simple();
  std::string subject;
  for (int i = 0; i < 40; ++i) subject += "word" + std::to_string(i) + " ";
  subject += "end";
  m.subject = subject;
  std::string mail = build_mail(m, kNow, "example.com");
  EXPECT_EQ(header(mail, "Subject"), subject);
  EXPECT_NE(mail.find("\r\n word"), std::string::npos);
  expect_line_limits(mail, 76, 998);
}

TEST(BuildMail, DisplayNames) {
  MailMessage m = simple();
  m.from = "\"Doe, John\" <john@example.com>";
  m.to = {"J\xc3\xb6rg <joerg@example.de>", "\"Quote \\\"me\\\"\" <q@example.com>"};
  std::string mail = build_mail(m, kNow, "example.com");
  EXPECT_EQ(header(mail, "From"), "\"Doe, John\" <john@example.com>");
  std::string to = header(mail, "To");
  std::string first = to.substr(0, to.find(" <joerg@example.de>"));
  EXPECT_EQ(decode_words(first), "J\xc3\xb6rg");
  EXPECT_NE(to.find(", \"Quote \\\"me\\\"\" <q@example.com>"), std::string::npos) << to;
  EXPECT_EQ(mail_address("Bob <bob@example.org>"), "bob@example.org");
  EXPECT_EQ(mail_address("  bob@example.org "), "bob@example.org");
}

TEST(BuildMail, NonAsciiBodyIsQuotedPrintable) {
  MailMessage m = simple();
  m.text =
      "Gr\xc3\xbc\xc3\x9f"
      "e aus K\xc3\xb6ln = sch\xc3\xb6n \nline with trailing space \n.starts with a dot\n" +
      std::string(300, 'x') + "\n";
  std::string mail = build_mail(m, kNow, "example.com");
  EXPECT_EQ(header(mail, "Content-Transfer-Encoding"), "quoted-printable");
  std::string body = body_of(mail);
  EXPECT_NE(body.find("Gr=C3=BC=C3=9Fe"), std::string::npos) << body;
  EXPECT_NE(body.find("=3D"), std::string::npos);
  EXPECT_NE(body.find("space=20\r\n"), std::string::npos) << body;
  EXPECT_NE(body.find("\r\n=2Estarts"), std::string::npos) << body;
  expect_line_limits(mail, 76, 76);
  std::string expected = m.text;
  std::string crlf;
  for (char c : expected) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  EXPECT_EQ(qp_decode(body), crlf);

  // ASCII with a line over 998 characters cannot go as 7bit.
  m.text = std::string(2000, 'a');
  mail = build_mail(m, kNow, "example.com");
  EXPECT_EQ(header(mail, "Content-Transfer-Encoding"), "quoted-printable");
  expect_line_limits(mail, 76, 76);
  EXPECT_EQ(qp_decode(body_of(mail).substr(0, body_of(mail).size() - 2)), m.text);
}

TEST(BuildMail, MostlyNonAsciiBodyIsBase64) {
  MailMessage m = simple();
  m.text.clear();
  for (int i = 0; i < 100; ++i) m.text += "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xf0\x9f\x8e\x89";
  m.text += "\nend";
  std::string mail = build_mail(m, kNow, "example.com");
  EXPECT_EQ(header(mail, "Content-Transfer-Encoding"), "base64");
  expect_line_limits(mail, 76, 76);
  std::string body = body_of(mail);
  std::vector<std::string> body_lines = lines(body);
  for (std::size_t i = 0; i + 1 < body_lines.size(); ++i) EXPECT_EQ(body_lines[i].size(), 76u);
  std::string crlf = m.text.substr(0, m.text.size() - 4) + "\r\nend";
  EXPECT_EQ(base64_decode(body), crlf);
}

TEST(BuildMail, MultipartAlternative) {
  MailMessage m = simple();
  m.text = "Plain caf\xc3\xa9";
  m.html = "<p>HTML caf\xc3\xa9</p>";
  std::string mail = build_mail(m, kNow, "example.com");
  std::string type = header(mail, "Content-Type");
  const std::string prefix = "multipart/alternative; boundary=\"";
  ASSERT_EQ(type.rfind(prefix, 0), 0u) << type;
  std::string boundary = type.substr(prefix.size(), type.size() - prefix.size() - 1);
  EXPECT_GE(boundary.size(), 20u);
  EXPECT_EQ(header(mail, "Content-Transfer-Encoding"), "<missing>");
  std::string body = body_of(mail);
  std::string delim = "--" + boundary + "\r\n";
  std::size_t first = body.find(delim);
  ASSERT_EQ(first, 0u) << body;
  std::size_t second = body.find("\r\n" + delim, first + 1);
  ASSERT_NE(second, std::string::npos) << body;
  std::size_t close = body.find("\r\n--" + boundary + "--\r\n", second + 1);
  ASSERT_NE(close, std::string::npos) << body;
  EXPECT_EQ(close + boundary.size() + 8, body.size());

  std::string part1 = body.substr(delim.size(), second - delim.size());
  std::string part2 = body.substr(second + 2 + delim.size(), close - second - 2 - delim.size());
  EXPECT_EQ(header(part1 + "\r\n", "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(header(part1 + "\r\n", "Content-Transfer-Encoding"), "quoted-printable");
  EXPECT_EQ(qp_decode(body_of(part1)), m.text);
  EXPECT_EQ(header(part2 + "\r\n", "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(qp_decode(body_of(part2)), m.html);
  expect_line_limits(mail, 76, 76);

  MailMessage html_only = simple();
  html_only.text.clear();
  html_only.html = "<b>hi</b>";
  std::string h = build_mail(html_only, kNow, "example.com");
  EXPECT_EQ(header(h, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(body_of(h), "<b>hi</b>\r\n");
}

TEST(BuildMail, ExtraHeaders) {
  MailMessage m = simple();
  m.headers = {{"Reply-To", "help@example.com"},
               {"X-Tag", "\xc3\xbcnicode"},
               {"List-Unsubscribe", "<mailto:unsub@example.com>"}};
  std::string mail = build_mail(m, kNow, "example.com");
  EXPECT_EQ(header(mail, "Reply-To"), "help@example.com");
  EXPECT_EQ(decode_words(header(mail, "X-Tag")), "\xc3\xbcnicode");
  EXPECT_EQ(header(mail, "List-Unsubscribe"), "<mailto:unsub@example.com>");
  expect_line_limits(mail, 76, 998);

  // Long values: every line within 76, the first word on the name's line.
  std::string value;
  for (int i = 0; i < 20; ++i) value += "\xf0\x9f\x8e\x89\xc3\xbc";
  std::string name = "X-" + std::string(50, 'n');
  m.headers = {{name, value}};
  m.subject = value;
  mail = build_mail(m, kNow, "example.com");
  expect_line_limits(mail, 76, 998);
  EXPECT_EQ(decode_words(header(mail, name)), value);
  EXPECT_EQ(decode_words(header(mail, "Subject")), value);
  EXPECT_NE(mail.find("\r\nSubject: =?UTF-8?B?"), std::string::npos);
  EXPECT_NE(mail.find("\r\n" + name + ": =?UTF-8?B?"), std::string::npos);

  // A name too long for any word on its line: the value starts on the next.
  name = "X-" + std::string(90, 'n');
  m.headers = {{name, value}};
  mail = build_mail(m, kNow, "example.com");
  EXPECT_NE(mail.find("\r\n" + name + ":\r\n =?UTF-8?B?"), std::string::npos);
  EXPECT_EQ(decode_words(header(mail, name)), value);
}

TEST(BuildMail, HeaderInjectionRefused) {
  auto expect_refused = [](MailMessage m, const char *why) {
    Error e = build_error(m);
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue) << why;
    EXPECT_EQ(std::string(e.what()).find("Evil"), std::string::npos) << e.what();
  };
  MailMessage m = simple();
  m.subject = "Hi\r\nBcc: Evil@example.com";
  expect_refused(m, "subject CRLF");
  m.subject = "Hi\nBcc: Evil@example.com";
  expect_refused(m, "subject LF");
  m.subject = "Hi\rX-Evil: 1";
  expect_refused(m, "subject CR");
  m = simple();
  m.to = {"alice@example.com\r\nBcc: Evil@example.com"};
  expect_refused(m, "to");
  m = simple();
  m.from = "A <a@example.com>\nX-Evil: 1";
  expect_refused(m, "from");
  m = simple();
  m.cc = {"Evil\r\n <c@example.com>"};
  expect_refused(m, "cc display name");
  m = simple();
  m.headers = {{"X-Ok", "v\r\nX-Evil: 1"}};
  expect_refused(m, "header value");
  m.headers = {{"X-Evil: 1\r\nX-Ok", "v"}};
  expect_refused(m, "header name");
  m.headers = {{"Bad Name", "v"}};
  expect_refused(m, "header name with space");
  for (const char *own : {"Bcc", "to", "From", "Subject", "Message-ID", "Content-Type", "Date",
                          "MIME-Version", "content-transfer-encoding", "Cc"}) {
    m.headers = {{own, "x@example.com"}};
    expect_refused(m, own);
  }
  m = simple();
  m.subject = std::string("a\0b", 3);
  expect_refused(m, "NUL");
  m = simple();
  m.text = std::string("a\0b", 3);
  expect_refused(m, "NUL in body");
  m = simple();
  m.text = "bad \xff utf-8";
  expect_refused(m, "invalid UTF-8 body");
  m = simple();
  m.subject = "bad \xc3 utf-8";
  expect_refused(m, "invalid UTF-8 subject");
}

TEST(BuildMail, AddressesValidated) {
  for (const char *bad : {"",
                          "no-at-sign",
                          "a@@example.com",
                          "a@b@example.com",
                          "@example.com",
                          "a@",
                          ".a@example.com",
                          "a.@example.com",
                          "a..b@example.com",
                          "a b@example.com",
                          "a@-example.com",
                          "a@example-.com",
                          "a@exa_mple.com",
                          "a@example..com",
                          "\"quoted\"@example.com",
                          "a@[127.0.0.1]",
                          "j\xc3\xb6rg@example.com",
                          "a@b\xc3\xbc.de",
                          "Name <a@example.com",
                          "Name a@example.com>",
                          "<>",
                          "a(comment)@example.com"}) {
    MailMessage m = simple();
    m.to = {bad};
    Error e = build_error(m);
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue) << bad;
  }
  MailMessage m = simple();
  m.to = {std::string(65, 'a') + "@example.com"};
  EXPECT_STREQ(build_error(m).sqlstate(), sqlstate::kInvalidParameterValue);
  m = simple();
  m.from = "";
  EXPECT_STREQ(build_error(m).sqlstate(), sqlstate::kInvalidParameterValue);
  m = simple();
  m.to.clear();
  m.cc.clear();
  m.bcc.clear();
  Error none = build_error(m);
  EXPECT_NE(std::string(none.what()).find("no recipient"), std::string::npos);
  m = simple();
  m.bcc = {"not an address"};
  EXPECT_STREQ(build_error(m).sqlstate(), sqlstate::kInvalidParameterValue);
  EXPECT_THROW(build_mail(simple(), kNow, "bad domain"), Error);
  EXPECT_THROW(build_mail(simple(), kNow, "example.com>\r\nX: y"), Error);
  for (const char *good : {"user+tag@example.com", "first.last@sub.example.co.uk", "x@localhost",
                           "o'hara@example.com", "Name <a@example.com>", "<a@example.com>"}) {
    m = simple();
    m.to = {good};
    EXPECT_NO_THROW(build_mail(m, kNow, "example.com")) << good;
  }
}

// --- send_mail against a real SMTP server (Debian's python3-aiosmtpd) -------

// Writes each message's raw DATA to DIR/msgN.eml and its envelope to
// DIR/msgN.env; refuses recipients whose address starts with "reject".
constexpr const char kSmtpSink[] = R"PY(
import asyncio, json, os, sys
from aiosmtpd.smtp import SMTP
out = sys.argv[1]
class Sink:
    n = 0
    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("reject"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        Sink.n += 1
        base = os.path.join(out, "msg%d" % Sink.n)
        with open(base + ".env", "w") as f:
            json.dump({"from": envelope.mail_from, "rcpt": envelope.rcpt_tos}, f)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".tmp", base + ".eml")
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink()), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(os.path.join(out, "port.tmp"), "w") as f:
        f.write(str(port))
    os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
    await server.serve_forever()
asyncio.run(main())
)PY";

int run_quietly(const std::vector<std::string> &argv, pid_t *pid_out = nullptr) {
  std::vector<char *> args;
  for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  if (pid_out != nullptr) {
    *pid_out = pid;
    return 0;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A Python that has aiosmtpd: the one on PATH, else Debian's.
std::string python_with_aiosmtpd() {
  for (const char *python : {"python3", "/usr/bin/python3"})
    if (run_quietly({python, "-c", "import aiosmtpd"}) == 0) return python;
  return {};
}

std::string read_file(const std::filesystem::path &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class SendMail : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string python = python_with_aiosmtpd();
    if (python.empty())
      GTEST_SKIP() << "python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd)";
    char tmpl[] = "/tmp/cksmtp-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(run_quietly({python, "-c", kSmtpSink, dir_.string()}, &pid_), 0);
    auto deadline = Clock::now() + std::chrono::seconds(15);
    while (!std::filesystem::exists(dir_ / "port")) {
      int status;
      ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "SMTP sink exited";
      ASSERT_LT(Clock::now(), deadline) << "SMTP sink did not start";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    port_ = std::stoi(read_file(dir_ / "port"));
    server_.url = "smtp://127.0.0.1:" + std::to_string(port_);
    server_.timeout_ms = 10000;
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // The n-th delivered message; curl returns only after the server answered
  // DATA, by which time the sink has written it.
  std::string delivered(int n, std::string *envelope = nullptr) {
    auto base = dir_ / ("msg" + std::to_string(n));
    if (envelope != nullptr) *envelope = read_file(base.string() + ".env");
    return read_file(base.string() + ".eml");
  }
  int delivered_count() {
    int n = 0;
    for (const auto &entry : std::filesystem::directory_iterator(dir_))
      n += entry.path().extension() == ".eml";
    return n;
  }

  Error send_error(const MailMessage &m, const SmtpServer &server) {
    try {
      send_mail(m, server, kNow);
    } catch (const Error &e) {
      return e;
    }
    ADD_FAILURE() << "send_mail succeeded";
    return Error(sqlstate::kInternalError, "no error");
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  SmtpServer server_;
};

TEST_F(SendMail, DeliversMessageToAllRecipients) {
  MailMessage m = simple();
  m.subject =
      "Gr\xc3\xbc\xc3\x9f"
      "e \xf0\x9f\x8e\x89";
  m.text =
      "Line one\n.\n..two dots\nGr\xc3\xbc\xc3\x9f"
      "e\n";
  m.html =
      "<p>Gr\xc3\xbc\xc3\x9f"
      "e</p>";
  m.to.push_back("alice@example.com");  // a duplicate gets one RCPT
  send_mail(m, server_, kNow);
  ASSERT_EQ(delivered_count(), 1);
  std::string envelope;
  std::string mail = delivered(1, &envelope);
  EXPECT_NE(envelope.find("\"from\": \"reports@example.com\""), std::string::npos) << envelope;
  EXPECT_NE(envelope.find("\"rcpt\": [\"alice@example.com\", \"bob@example.org\", "
                          "\"carol@example.net\", \"dave@example.com\"]"),
            std::string::npos)
      << envelope;
  EXPECT_EQ(mail.find("dave@"), std::string::npos);  // Bcc only in the envelope
  EXPECT_EQ(header(mail, "Date"), "Tue, 14 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(decode_words(header(mail, "Subject")), m.subject);
  std::string id = header(mail, "Message-ID");
  EXPECT_EQ(id.substr(id.size() - 13), "@example.com>") << id;
  EXPECT_EQ(header(mail, "To"),
            "alice@example.com, Bob Smith <bob@example.org>, "
            "alice@example.com");
  // The message arrives byte for byte as built, apart from its Message-ID.
  std::string built = build_mail(m, kNow, "example.com");
  EXPECT_EQ(mail.size(), built.size());
  EXPECT_EQ(mail.substr(mail.find("MIME-Version")).substr(0, 60),
            built.substr(built.find("MIME-Version")).substr(0, 60));
  std::string type = header(mail, "Content-Type");
  std::string boundary = type.substr(type.find('"') + 1);
  boundary.pop_back();
  std::string body = body_of(mail);
  std::size_t part = body.find("\r\n\r\n") + 4;
  std::string text = body.substr(part, body.find("\r\n--" + boundary, part) - part);
  EXPECT_EQ(qp_decode(text),
            "Line one\r\n.\r\n..two dots\r\nGr\xc3\xbc\xc3\x9f"
            "e\r\n");
  expect_line_limits(mail, 76, 76);
}

TEST_F(SendMail, RefusedRecipientIs08006) {
  MailMessage m = simple();
  m.bcc = {"reject-me@example.com"};
  Error e = send_error(m, server_);
  EXPECT_STREQ(e.sqlstate(), sqlstate::kConnectionFailure) << e.what() << ": " << e.detail();
  EXPECT_NE(e.detail().find("550"), std::string::npos) << e.detail();
  EXPECT_EQ(delivered_count(), 0);
}

TEST_F(SendMail, RequireTlsWithoutStartTlsIs08001) {
  SmtpServer server = server_;
  server.require_tls = true;
  Error e = send_error(simple(), server);
  EXPECT_STREQ(e.sqlstate(), sqlstate::kUnableToConnect) << e.what() << ": " << e.detail();
  EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port_)), std::string::npos)
      << e.what();
  EXPECT_EQ(delivered_count(), 0);
}

TEST_F(SendMail, UnreachableServerNeverShowsPassword) {
  SmtpServer server = server_;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  server.username = "mailer";
  server.password = "pw-s3cret";
  server.url = "smtp://mailer:url-s3cret@127.0.0.1:" + std::to_string(port_);
  Error e = send_error(simple(), server);
  EXPECT_STREQ(e.sqlstate(), sqlstate::kUnableToConnect) << e.what() << ": " << e.detail();
  EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
  EXPECT_EQ(e.detail().find("s3cret"), std::string::npos) << e.detail();
  EXPECT_EQ(e.hint().find("s3cret"), std::string::npos);
}

TEST_F(SendMail, TimeoutIs57014) {
  kill(pid_, SIGSTOP);  // accepts in the kernel backlog, never greets
  SmtpServer server = server_;
  server.timeout_ms = 300;
  auto start = Clock::now();
  Error e = send_error(simple(), server);
  kill(pid_, SIGCONT);
  EXPECT_STREQ(e.sqlstate(), sqlstate::kQueryCanceled) << e.what() << ": " << e.detail();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST(SendMailArguments, BadServerSettingsRefused) {
  SmtpServer server;
  for (const char *url : {"http://127.0.0.1:25", "127.0.0.1:25", "", "smtp://127.0.0.1:99999"}) {
    server.url = url;
    try {
      send_mail(simple(), server, kNow);
      ADD_FAILURE() << url;
    } catch (const Error &e) {
      EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue) << url;
    }
  }
  server = SmtpServer();
  server.timeout_ms = 0;
  EXPECT_THROW(send_mail(simple(), server, kNow), Error);
  MailMessage bad = simple();
  bad.subject = "x\r\nBcc: y@example.com";
  EXPECT_THROW(send_mail(bad, SmtpServer(), kNow), Error);
}

}  // namespace
}  // namespace cachekit
