#include "channels/mime.h"

#include <openssl/evp.h>
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "channels/html.h"

using namespace tactd;

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (auto end = text.find("\r\n"); end != std::string::npos; end = text.find("\r\n", at)) {
    out.push_back(text.substr(at, end - at));
    at = end + 2;
  }
  if (at < text.size()) out.push_back(text.substr(at));
  return out;
}

// A header's value with its continuation lines unfolded.
std::string header(const std::string& message, const std::string& name) {
  const auto all = lines(message);
  for (std::size_t i = 0; i < all.size() && !all[i].empty(); ++i) {
    if (all[i].rfind(name + ": ", 0) != 0) continue;
    std::string value = all[i].substr(name.size() + 2);
    while (i + 1 < all.size() && !all[i + 1].empty() && all[i + 1][0] == ' ') value += all[++i];
    return value;
  }
  return "";
}

std::string unbase64(const std::string& text) {
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  REQUIRE(n >= 0);
  out.resize(static_cast<std::size_t>(n) - (text.size() >= 2 && text.substr(text.size() - 2) == "==" ? 2
                                            : text.back() == '='                                     ? 1
                                                                                                     : 0));
  return out;
}

// RFC 2047 encoded words (B encoding, UTF-8 only) back to text.
std::string decode_words(std::string value) {
  std::string out;
  std::istringstream words(value);
  std::string word;
  while (words >> word) {
    REQUIRE(word.rfind("=?UTF-8?B?", 0) == 0);
    REQUIRE(word.size() <= 75);
    out += unbase64(word.substr(10, word.size() - 12));
  }
  return out;
}

// Quoted-printable back to text with \n line ends.
std::string decode_qp(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 3, "=\r\n") == 0) {
      i += 2;
    } else if (text[i] == '=') {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (text.compare(i, 2, "\r\n") == 0) {
      out += '\n';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

MailMessage message() {
  MailMessage m;
  m.from = {"Café & Co", "shop@example.com"};
  m.to = {"Zoë de Vries", "zoe@example.nl"};
  m.subject = "Je bestelling bij Café & Co is geannuleerd — het spijt ons oprecht";
  m.text = "Beste Zoë,\n\nhet spijt ons. a=b, 100% zeker.\n";
  m.html = html_body(m.text);
  m.message_id = message_id("cancel-apology:order/A-1001", "example.com");
  m.date = *parse_rfc3339("2026-11-23T09:30:05Z");
  return m;
}

}  // namespace

TEST_CASE("a message has the headers of RFC 5322 and two quoted-printable parts") {
  const std::string text = mime_message(message());
  CHECK(header(text, "Date") == "Mon, 23 Nov 2026 09:30:05 +0000");
  CHECK(header(text, "Message-ID") == "<" + message().message_id + ">");
  CHECK(header(text, "MIME-Version") == "1.0");
  CHECK(header(text, "Content-Type").rfind("multipart/alternative; boundary=\"=_tactd_", 0) == 0);
  CHECK(text.find("Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable") !=
        std::string::npos);
  CHECK(text.find("Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable") !=
        std::string::npos);
  for (const std::string& line : lines(text)) {
    CHECK(line.size() <= 78);
    CHECK(line.find_first_of("\r\n") == std::string::npos);
  }
  // The text part, decoded, is the text.
  const std::string part_start = "quoted-printable\r\n\r\n";
  const auto begin = text.find(part_start) + part_start.size();
  const auto end = text.find("\r\n--=_tactd_", begin);
  CHECK(decode_qp(text.substr(begin, end - begin)) == message().text);
}

TEST_CASE("a subject or name outside ASCII is written as UTF-8 encoded words") {
  const std::string text = mime_message(message());
  CHECK(decode_words(header(text, "Subject")) == message().subject);
  const std::string to = header(text, "To");
  CHECK(to.substr(to.find(" <")) == " <zoe@example.nl>");
  CHECK(decode_words(to.substr(0, to.find(" <"))) == "Zoë de Vries");
  // ASCII stays readable; a name with specials is quoted.
  MailMessage plain = message();
  plain.subject = "Your order is on its way";
  plain.from.name = "Shop, \"the\" best";
  const std::string plain_text = mime_message(plain);
  CHECK(header(plain_text, "Subject") == "Your order is on its way");
  CHECK(header(plain_text, "From") == "\"Shop, \\\"the\\\" best\" <shop@example.com>");
}

TEST_CASE("customer data with line breaks cannot add a header") {
  MailMessage evil = message();
  evil.to.name = "Ada\r\nBcc: eve@example.com";
  evil.subject = "Hello\nBcc: eve@example.com\r\n\r\nforged body";
  const std::string text = mime_message(evil);
  for (const std::string& line : lines(text)) CHECK(line.rfind("Bcc:", 0) != 0);
  CHECK(header(text, "To") == "\"Ada  Bcc: eve@example.com\" <zoe@example.nl>");
  CHECK(header(text, "Subject") == "Hello Bcc: eve@example.com    forged body");
}

TEST_CASE("a Reply-To names the customer, and one with a line break in its address is left out") {
  CHECK(header(mime_message(message()), "Reply-To").empty());  // replies go to `from`
  MailMessage forward = message();
  forward.reply_to = Mailbox{"Anna\r\nBcc: eve@example.com", "anna@example.nl"};
  const std::string text = mime_message(forward);
  CHECK(header(text, "Reply-To") == "\"Anna  Bcc: eve@example.com\" <anna@example.nl>");
  for (const std::string& line : lines(text)) CHECK(line.rfind("Bcc:", 0) != 0);
  // An address is never cleaned up into something else: one that could
  // carry a header is not written at all.
  forward.reply_to = Mailbox{"", "anna@example.nl\r\nBcc: eve@example.com"};
  const std::string evil = mime_message(forward);
  CHECK(evil.find("Reply-To") == std::string::npos);
  CHECK(evil.find("Bcc:") == std::string::npos);
}

TEST_CASE("quoted-printable encodes '=', 8-bit bytes and line-end spaces, and keeps lines short") {
  MailMessage m = message();
  m.html.clear();  // text/plain only
  m.text = "tab\tand space at the end \nü=" + std::string(200, 'x') + "\n";
  const std::string text = mime_message(m);
  CHECK(header(text, "Content-Type") == "text/plain; charset=UTF-8");
  const std::string body = text.substr(text.find("\r\n\r\n") + 4);
  CHECK(body.rfind("tab\tand space at the end=20\r\n=C3=BC=3Dxxx", 0) == 0);
  for (const std::string& line : lines(body)) CHECK(line.size() <= 76);
  CHECK(decode_qp(body) == m.text + "\n");
}

TEST_CASE("the Message-ID is the same for every attempt of a notification") {
  CHECK(message_id("k1", "example.com") == message_id("k1", "example.com"));
  CHECK(message_id("k1", "example.com") != message_id("k2", "example.com"));
  CHECK(message_id("k1", "example.com").size() == 32 + 1 + 11);
  CHECK(message_id("k1", "exa<mple>.com\r\n").substr(33) == "example.com");
  CHECK(message_id("k1", "").substr(33) == "tactd.invalid");
}

TEST_CASE("HTML bodies escape customer data and keep paragraphs") {
  const std::string html = html_body("Dear <script>alert('x')</script> & \"Ada\",\nline two\n\nSecond paragraph.");
  CHECK(html.find("<script>") == std::string::npos);
  CHECK(html.find("<p>Dear &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Ada&quot;,<br>\nline two</p>") !=
        std::string::npos);
  CHECK(html.find("<p>Second paragraph.</p>") != std::string::npos);
}
