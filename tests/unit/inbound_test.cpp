// Parsing and signature checks of what providers post to the inbound
// endpoint, and the STOP words.
#include "inbound/inbound_request.h"

#include <catch2/catch.hpp>

using namespace tactd;
using Catch::Contains;

namespace {

const Timestamp kNow = *parse_rfc3339("2026-11-20T17:45:00Z");
const std::string kTwilioToken = "twilio-auth-token";
const std::string kBirdKey = "messagebird-signing-key";
const std::string kSecret = "inbound-hmac-secret";

InboundConfig config() {
  InboundConfig c;
  c.public_url = "https://shop.example/tactd";
  c.twilio_token = kTwilioToken;
  c.messagebird_key = kBirdKey;
  c.hmac_secret = kSecret;
  return c;
}

std::string seconds(Timestamp t) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
}

HttpRequest post(std::string target, std::string body, std::map<std::string, std::string> headers) {
  return HttpRequest{"POST", std::move(target), std::move(headers), std::move(body)};
}

HttpRequest twilio(const std::string& body, const std::string& signature) {
  return post("/v1/inbound/twilio", body, {{"x-twilio-signature", signature}});
}

HttpRequest signed_json(const std::string& target, const std::string& body, Timestamp at = kNow) {
  const std::string ts = seconds(at);
  return post(target, body, {{"x-tactd-timestamp", ts}, {"x-tactd-signature", tactd_signature(kSecret, ts, body)}});
}

const std::string kTwilioBody =
    "ToCountry=NL&Body=Waar+blijft+mijn+geld%3F&From=%2B31612345678&To=%2B3197010203040&MessageSid=SM123&NumMedia=0";

std::string twilio_signed_body_signature() {
  std::string error;
  return twilio_signature(kTwilioToken, "https://shop.example/tactd/v1/inbound/twilio",
                          *parse_form(kTwilioBody, error));
}

}  // namespace

TEST_CASE("Twilio's signature is the base64 HMAC-SHA1 of the URL and the sorted parameters") {
  // The example of Twilio's security documentation (checked with Python's hmac):
  // the URL, then each parameter name and value in name order.
  const std::string sig = twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                                           {{"To", "+18005551212"},
                                            {"From", "+14158675310"},
                                            {"Digits", "1234"},
                                            {"Caller", "+14158675310"},
                                            {"CallSid", "CA1234567890ABCDE"}});
  CHECK(sig == "GvWf1cFY/Q7PnoempGyD5oXAezc=");
}

TEST_CASE("a Twilio inbound SMS with a valid signature is parsed") {
  const InboundParse p = parse_inbound(twilio(kTwilioBody, twilio_signed_body_signature()), config(), kNow);
  INFO(p.error);
  REQUIRE(p.message);
  CHECK(p.message->channel == Channel::kSms);
  CHECK(p.message->provider == "twilio");
  CHECK(p.message->from == "+31612345678");
  CHECK(p.message->to == "+3197010203040");
  CHECK(p.message->text == "Waar blijft mijn geld?");
  CHECK(p.message->provider_id == "SM123");
}

TEST_CASE("a Twilio request with a wrong or missing signature is refused with 401") {
  InboundParse p = parse_inbound(twilio(kTwilioBody, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), config(), kNow);
  CHECK_FALSE(p.message);
  CHECK(p.status == 401);
  CHECK_THAT(p.error, Contains("X-Twilio-Signature does not match") && Contains("public_url"));
  // Signed for another URL: tactd behind a proxy must be told the public one.
  InboundConfig other = config();
  other.public_url = "http://127.0.0.1:8426";
  p = parse_inbound(twilio(kTwilioBody, twilio_signed_body_signature()), other, kNow);
  CHECK(p.status == 401);
  // A changed body.
  p = parse_inbound(twilio(kTwilioBody + "&Extra=1", twilio_signed_body_signature()), config(), kNow);
  CHECK(p.status == 401);
  auto head = screen_inbound(post("/v1/inbound/twilio", "", {}), config());
  REQUIRE(head);
  CHECK(head->status == 401);
  CHECK_THAT(head->error, Contains("X-Twilio-Signature is missing"));
}

TEST_CASE("a signed Twilio request without From or Body is a 400 that names the parameter") {
  std::string error;
  const std::string body = "To=%2B3197010203040&Body=hi";
  const std::string sig =
      twilio_signature(kTwilioToken, "https://shop.example/tactd/v1/inbound/twilio", *parse_form(body, error));
  const InboundParse p = parse_inbound(twilio(body, sig), config(), kNow);
  CHECK(p.status == 400);
  CHECK_THAT(p.error, Contains("'From'"));
  const InboundParse bad = parse_inbound(twilio("From=%ZZ", "x"), config(), kNow);
  CHECK(bad.status == 400);
  CHECK_THAT(bad.error, Contains("%-escape"));
}

TEST_CASE("a MessageBird inbound SMS with a valid JWT is parsed, form-encoded or JSON") {
  const std::string url = "https://shop.example/tactd/v1/inbound/messagebird";
  const std::string form = "id=mb-1&originator=31612345678&recipient=3197010203040&body=STOP";
  InboundParse p =
      parse_inbound(post("/v1/inbound/messagebird", form,
                         {{"messagebird-signature-jwt", messagebird_signature(kBirdKey, url, form, kNow)}}),
                    config(), kNow);
  INFO(p.error);
  REQUIRE(p.message);
  CHECK(p.message->provider == "messagebird");
  CHECK(p.message->from == "31612345678");
  CHECK(p.message->text == "STOP");
  CHECK(p.message->provider_id == "mb-1");
  const std::string json = R"({"id":"mb-2","originator":"+31612345678","recipient":"+3197010203040","body":"Hoi"})";
  p = parse_inbound(post("/v1/inbound/messagebird", json,
                         {{"messagebird-signature-jwt", messagebird_signature(kBirdKey, url, json, kNow)}}),
                    config(), kNow);
  REQUIRE(p.message);
  CHECK(p.message->text == "Hoi");
}

TEST_CASE("a MessageBird JWT made apart from tactd, as MessageBird documents it, is accepted") {
  // Made with Python's hmac, hashlib and base64 (not tactd's code): header
  // {"alg":"HS256","typ":"JWT"}, claims iss, nbf, exp, jti, url_hash and
  // payload_hash (hex SHA-256), base64url without padding, HMAC-SHA256 keyed
  // with the signing key over "<header>.<claims>".
  const std::string jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTc5NTE5NjY5MCwiZXhwIjoxNzk1MTk2NzYw"
      "LCJqdGkiOiI0ZTFjMmI1YS0wYjVmLTRjMWUtOWE1Ny0yZjhkN2QxYTNjMTEiLCJ1cmxfaGFzaCI6IjY5ODBlNTc1NTZjOTllYmYxZDVmMmMz"
      "NzFjNTM2ZThiYWUzYzY2OTQwZTUzMzZhMGIwZTkyZjdiYTFkM2U1ZDUiLCJwYXlsb2FkX2hhc2giOiIwMzBhOGVkZTVmOTY0OTc3MjM5MWYz"
      "NTdkMGNiZTIxMzc4MmNiNThjMTQ0YWNiMzg1YzE3YmI5MTk4ZjRjNjZmIn0.9L73Tqkd8ECU-_6CUmmUcuAPW8sK3VkmIV--monKjCw";
  const std::string body = "originator=31612345678&recipient=3197010203040&body=STOP";
  const InboundParse p =
      parse_inbound(post("/v1/inbound/messagebird", body, {{"messagebird-signature-jwt", jwt}}), config(), kNow);
  INFO(p.error);
  REQUIRE(p.message);
  CHECK(p.message->text == "STOP");
  // The same token for another body, or with one character of its signature changed, is refused.
  CHECK(parse_inbound(post("/v1/inbound/messagebird", body + "x", {{"messagebird-signature-jwt", jwt}}), config(), kNow)
            .status == 401);
  std::string forged = jwt;
  forged[jwt.rfind('.') + 1] = 'A';  // was '9'; a whole 6 bits of the signature
  CHECK(parse_inbound(post("/v1/inbound/messagebird", body, {{"messagebird-signature-jwt", forged}}), config(), kNow)
            .status == 401);
}

TEST_CASE("a MessageBird JWT that is forged, expired, for another URL or another body is refused") {
  const std::string url = "https://shop.example/tactd/v1/inbound/messagebird";
  const std::string body = "originator=31612345678&body=hi";
  const Duration skew = std::chrono::minutes{5};
  CHECK(check_messagebird_signature(kBirdKey, messagebird_signature(kBirdKey, url, body, kNow), url, body, kNow, skew)
            .empty());
  CHECK_THAT(
      check_messagebird_signature(kBirdKey, messagebird_signature("other", url, body, kNow), url, body, kNow, skew),
      Contains("signature does not match"));
  CHECK_THAT(check_messagebird_signature(kBirdKey, messagebird_signature(kBirdKey, url, body, kNow), url, body,
                                         kNow + std::chrono::hours{1}, skew),
             Contains("expired"));
  CHECK_THAT(check_messagebird_signature(kBirdKey, messagebird_signature(kBirdKey, url, body, kNow), url + "?x=1", body,
                                         kNow, skew),
             Contains("url_hash"));
  CHECK_THAT(check_messagebird_signature(kBirdKey, messagebird_signature(kBirdKey, url, body, kNow), url, body + "x",
                                         kNow, skew),
             Contains("payload_hash"));
  CHECK_THAT(check_messagebird_signature(kBirdKey, "not-a-jwt", url, body, kNow, skew), Contains("not a JWT"));
  const InboundParse p = parse_inbound(post("/v1/inbound/messagebird", body, {}), config(), kNow);
  CHECK(p.status == 401);
  CHECK_THAT(p.error, Contains("MessageBird-Signature-JWT is missing"));
}

TEST_CASE("the generic JSON webhooks take an SMS and an email, signed like the push endpoint") {
  InboundParse p = parse_inbound(
      signed_json("/v1/inbound/sms", R"({"from":"+31612345678","to":"+3197010203040","text":"Stop","id":"x-1"})"),
      config(), kNow);
  REQUIRE(p.message);
  CHECK(p.message->channel == Channel::kSms);
  CHECK(p.message->provider == "json");
  CHECK(p.message->provider_id == "x-1");
  p = parse_inbound(signed_json("/v1/inbound/email", R"({"from":"Ben Carter <Ben@Example.com>","to":"shop@example.com",
      "subject":"Re: Your order","text":"Where is my refund?\n\nOn Friday Shop wrote:\n> Sorry",
      "in_reply_to":"<abc@shop.example>","references":"<old@shop.example> <abc@shop.example>"})"),
                    config(), kNow);
  INFO(p.error);
  REQUIRE(p.message);
  CHECK(p.message->channel == Channel::kEmail);
  CHECK(p.message->subject == "Re: Your order");
  CHECK(p.message->references == std::vector<std::string>{"abc@shop.example", "abc@shop.example", "old@shop.example"});
  CHECK(written_part(p.message->text, Channel::kEmail) == "Where is my refund?");
}

TEST_CASE("malformed or unsigned JSON webhooks are refused with where and what") {
  CHECK(parse_inbound(signed_json("/v1/inbound/sms", R"({"to":"+31"})"), config(), kNow).error == "'from' is missing");
  CHECK(parse_inbound(signed_json("/v1/inbound/sms", R"({"from":"+31","text":7})"), config(), kNow).error ==
        "'text' must be text");
  const InboundParse not_json = parse_inbound(signed_json("/v1/inbound/email", "{\"from\": "), config(), kNow);
  CHECK(not_json.status == 400);
  CHECK_THAT(not_json.error, Contains("not JSON") && Contains("byte"));
  const InboundParse refs =
      parse_inbound(signed_json("/v1/inbound/email", R"({"from":"a@b.c","text":"x","references":5})"), config(), kNow);
  CHECK_THAT(refs.error, Contains("'references' must be text or a list"));
  const InboundParse old = parse_inbound(
      signed_json("/v1/inbound/sms", R"({"from":"+31","text":"x"})", kNow - std::chrono::hours{1}), config(), kNow);
  CHECK(old.status == 401);
  CHECK_THAT(old.error, Contains("too far from now"));
  HttpRequest forged = signed_json("/v1/inbound/sms", R"({"from":"+31","text":"x"})");
  forged.body = R"({"from":"+32","text":"x"})";
  CHECK(parse_inbound(forged, config(), kNow).status == 401);
  CHECK(screen_inbound(post("/v1/inbound/other", "", {}), config())->status == 404);
  CHECK(screen_inbound(HttpRequest{"GET", "/v1/inbound/sms", {}, ""}, config())->status == 405);
  InboundConfig off = config();
  off.hmac_secret.clear();
  CHECK(screen_inbound(signed_json("/v1/inbound/sms", "{}"), off)->status == 401);
}

TEST_CASE("STOP and its Dutch and English synonyms opt out, alone, in any case, trimmed") {
  for (const char* word :
       {"STOP",         "stop",     " Stop \n",    "STOPP",        "stoppen",    "AFMELDEN", "Afmelden.",
        "uitschrijven", "OPZEGGEN", "UNSUBSCRIBE", "unsubscribe!", "cancel",     "END",      "quit",
        "STOPALL",      "opt-out",  "Opt out",     "afmelding",    "optout",     "Revoke",   "stop all",
        "\tSTOP\r\n",   "Stop !",   "STOP. ",      "opt \t out",   "Stop all!!", "OPT-OUT."}) {
    INFO(word);
    CHECK(is_stop(word));
  }
  for (const char* text : {"stop sending me this", "please stop", "STOP STOP", "", "Stopcontact", "ok", "S TOP",
                           "stop?", ".", "opt - out"}) {
    INFO(text);
    CHECK_FALSE(is_stop(text));
  }
  CHECK(is_stop(written_part("STOP\n\nOn Fri, 20 Nov 2026 Shop <shop@example.com> wrote:\n> Sorry", Channel::kEmail)));
  CHECK(is_stop(written_part("Afmelden\r\n\r\nOp vrijdag schreef Shop:\r\n> Excuses", Channel::kEmail)));
}

TEST_CASE("START words in Dutch and English take an opt-out back, and nothing else does") {
  for (const char* word : {"START", "start", " Start! ", "UNSTOP", "subscribe", "Aanmelden", "inschrijven.", "OPT-IN",
                           "opt in", "optin"}) {
    INFO(word);
    CHECK(is_start(word));
    CHECK_FALSE(is_stop(word));
  }
  for (const char* text : {"start again please", "STOP", "", "yes", "Starting", "ok"}) {
    INFO(text);
    CHECK_FALSE(is_start(text));
  }
}

TEST_CASE("addresses compare without formatting: numbers by digits, email without case or name") {
  CHECK(address_key(Channel::kSms, "+31 6-1234 5678") == "31612345678");
  CHECK(address_key(Channel::kSms, "(06) 1234.5678") == "0612345678");
  CHECK(address_key(Channel::kEmail, "Ben Carter <Ben@Example.COM>") == "ben@example.com");
  CHECK(address_key(Channel::kEmail, " anna@example.nl ") == "anna@example.nl");
}
