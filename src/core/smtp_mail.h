// E-mail for built-in email tasks: an RFC 5322/MIME message built here, sent
// through libcurl's SMTP client.
//
// Addresses are "local@domain" or "Display Name <local@domain>" (the display
// name may be UTF-8 and may be in double quotes). Local parts are dot-atoms and
// domains host names, both ASCII: quoted local parts, address literals and
// SMTPUTF8 are not supported. Everything that ends up in a header line is
// checked for CR, LF and NUL, so task arguments cannot add headers or
// recipients.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cachekit {

struct MailMessage {
  std::string from;
  std::vector<std::string> to, cc, bcc;  // at least one recipient in all
  std::string subject;
  std::string text;  // text/plain part, UTF-8
  std::string html;  // text/html part, UTF-8; both: multipart/alternative
  // Extra header fields (Reply-To, List-Unsubscribe, X-...). Fields this
  // module writes itself (From, To, Cc, Bcc, Subject, Date, Message-ID,
  // MIME-Version, Content-*) are refused.
  std::vector<std::pair<std::string, std::string>> headers;
};

struct SmtpServer {
  std::string url = "smtp://127.0.0.1:25";  // smtp:// (STARTTLS) or smtps:// (TLS)
  std::string username;                     // empty: no AUTH
  std::string password;
  // smtp:// only: true requires STARTTLS (and a verified certificate); false
  // speaks plain SMTP even when the server offers STARTTLS.
  bool require_tls = false;
  long timeout_ms = 30000;  // whole session; 1 ms to 24 h
};

// The message, CRLF line ends, header lines folded to 76 characters where
// white space allows. Date from now_utc (seconds since the epoch, +0000);
// Message-ID <random hex@message_id_domain>; Bcc is left out. Non-ASCII or
// encoded-word-like text in the subject, display names and extra header
// values becomes RFC 2047 encoded-words (UTF-8, B). A body part is 7bit when
// it is ASCII with lines of at most 998 characters, else quoted-printable
// (base64 when more than a third of it is non-ASCII), with lines of at most
// 76 characters. Throws cachekit::Error (22023) for a bad address, header,
// domain, invalid UTF-8 or no recipient.
std::string build_mail(const MailMessage &m, int64_t now_utc, const std::string &message_id_domain);

// The bare address of a mailbox as build_mail accepts it ("a@b.c" for
// "A <a@b.c>"). Throws cachekit::Error (22023).
std::string mail_address(const std::string &mailbox);

// Builds the message (Message-ID domain: the sender's) and sends it to every
// To, Cc and Bcc address. Throws cachekit::Error: 22023 as build_mail or for
// a bad server URL or timeout; 08001 when no SMTP session could be set up
// (resolve, connect, TLS, STARTTLS missing under require_tls, login refused);
// 08006 when the session failed later (a recipient or the message refused,
// connection lost); 57014 on timeout. Errors name the server as host:port and
// never contain the password.
void send_mail(const MailMessage &m, const SmtpServer &server, int64_t now_utc);

}  // namespace cachekit
