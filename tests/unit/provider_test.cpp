#include "channels/provider.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "channels/html.h"
#include "signing/signing.h"

using namespace tactd;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

const Timestamp now = at("2026-11-20T16:31:07Z");

// Non-ASCII, and the characters that break naive forms and markup.
const std::string body_text =
    "Beste Zoë,\n\nhet spijt ons: je bestelling bij Café & Co (5 < 6, a=b) is geannuleerd. "
    "€12,50 komt terug.";
const std::string secret_key = "s3cr3t/+=&\"key";

Notification email() {
  Notification n;
  n.idempotency_key = "cancel-apology:order/A-1001:status=cancelled@2026-11-20T16:30:00Z";
  n.at = at("2026-11-20T16:31:00Z");
  n.rule = "cancel-apology";
  n.kind = Kind::kApology;
  n.customer = "C-7";
  n.entity = {EntityType::kOrder, "A-1001"};
  n.channel = Channel::kEmail;
  n.to = "zoe@example.nl";
  n.subject = "Je bestelling bij Café & Co is geannuleerd";
  n.body = body_text;
  n.locale = "nl";
  n.time_zone = "Europe/Amsterdam";
  return n;
}

Notification sms() {
  Notification n = email();
  n.channel = Channel::kSms;
  n.to = "+31612345678";
  n.subject.reset();
  return n;
}

ChannelConfig channel(Channel which, std::string provider, std::string url = "") {
  ChannelConfig c;
  c.channel = which;
  c.provider = std::move(provider);
  c.url = std::move(url);
  c.from = which == Channel::kEmail ? "Café & Co <shop@example.com>" : "+3197010203040";
  c.secret = secret_key;
  c.timeout = 7s;
  return c;
}

ProviderRequest build(const ChannelConfig& c, const Notification& n) {
  std::string error;
  auto request = provider_request(c, n, now, error);
  INFO(error);
  REQUIRE(request);
  CHECK(error.empty());
  return *request;
}

std::string error_of(const ChannelConfig& c, const Notification& n) {
  std::string error;
  CHECK_FALSE(provider_request(c, n, now, error));
  return error;
}

// The request's headers by name; each name must occur once.
std::map<std::string, std::string> headers(const ProviderRequest& request) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : request.http.headers) CHECK(out.emplace(name, value).second);
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  FAIL("not a hex digit: " << c);
  return 0;
}

std::string form_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%') {
      REQUIRE(i + 2 < text.size() + 0);
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// A form body as name -> value; each name must occur once.
std::map<std::string, std::string> parse_form(std::string_view body) {
  std::map<std::string, std::string> fields;
  while (!body.empty()) {
    const auto amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    const auto eq = pair.find('=');
    REQUIRE(eq != std::string_view::npos);
    CHECK(fields.emplace(form_decode(pair.substr(0, eq)), form_decode(pair.substr(eq + 1))).second);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
  }
  return fields;
}

std::string base64_decode(std::string_view text) {
  std::string out(text.size(), '\0');
  const int length =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                      static_cast<int>(text.size()));
  REQUIRE(length >= 0);
  out.resize(static_cast<std::size_t>(length));
  while (!text.empty() && text.back() == '=') {
    out.pop_back();
    text.remove_suffix(1);
  }
  return out;
}

std::string hmac_hex(const std::string& key, const std::string& message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), digest, &length);
  std::string hex;
  char byte[3];
  for (unsigned int i = 0; i < length; ++i) {
    std::snprintf(byte, sizeof byte, "%02x", digest[i]);
    hex += byte;
  }
  return hex;
}

HttpClientResponse answer(long status, std::string body = "", std::map<std::string, std::string> headers = {}) {
  HttpClientResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers = std::move(headers);
  return response;
}

}  // namespace

TEST_CASE("a sendgrid email is a JSON mail send with a bearer key and both text and HTML") {
  const Notification n = email();
  const ProviderRequest request = build(channel(Channel::kEmail, "sendgrid"), n);
  CHECK(request.http.method == "POST");
  CHECK(request.http.url == "https://api.sendgrid.com/v3/mail/send");
  CHECK(request.http.timeout == 7s);
  auto h = headers(request);
  CHECK(h["Authorization"] == "Bearer " + secret_key);
  CHECK(h["Content-Type"] == "application/json");
  CHECK(h["Idempotency-Key"] == n.idempotency_key);

  const json body = json::parse(request.http.body);
  CHECK(body["personalizations"] == json::parse(R"([{"to":[{"email":"zoe@example.nl"}]}])"));
  CHECK(body["from"] == json{{"email", "shop@example.com"}, {"name", "Café & Co"}});
  CHECK(body["subject"] == "Je bestelling bij Café & Co is geannuleerd");
  REQUIRE(body["content"].size() == 2);
  CHECK(body["content"][0] == json{{"type", "text/plain"}, {"value", body_text}});
  CHECK(body["content"][1]["type"] == "text/html");
  CHECK(body["content"][1]["value"] == html_body(body_text));
  CHECK(body["content"][1]["value"].get<std::string>().find("5 < 6") == std::string::npos);
  CHECK(body["custom_args"] == json{{"idempotency_key", n.idempotency_key}});
  CHECK(request.secrets == std::vector<std::string>{secret_key});
}

TEST_CASE("a sendgrid channel with its own url posts there") {
  const ProviderRequest request =
      build(channel(Channel::kEmail, "sendgrid", "http://127.0.0.1:9/v3/mail/send"), email());
  CHECK(request.http.url == "http://127.0.0.1:9/v3/mail/send");
}

TEST_CASE("a mailgun email is a form with basic auth as api, percent-encoded in UTF-8") {
  const Notification n = email();
  const std::string url = "https://api.mailgun.net/v3/mg.example.com/messages";
  const ProviderRequest request = build(channel(Channel::kEmail, "mailgun", url), n);
  CHECK(request.http.method == "POST");
  CHECK(request.http.url == url);
  auto h = headers(request);
  REQUIRE(h["Authorization"].starts_with("Basic "));
  CHECK(base64_decode(h["Authorization"].substr(6)) == "api:" + secret_key);
  CHECK(h["Content-Type"] == "application/x-www-form-urlencoded");
  CHECK(h["Idempotency-Key"] == n.idempotency_key);

  // Nothing outside the unreserved set travels raw.
  CHECK(request.http.body.find_first_of(" <>\"\n\xc3") == std::string::npos);
  const auto fields = parse_form(request.http.body);
  CHECK(fields == std::map<std::string, std::string>{{"from", "Café & Co <shop@example.com>"},
                                                     {"to", "zoe@example.nl"},
                                                     {"subject", "Je bestelling bij Café & Co is geannuleerd"},
                                                     {"text", body_text},
                                                     {"html", html_body(body_text)},
                                                     {"v:idempotency_key", n.idempotency_key}});
}

TEST_CASE("a twilio SMS is a form to the account's Messages resource with basic auth and Twilio's token") {
  const Notification n = sms();
  ChannelConfig c = channel(Channel::kSms, "twilio");
  c.account = "AC0123456789abcdef0123456789abcdef";
  const ProviderRequest request = build(c, n);
  CHECK(request.http.method == "POST");
  CHECK(request.http.url ==
        "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json");
  auto h = headers(request);
  REQUIRE(h["Authorization"].starts_with("Basic "));
  CHECK(base64_decode(h["Authorization"].substr(6)) == c.account + ":" + secret_key);
  CHECK(h["Content-Type"] == "application/x-www-form-urlencoded");
  CHECK(h["Idempotency-Key"] == n.idempotency_key);
  CHECK(h["I-Twilio-Idempotency-Token"] == n.idempotency_key);
  CHECK(parse_form(request.http.body) ==
        std::map<std::string, std::string>{{"To", "+31612345678"}, {"From", "+3197010203040"}, {"Body", body_text}});
}

TEST_CASE("a twilio channel without an account is refused") {
  CHECK_THAT(error_of(channel(Channel::kSms, "twilio"), sms()), Catch::Contains("account"));
}

TEST_CASE("a messagebird SMS is JSON with an access key, the idempotency key as reference") {
  const Notification n = sms();
  const ProviderRequest request = build(channel(Channel::kSms, "messagebird"), n);
  CHECK(request.http.method == "POST");
  CHECK(request.http.url == "https://rest.messagebird.com/messages");
  auto h = headers(request);
  CHECK(h["Authorization"] == "AccessKey " + secret_key);
  CHECK(h["Content-Type"] == "application/json");
  CHECK(h["Idempotency-Key"] == n.idempotency_key);
  const json body = json::parse(request.http.body);
  CHECK(body["recipients"] == json::array({"+31612345678"}));
  CHECK(body["originator"] == "+3197010203040");
  CHECK(body["body"] == body_text);
  CHECK(body["reference"] == n.idempotency_key);
  CHECK(body["datacoding"] == "unicode");  // ë is not GSM-7
}

TEST_CASE("a messagebird SMS in plain GSM-7 says so") {
  Notification n = sms();
  n.body = "Your order A-1001 was cancelled; EUR 12.50 comes back.";
  const json body = json::parse(build(channel(Channel::kSms, "messagebird"), n).http.body);
  CHECK(body["datacoding"] == "plain");
}

TEST_CASE("an email webhook is tactd's JSON, signed over timestamp and body") {
  const Notification n = email();
  const ProviderRequest request = build(channel(Channel::kEmail, "webhook", "https://hooks.example.com/mail"), n);
  CHECK(request.http.method == "POST");
  CHECK(request.http.url == "https://hooks.example.com/mail");
  auto h = headers(request);
  CHECK(h.count("Authorization") == 0);
  CHECK(h["Content-Type"] == "application/json");
  CHECK(h["Idempotency-Key"] == n.idempotency_key);
  CHECK(h["X-Tactd-Timestamp"] == "1795192267");  // now in Unix seconds
  CHECK(h["X-Tactd-Signature"] == "sha256=" + hmac_hex(secret_key, h["X-Tactd-Timestamp"] + "." + request.http.body));

  const json body = json::parse(request.http.body);
  CHECK(body["idempotency_key"] == n.idempotency_key);
  CHECK(body["channel"] == "email");
  CHECK(body["to"] == "zoe@example.nl");
  CHECK(body["subject"] == *n.subject);
  CHECK(body["body"] == body_text);
  CHECK(body["html"] == html_body(body_text));
  CHECK(body["rule"] == "cancel-apology");
  CHECK(body["kind"] == "apology");
  CHECK(body["customer"] == "C-7");
  CHECK(body["entity"] == "order/A-1001");
  CHECK(body["locale"] == "nl");
  CHECK(body["due_at"] == "2026-11-20T16:31:00Z");
}

TEST_CASE("a webhook body is byte for byte what nlohmann::json writes for the same object") {
  for (const Channel which : {Channel::kEmail, Channel::kSms}) {
    Notification n = which == Channel::kEmail ? email() : sms();
    n.body = "quote \" back\\slash\ttab\x01\x1f\x7f caf\xc3\xa9 bad\xff\xc3 end";
    n.time_zone = which == Channel::kEmail ? "Europe/Amsterdam" : "";
    ChannelConfig c = channel(which, "webhook", "http://127.0.0.1:9/hook");
    c.from = which == Channel::kEmail ? "Shop <shop@example.nl>" : "";
    const ProviderRequest request = build(c, n);
    json expected = {
        {"idempotency_key", n.idempotency_key},
        {"channel", to_string(n.channel)},
        {"to", n.to},
        {"body", n.body},
        {"rule", n.rule},
        {"kind", to_string(n.kind)},
        {"customer", n.customer},
        {"entity", n.entity.str()},
        {"locale", n.locale},
        {"due_at", format_rfc3339(n.at)},
    };
    if (!c.from.empty()) expected["from"] = c.from;
    if (!n.time_zone.empty()) expected["time_zone"] = n.time_zone;
    if (which == Channel::kEmail) {
      expected["subject"] = *n.subject;
      expected["html"] = html_body(n.body);
    }
    CHECK(request.http.body == expected.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

TEST_CASE("a JSON string is written as nlohmann::json writes it, invalid UTF-8 replaced") {
  const std::vector<std::string> texts = {
      "",
      "plain",
      std::string("nul\0inside", 10),
      "\b\f\n\r\t\x0b\"\\/",
      "Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80",  // 2, 3 and 4 byte characters
      "\xc0\xaf",                                  // overlong
      "\xed\xa0\x80",                              // a surrogate
      "\xf4\x90\x80\x80",                          // past U+10FFFF
      "\xe2\x82",                                  // cut short
      "\x80 lone continuation",
      "\xf0\x9f\x98",  // cut short at the end
  };
  for (const std::string& text : texts) {
    std::string out = "x";
    append_json_string(out, text);
    CHECK(out == "x" + json(text).dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

TEST_CASE("an SMS webhook without a secret is unsigned and has no subject or HTML") {
  ChannelConfig c = channel(Channel::kSms, "webhook", "http://127.0.0.1:9/sms");
  c.secret.clear();
  const ProviderRequest request = build(c, sms());
  auto h = headers(request);
  CHECK(h.count("X-Tactd-Signature") == 0);
  CHECK(h["X-Tactd-Timestamp"] == "1795192267");
  CHECK(request.secrets.empty());
  const json body = json::parse(request.http.body);
  CHECK(body["channel"] == "sms");
  CHECK(body["to"] == "+31612345678");
  CHECK_FALSE(body.contains("subject"));
  CHECK_FALSE(body.contains("html"));
}

TEST_CASE("the HMAC is RFC 4231's and the webhook signature is the push endpoint's scheme") {
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(webhook_signature("key", "1795192267", "{\"a\":1}") == "sha256=" + hmac_hex("key", "1795192267.{\"a\":1}"));
}

TEST_CASE("every request carries the notification's idempotency key, and a key cannot break its header") {
  Notification n = sms();
  n.idempotency_key = "rule:order/A-1\r\nX-Evil: yes:ö%";
  ChannelConfig c = channel(Channel::kSms, "twilio");
  c.account = "AC1";
  auto h = headers(build(c, n));
  CHECK(h["Idempotency-Key"] == "rule:order/A-1%0D%0AX-Evil: yes:%C3%B6%25");
  CHECK(h["I-Twilio-Idempotency-Token"] == h["Idempotency-Key"]);
  CHECK(h.count("X-Evil") == 0);
  // The same key gives the same header on every attempt.
  CHECK(headers(build(c, n))["Idempotency-Key"] == h["Idempotency-Key"]);
}

TEST_CASE("describe shows the request with the secret masked as bearer, basic, form and JSON") {
  SECTION("bearer, and a secret that leaked into the JSON body") {
    Notification n = email();
    n.body = "code " + secret_key;
    const std::string text = describe(build(channel(Channel::kEmail, "sendgrid"), n));
    CHECK(text.starts_with("POST https://api.sendgrid.com/v3/mail/send\n"));
    CHECK_THAT(text, Catch::Contains("\nAuthorization: Bearer ***\n"));
    CHECK_THAT(text, Catch::Contains("\nIdempotency-Key: " + n.idempotency_key + "\n"));
    CHECK_THAT(text, Catch::Contains("\n\n{\"content\":"));
    CHECK_THAT(text, Catch::Contains("code ***"));
    CHECK_THAT(text, !Catch::Contains("s3cr3t"));
  }
  SECTION("basic auth, and a secret that leaked into the form") {
    Notification n = sms();
    n.body = "code " + secret_key;
    ChannelConfig c = channel(Channel::kSms, "twilio");
    c.account = "AC1";
    const ProviderRequest request = build(c, n);
    const std::string text = describe(request);
    CHECK_THAT(text, Catch::Contains("\nAuthorization: Basic base64(AC1:***)\n"));
    CHECK_THAT(text, Catch::Contains("Body=code+***"));
    CHECK_THAT(text, !Catch::Contains("s3cr3t"));
    CHECK_THAT(text, !Catch::Contains(headers(request)["Authorization"].substr(6)));
  }
  SECTION("the webhook's HMAC key, which only its signature depends on") {
    Notification n = email();
    n.body = "code " + secret_key;
    const std::string text = describe(build(channel(Channel::kEmail, "webhook", "http://127.0.0.1:9/"), n));
    CHECK_THAT(text, Catch::Contains("\nX-Tactd-Signature: sha256="));
    CHECK_THAT(text, !Catch::Contains("s3cr3t"));
  }
}

TEST_CASE("an SMS longer than the channel's segments is refused, saying how long it is") {
  ChannelConfig c = channel(Channel::kSms, "messagebird");
  c.max_segments = 2;
  Notification n = sms();
  n.body = std::string(306, 'a');  // two GSM-7 parts of 153
  build(c, n);
  n.body = std::string(307, 'a');
  const std::string error = error_of(c, n);
  CHECK_THAT(error, Catch::Contains("3 segments"));
  CHECK_THAT(error, Catch::Contains("307 GSM-7 characters"));
  CHECK_THAT(error, Catch::Contains("max_segments = 2"));
  n.body = std::string(135, 'a') + "ë";  // UCS-2: 67 per part
  CHECK_THAT(error_of(c, n), Catch::Contains("3 segments long (136 UCS-2 units)"));
  CHECK_THAT(error_of(channel(Channel::kSms, "webhook", "http://127.0.0.1:9/"),
                      [&] {
                        Notification empty = sms();
                        empty.body.clear();
                        return empty;
                      }()),
             Catch::Contains("empty"));
}

TEST_CASE("what cannot be sent over a provider's HTTP API is refused at once") {
  Notification no_subject = email();
  no_subject.subject.reset();
  CHECK_THAT(error_of(channel(Channel::kEmail, "sendgrid"), no_subject), Catch::Contains("no subject"));
  CHECK_THAT(error_of(channel(Channel::kEmail, "smtp", "smtp://127.0.0.1:25"), email()),
             Catch::Contains("not an HTTP provider"));
  CHECK(error_of(channel(Channel::kEmail, "twilio"), email()) ==
        "unknown email provider 'twilio': use sendgrid, mailgun, smtp or webhook");
  CHECK_THAT(error_of(channel(Channel::kEmail, "mailgun"), email()), Catch::Contains("mailgun needs a url"));
  CHECK_THAT(error_of(channel(Channel::kEmail, "webhook"), email()), Catch::Contains("webhook needs a url"));
  CHECK_THAT(error_of(channel(Channel::kSms, "messagebird"), email()),
             Catch::Contains("the notification is for email, the channel sends sms"));
  ChannelConfig no_key = channel(Channel::kEmail, "sendgrid");
  no_key.secret.clear();
  CHECK_THAT(error_of(no_key, email()), Catch::Contains("needs a secret"));
  ChannelConfig broken_key = channel(Channel::kEmail, "sendgrid");
  broken_key.secret += "\n";  // would end the Authorization header
  CHECK_THAT(error_of(broken_key, email()), Catch::Contains("control character"));
  Notification nobody = email();
  nobody.to.clear();
  CHECK_THAT(error_of(channel(Channel::kEmail, "sendgrid"), nobody), Catch::Contains("no recipient"));
}

TEST_CASE("a 2xx answer is delivered, with what the provider said") {
  Verdict ok = judge(answer(200, R"({"sid": "SM1"})"), now);
  CHECK(ok.kind == Verdict::kDelivered);
  CHECK(ok.reason == R"(HTTP 200: {"sid": "SM1"})");
  Verdict accepted = judge(answer(202), now);
  CHECK(accepted.kind == Verdict::kDelivered);
  CHECK(accepted.reason == "HTTP 202");
}

TEST_CASE("a 400 is permanent and keeps the provider's answer, on one line and bounded") {
  Verdict bad = judge(answer(400, "{\"errors\": [\n  {\"message\": \"invalid email\"}\n]}\n"), now);
  CHECK(bad.kind == Verdict::kPermanent);
  CHECK_FALSE(bad.retry_after);
  CHECK(bad.reason == R"(HTTP 400: {"errors": [ {"message": "invalid email"} ]})");
  CHECK(judge(answer(401), now).kind == Verdict::kPermanent);
  CHECK(judge(answer(404), now).kind == Verdict::kPermanent);

  std::string long_answer(Verdict::kMaxAnswer - 1, 'x');
  long_answer += "ééé";
  Verdict cut = judge(answer(422, long_answer), now);
  CHECK(cut.reason.size() <= std::string("HTTP 422: ").size() + Verdict::kMaxAnswer + 3);
  CHECK(cut.reason.ends_with("x..."));  // not inside the é
}

TEST_CASE("a 3xx is a failure with the provider's answer: the request was not sent on to the redirect") {
  Verdict moved = judge(answer(301, "moved", {{"location", "https://elsewhere.example/v2?token=x"}}), now);
  CHECK(moved.kind == Verdict::kPermanent);
  CHECK(
      moved.reason ==
      "HTTP 301: moved; a redirect to https://elsewhere.example/v2, not followed: configure the provider's final URL");
  CHECK(judge(answer(307), now).reason == "HTTP 307; a redirect, not followed: configure the provider's final URL");
}

TEST_CASE("a 429 is retried no sooner than its Retry-After, in seconds or as an HTTP-date") {
  Verdict seconds = judge(answer(429, "slow down", {{"retry-after", "7"}}), now);
  CHECK(seconds.kind == Verdict::kRetry);
  REQUIRE(seconds.retry_after);
  CHECK(*seconds.retry_after == 7s);
  CHECK(seconds.reason == "HTTP 429: slow down");

  // now is Fri, 20 Nov 2026 16:31:07 GMT.
  Verdict date = judge(answer(429, "", {{"retry-after", "Fri, 20 Nov 2026 16:33:07 GMT"}}), now);
  CHECK(date.kind == Verdict::kRetry);
  REQUIRE(date.retry_after);
  CHECK(*date.retry_after == 2min);

  Verdict past = judge(answer(429, "", {{"retry-after", "Fri, 20 Nov 2026 16:00:00 GMT"}}), now);
  REQUIRE(past.retry_after);
  CHECK(*past.retry_after == 0s);

  Verdict huge = judge(answer(429, "", {{"retry-after", "99999999999999"}}), now);
  REQUIRE(huge.retry_after);
  CHECK(*huge.retry_after == Verdict::kMaxRetryAfter);

  Verdict nonsense = judge(answer(429, "", {{"retry-after", "soon"}}), now);
  CHECK(nonsense.kind == Verdict::kRetry);
  CHECK_FALSE(nonsense.retry_after);
}

TEST_CASE("a 503 is retried honouring Retry-After, a 500 and a 408 are retried") {
  Verdict unavailable = judge(answer(503, "maintenance", {{"retry-after", "120"}}), now);
  CHECK(unavailable.kind == Verdict::kRetry);
  REQUIRE(unavailable.retry_after);
  CHECK(*unavailable.retry_after == 120s);

  Verdict error = judge(answer(500, "oops"), now);
  CHECK(error.kind == Verdict::kRetry);
  CHECK_FALSE(error.retry_after);
  CHECK(error.reason == "HTTP 500: oops");
  CHECK(judge(answer(502), now).kind == Verdict::kRetry);
  CHECK(judge(answer(408), now).kind == Verdict::kRetry);
}

TEST_CASE("no answer at all (a timeout, a refused connection) is retried") {
  HttpClientResponse timeout;
  timeout.error = "Timeout was reached";
  Verdict verdict = judge(timeout, now);
  CHECK(verdict.kind == Verdict::kRetry);
  CHECK_FALSE(verdict.retry_after);
  CHECK(verdict.reason == "no answer: Timeout was reached");
  CHECK(judge(HttpClientResponse{}, now).kind == Verdict::kRetry);
}
