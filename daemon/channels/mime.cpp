#include "channels/mime.h"

#include <algorithm>
#include <array>
#include <ctime>

#include "signing/signing.h"

namespace tactd {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

bool is_control(unsigned char byte) { return byte < 0x20 || byte == 0x7f; }

// A header value on one line: every control character becomes a space.
std::string one_line(std::string_view text) {
  std::string out(text);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return is_control(static_cast<unsigned char>(c)); }, ' ');
  return out;
}

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// RFC 2047 encoded words, "=?UTF-8?B?...?=", never splitting a UTF-8
// sequence, folded onto continuation lines; each word is short enough to
// follow a header name on a line of at most kMaxLine characters.
constexpr std::size_t kMaxLine = 78;
std::string encoded_words(std::string_view text) {
  constexpr std::size_t kMaxBytes = 39;  // 52 base64 characters: words of 64
  std::string out;
  while (!text.empty()) {
    std::size_t size = std::min(kMaxBytes, text.size());
    while (size < text.size() && size > 0 && (static_cast<unsigned char>(text[size]) & 0xc0) == 0x80) --size;
    if (size == 0) size = std::min(kMaxBytes, text.size());  // not UTF-8 after all
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(text.substr(0, size)) + "?=";
    text.remove_prefix(size);
  }
  return out;
}

// A display name: a quoted string when it is short ASCII, encoded words
// (which fold) otherwise.
std::string phrase(std::string_view name) {
  constexpr std::size_t kMaxQuoted = 60;
  const std::string text = one_line(name);
  if (!is_ascii(text) || text.size() > kMaxQuoted) return encoded_words(text);
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

// "name <address>" after a header name of `indent` characters; the address
// goes on a line of its own when it would make the line too long.
std::string mailbox(const Mailbox& box, std::size_t indent) {
  if (trim(box.name).empty()) return box.address;
  const std::string name = phrase(trim(box.name));
  const auto fold = name.rfind("\r\n");
  const std::size_t last_line = fold == std::string::npos ? indent + name.size() : name.size() - fold - 2;
  const std::string address = "<" + box.address + ">";
  return name + (last_line + 1 + address.size() > kMaxLine ? "\r\n " : " ") + address;
}

std::string subject(std::string_view text) {
  const std::string line = one_line(text);
  constexpr std::size_t kMaxPlain = kMaxLine - std::string_view("Subject: ").size();
  if (is_ascii(line) && line.size() <= kMaxPlain) return line;
  return encoded_words(line);
}

// RFC 5322 date-time in UTC: "Mon, 23 Nov 2026 09:30:00 +0000".
std::string date(Timestamp at) {
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count();
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  std::array<char, 64> text{};
  const std::size_t size = std::strftime(text.data(), text.size(), "%a, %d %b %Y %H:%M:%S +0000", &utc);
  return std::string(text.data(), size);
}

// Quoted-printable (RFC 2045 6.7) with CRLF line ends: lines of at most 76
// characters, soft breaks as "=", whitespace before a line end encoded.
std::string quoted_printable(std::string_view text) {
  std::string out;
  std::size_t column = 0;
  auto put = [&](std::string_view token) {
    if (column + token.size() > 75) {
      out += "=\r\n";
      column = 0;
    }
    out += token;
    column += token.size();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n' || (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) {
      if (c == '\r') ++i;
      out += "\r\n";
      column = 0;
      continue;
    }
    const bool line_end = i + 1 == text.size() || text[i + 1] == '\n' || text[i + 1] == '\r';
    const bool literal = (byte >= 33 && byte <= 126 && c != '=') || ((c == ' ' || c == '\t') && !line_end);
    if (literal) {
      put(std::string_view(&c, 1));
    } else {
      const char encoded[] = {'=', kHex[byte >> 4], kHex[byte & 0xf]};
      put(std::string_view(encoded, 3));
    }
  }
  return out;
}

std::string part(std::string_view type, std::string_view body) {
  return "Content-Type: " + std::string(type) +
         "; charset=UTF-8\r\n"
         "Content-Transfer-Encoding: quoted-printable\r\n"
         "\r\n" +
         quoted_printable(body) + "\r\n";
}

}  // namespace

std::string mime_message(const MailMessage& message) {
  std::string out;
  out += "From: " + mailbox(message.from, 6) + "\r\n";
  out += "To: " + mailbox(message.to, 4) + "\r\n";
  if (message.reply_to && parse_mailbox(message.reply_to->address))
    out += "Reply-To: " + mailbox(*message.reply_to, 10) + "\r\n";
  out += "Subject: " + subject(message.subject) + "\r\n";
  out += "Date: " + date(message.date) + "\r\n";
  out += "Message-ID: <" + one_line(message.message_id) + ">\r\n";
  out += "MIME-Version: 1.0\r\n";
  if (message.html.empty()) return out + part("text/plain", message.text);
  // "=_" never occurs in quoted-printable text, so the boundary cannot either.
  const std::string boundary = "=_tactd_" + sha256_hex(message.message_id).substr(0, 24);
  out += "Content-Type: multipart/alternative;\r\n boundary=\"" + boundary + "\"\r\n\r\n";
  out += "--" + boundary + "\r\n" + part("text/plain", message.text);
  out += "--" + boundary + "\r\n" + part("text/html", message.html);
  return out + "--" + boundary + "--\r\n";
}

std::string message_id(std::string_view idempotency_key, std::string_view domain) {
  std::string host;
  for (const char c : domain)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') host += c;
  if (host.empty()) host = "tactd.invalid";
  return sha256_hex(idempotency_key).substr(0, 32) + "@" + host;
}

}  // namespace tactd
