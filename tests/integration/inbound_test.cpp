// Replies come back, end to end: the real `tactd run` with an [inbound]
// endpoint on loopback, providers' requests signed and not, a STOP
// confirmed over a loopback SMS webhook, and replies forwarded to a loopback
// support webhook, or by email over a loopback SMTP server
// (tests/support/smtp_server.py), with the conversation so far.
#include <catch2/catch.hpp>

#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <thread>

#include "inbound/inbound_request.h"
#include "support/daemon.h"
#include "support/http.h"
#include "support/scripted_server.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::eventually;
using tactd::test::TempDir;

namespace {

const std::string kPushToken = "push-token-for-tests";
const std::string kTwilioToken = "twilio-token-for-tests";
const std::string kBirdKey = "messagebird-key-for-tests";
const std::string kSecret = "inbound-secret-for-tests";
const std::string kPublic = "https://shop.example/tactd";

std::string now_seconds() {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

class InboundDaemon {
 public:
  explicit InboundDaemon(const TempDir& dir)
      : dir_(dir), sink_(dir), daemon_(write_config(dir, sink_.base()), dir.path() / "log", kEnv) {
    push_ = tactd::test::logged_port(dir.path() / "log", "push: listening on 127.0.0.1:");
    inbound_ = tactd::test::logged_port(dir.path() / "log", "inbound: listening on 127.0.0.1:");
    REQUIRE(push_ != 0);
    REQUIRE(inbound_ != 0);
  }

  tactd::test::Reply push(const std::string& lines) const {
    return tactd::test::http("POST", "http://127.0.0.1:" + std::to_string(push_) + "/v1/observations", lines,
                             {"Authorization: Bearer " + kPushToken});
  }
  tactd::test::Reply post(const std::string& path, const std::string& body,
                          const std::vector<std::string>& headers) const {
    return tactd::test::http("POST", "http://127.0.0.1:" + std::to_string(inbound_) + path, body, headers);
  }
  tactd::test::Reply twilio(const std::string& body, bool good = true) const {
    std::string error;
    const std::string sig = tactd::twilio_signature(good ? kTwilioToken : "wrong", kPublic + "/v1/inbound/twilio",
                                                    *tactd::parse_form(body, error));
    return post("/v1/inbound/twilio", body,
                {"X-Twilio-Signature: " + sig, "Content-Type: application/x-www-form-urlencoded"});
  }
  tactd::test::Reply messagebird(const std::string& body, bool good = true) const {
    const std::string jwt = tactd::messagebird_signature(
        good ? kBirdKey : "wrong", kPublic + "/v1/inbound/messagebird", body,
        tactd::Timestamp{
            std::chrono::duration_cast<tactd::Duration>(std::chrono::system_clock::now().time_since_epoch())});
    return post("/v1/inbound/messagebird", body,
                {"MessageBird-Signature-JWT: " + jwt, "Content-Type: application/x-www-form-urlencoded"});
  }
  tactd::test::Reply json(const std::string& path, const std::string& body, bool good = true) const {
    const std::string ts = now_seconds();
    return post(
        path, body,
        {"X-Tactd-Timestamp: " + ts, "X-Tactd-Signature: " + tactd::tactd_signature(good ? kSecret : "wrong", ts, body),
         "Content-Type: application/json"});
  }

  // Requests the sink received on `path` ("/sms", "/support").
  std::vector<nlohmann::json> at(const std::string& path) const {
    std::vector<nlohmann::json> out;
    for (auto& r : sink_.requests())
      if (r["path"] == path) out.push_back(r);
    return out;
  }
  int count(const std::string& sql) const {
    SQLite::Database db((dir_.path() / "state.db").string());
    return db.execAndGet(sql).getInt();
  }
  int stop() { return daemon_.stop(); }
  std::string log() const { return tactd::test::slurp(dir_.path() / "log"); }

 private:
  inline static const tactd::test::Environment kEnv{{"TACTD_TEST_BIRD_KEY", kBirdKey},
                                                    {"TACTD_TEST_INBOUND_SECRET", kSecret}};

  static std::filesystem::path write_config(const TempDir& dir, const std::string& sink) {
    dir.write("push-token", kPushToken + "\n");
    dir.write("twilio-token", kTwilioToken + "\n");
    return dir.write("tactd.toml",
                     "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                         "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                         "\"\nstate = \"state.db\"\nmerchant = \"Bakkerij Bol\"\n"
                         "[push]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"push-token\"\n"
                         "[[channel]]\nchannel = \"sms\"\nprovider = \"webhook\"\nurl = \"" +
                         sink + "/sms\"\nbackoff = \"1s\"\n" + "[inbound]\nlisten = \"127.0.0.1:0\"\npublic_url = \"" +
                         kPublic +
                         "/\"\ntwilio_token_file = \"twilio-token\"\nmessagebird_key_env = \"TACTD_TEST_BIRD_KEY\"\n"
                         "hmac_secret_env = \"TACTD_TEST_INBOUND_SECRET\"\npause = \"48h\"\nforward_webhook = \"" +
                         sink + "/support\"\nmax_body = 4096\n");
  }

  const TempDir& dir_;
  tactd::test::Provider sink_;
  tactd::test::Daemon daemon_;
  int push_ = 0;
  int inbound_ = 0;
};

std::string observations(const std::string& now) {
  return R"({"type":"customer","id":"c-1","observed_at":")" + now +
         R"(","fields":{"name":"Anna","phone":"+31612345678","locale":"nl","prefers":"sms"}}
{"type":"order","id":"A-1","observed_at":")" +
         now + R"(","fields":{"customer":"c-1","status":"placed"}}
)";
}

std::string cancelled(const std::string& now) {
  return R"({"type":"order","id":"A-1","observed_at":")" + now +
         R"(","fields":{"customer":"c-1","status":"cancelled","cancel_reason":"te druk"}})";
}

std::string iso_now(int offset_seconds = 0) {
  const auto t = std::chrono::system_clock::now() + std::chrono::seconds{offset_seconds};
  return tactd::format_rfc3339(tactd::Timestamp{std::chrono::duration_cast<tactd::Duration>(t.time_since_epoch())},
                               "UTC");
}

}  // namespace

TEST_CASE("a Twilio STOP reply opts out, is confirmed once over SMS, and is not forwarded") {
  TempDir dir;
  InboundDaemon d(dir);
  REQUIRE(d.push(observations(iso_now(-60))).status == 202);
  REQUIRE(d.push(cancelled(iso_now(-30))).status == 202);
  REQUIRE(eventually([&] { return d.at("/sms").size() == 1; }));  // the apology

  const auto stop = d.twilio("From=%2B31612345678&To=%2B3197010203040&Body=STOP&MessageSid=SM1");
  CHECK(stop.status == 200);
  CHECK_THAT(stop.body, Contains("<Response></Response>"));
  REQUIRE(eventually([&] { return d.at("/sms").size() == 2; }));  // the confirmation
  CHECK_THAT(d.at("/sms")[1]["body"].dump(), Contains("afgemeld"));
  CHECK(d.count("SELECT COUNT(*) FROM opt_outs WHERE customer = 'c-1' AND channel = 'sms'") == 1);

  // Twilio retries the same message; then a second STOP: no second confirmation.
  CHECK(d.twilio("From=%2B31612345678&To=%2B3197010203040&Body=STOP&MessageSid=SM1").status == 200);
  CHECK(d.twilio("From=%2B31612345678&To=%2B3197010203040&Body=Stop&MessageSid=SM2").status == 200);
  CHECK(d.count("SELECT COUNT(*) FROM replies") == 2);
  std::this_thread::sleep_for(std::chrono::milliseconds{1500});  // a wrong second confirmation would be out by now
  CHECK(d.at("/sms").size() == 2);
  CHECK(d.at("/support").empty());
  CHECK(d.stop() == 0);
}

TEST_CASE("each provider's request with a bad signature is refused with 401 and nothing is recorded") {
  TempDir dir;
  InboundDaemon d(dir);
  const auto twilio = d.twilio("From=%2B31612345678&Body=hi", false);
  CHECK(twilio.status == 401);
  CHECK_THAT(twilio.body, Contains("X-Twilio-Signature"));
  const auto bird = d.messagebird("originator=31612345678&body=hi", false);
  CHECK(bird.status == 401);
  CHECK_THAT(bird.body, Contains("MessageBird-Signature-JWT"));
  CHECK(d.json("/v1/inbound/sms", R"({"from":"+31612345678","text":"hi"})", false).status == 401);
  CHECK(d.json("/v1/inbound/email", R"({"from":"a@example.com","text":"hi"})", false).status == 401);
  CHECK(d.post("/v1/inbound/sms", R"({"from":"+31612345678","text":"hi"})", {}).status == 401);
  CHECK(d.count("SELECT COUNT(*) FROM replies") == 0);
  CHECK(d.stop() == 0);
}

TEST_CASE("malformed inbound requests get 400 with where and what, and the daemon keeps running") {
  TempDir dir;
  InboundDaemon d(dir);
  auto r = d.json("/v1/inbound/sms", R"({"from":"+31612345678"})");
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Contains("'text' is missing"));
  r = d.json("/v1/inbound/email", "{\"from\": ");
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Contains("not JSON") && Contains("byte"));
  r = d.twilio("To=%2B3197010203040&Body=hi");
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Contains("'From'"));
  r = d.messagebird("recipient=3197010203040&body=hi");
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Contains("'originator'"));
  CHECK(d.post("/v1/inbound/nowhere", "", {}).status == 404);
  CHECK(d.post("/v1/inbound/sms", std::string(8000, 'x'), {"X-Tactd-Timestamp: 1", "X-Tactd-Signature: x"}).status ==
        413);
  // Still answering.
  CHECK(d.json("/v1/inbound/sms", R"({"from":"+31600000000","text":"hallo"})").status == 200);
  CHECK(d.stop() == 0);
}

TEST_CASE("a MessageBird reply is recorded, pauses the order, and reaches the support webhook with the conversation") {
  TempDir dir;
  InboundDaemon d(dir);
  REQUIRE(d.push(observations(iso_now(-60))).status == 202);
  REQUIRE(d.push(cancelled(iso_now(-30))).status == 202);
  REQUIRE(eventually([&] { return d.at("/sms").size() == 1; }));

  const auto reply =
      d.messagebird("id=mb-7&originator=31612345678&recipient=3197010203040&body=Waar+blijft+mijn+geld%3F");
  CHECK(reply.status == 200);
  CHECK_THAT(reply.body, Contains("\"customer\":\"c-1\"") && Contains("\"matched_by\":\"sender\""));
  REQUIRE(eventually([&] { return d.at("/support").size() == 1; }));
  const nlohmann::json support = nlohmann::json::parse(d.at("/support")[0]["body"].get<std::string>());
  CHECK(support["reply"]["text"] == "Waar blijft mijn geld?");
  CHECK(support["reply"]["entity"] == "order/A-1");
  REQUIRE(support["conversation"].size() == 2);
  CHECK(support["conversation"][0]["from"] == "tactd");
  CHECK(support["conversation"][1]["from"] == "customer");
  CHECK_THAT(support["text"].get<std::string>(), Contains("Customer c-1"));
  CHECK(d.count("SELECT COUNT(*) FROM pauses WHERE entity = 'order/A-1'") == 1);
  REQUIRE(eventually([&] { return d.count("SELECT COUNT(*) FROM replies WHERE forwarded_at IS NOT NULL") == 1; }));
  CHECK(d.stop() == 0);
}

TEST_CASE("an email reply nobody can match is recorded and forwarded, not lost") {
  TempDir dir;
  InboundDaemon d(dir);
  const auto r = d.json("/v1/inbound/email", R"({"from":"Someone <someone@example.org>","to":"shop@example.com",
      "subject":"Vraag","text":"Hebben jullie dit ook in het blauw?","in_reply_to":"<nothing@shop.example>"})");
  CHECK(r.status == 200);
  CHECK_THAT(r.body, Contains("\"customer\":null"));
  REQUIRE(eventually([&] { return d.at("/support").size() == 1; }));
  const nlohmann::json support = nlohmann::json::parse(d.at("/support")[0]["body"].get<std::string>());
  CHECK(support["reply"]["from"] == "Someone <someone@example.org>");
  CHECK_THAT(support["text"].get<std::string>(), Contains("could not match"));
  CHECK(d.stop() == 0);
}

namespace {

// The SMTP server of tests/support, with STARTTLS and a login, as the email
// channel of a shop would have it.
class MailServer : public tactd::test::ScriptedServer {
 public:
  // `refuse`: addresses it answers RCPT TO with 550 (no such user).
  explicit MailServer(const TempDir& dir, const std::vector<std::string>& refuse = {})
      : ScriptedServer(dir, "mail", command(refuse)) {}
  std::string url() const { return "smtp://127.0.0.1:" + port(); }
  std::filesystem::path ca_file() const { return folder_ / "cert.pem"; }
  std::vector<nlohmann::json> messages() const { return records("messages.jsonl"); }
  std::vector<nlohmann::json> refused() const { return records("refused.jsonl"); }

 private:
  static std::vector<std::string> command(const std::vector<std::string>& refuse) {
    std::vector<std::string> out{"/usr/bin/python3",  // Debian's, which has python3-aiosmtpd
                                 tactd::test::support_script("smtp_server.py"),
                                 "--tls",
                                 "starttls",
                                 "--login",
                                 "shop:fixture-smtp-password"};
    for (const std::string& address : refuse) out.insert(out.end(), {"--refuse-rcpt", address});
    return out;
  }
};

// Email over SMTP to `mail`, replies forwarded by email to `support`;
// `more` is appended (an [operators] table).
std::filesystem::path write_mail_config(const TempDir& dir, const MailServer& mail,
                                        const std::string& support = "support@bakkerijbol.example",
                                        const std::string& more = {}) {
  dir.write("push-token", kPushToken + "\n");
  return dir.write("tactd.toml",
                   "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                       "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                       "\"\nstate = \"state.db\"\nmerchant = \"Bakkerij Bol\"\n"
                       "[push]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"push-token\"\n"
                       "[[channel]]\nchannel = \"email\"\nprovider = \"smtp\"\nurl = \"" +
                       mail.url() + "\"\nca_file = \"" + mail.ca_file().string() +
                       "\"\nfrom = \"Bakkerij Bol <hallo@bakkerijbol.example>\"\nusername = \"shop\"\n"
                       "secret_env = \"SMTP_PASSWORD\"\nbackoff = \"1s\"\ntimeout = \"5s\"\n"
                       "[inbound]\nlisten = \"127.0.0.1:0\"\nhmac_secret_env = \"TACTD_TEST_INBOUND_SECRET\"\n"
                       "forward_email = \"" +
                       support + "\"\n" + more);
}

const tactd::test::Environment kMailEnv{{"SMTP_PASSWORD", "fixture-smtp-password"},
                                        {"TACTD_TEST_INBOUND_SECRET", kSecret}};

tactd::test::Reply signed_json(int port, const std::string& path, const std::string& body) {
  const std::string ts = now_seconds();
  return tactd::test::http(
      "POST", "http://127.0.0.1:" + std::to_string(port) + path, body,
      {"X-Tactd-Timestamp: " + ts, "X-Tactd-Signature: " + tactd::tactd_signature(kSecret, ts, body),
       "Content-Type: application/json"});
}

}  // namespace

TEST_CASE("an email reply is forwarded once to support_email over SMTP with the conversation so far") {
  TempDir dir;
  MailServer mail(dir);
  const auto config = write_mail_config(dir, mail);
  {
    tactd::test::Daemon daemon(config, dir.path() / "log", kMailEnv);
    const int push = tactd::test::logged_port(dir.path() / "log", "push: listening on 127.0.0.1:");
    const int inbound = tactd::test::logged_port(dir.path() / "log", "inbound: listening on 127.0.0.1:");
    REQUIRE(push != 0);
    REQUIRE(inbound != 0);
    const std::string lines = R"({"type":"customer","id":"c-1","observed_at":")" + iso_now(-60) +
                              R"(","fields":{"name":"Anna","email":"anna@example.nl","locale":"nl","prefers":"email"}}
{"type":"order","id":"A-1","observed_at":")" +
                              iso_now(-60) + R"(","fields":{"customer":"c-1","status":"placed"}}
)";
    const auto observe = [&](const std::string& body) {
      return tactd::test::http("POST", "http://127.0.0.1:" + std::to_string(push) + "/v1/observations", body,
                               {"Authorization: Bearer " + kPushToken})
          .status;
    };
    REQUIRE(observe(lines) == 202);
    REQUIRE(observe(cancelled(iso_now(-30))) == 202);
    REQUIRE(eventually([&] { return mail.messages().size() == 1; }));  // the apology, to Anna
    const nlohmann::json apology = mail.messages()[0];
    INFO(apology.dump(2));
    REQUIRE(apology["rcpt_tos"] == nlohmann::json::array({"anna@example.nl"}));
    const std::string subject = apology["headers"]["subject"];
    const std::string message_id = apology["headers"]["message-id"];
    const std::string apology_text = apology["parts"][0]["content"];
    CHECK(subject == "Het spijt ons: je bestelling A-1 is geannuleerd");

    const nlohmann::json reply{{"from", "Anna <anna@example.nl>"},
                               {"to", "hallo@bakkerijbol.example"},
                               {"subject", "Re: " + subject},
                               {"text", "Waar blijft mijn geld? <b>Nu!</b>"},
                               {"in_reply_to", message_id}};
    const auto answer = signed_json(inbound, "/v1/inbound/email", reply.dump());
    CHECK(answer.status == 200);
    CHECK_THAT(answer.body, Contains("\"customer\":\"c-1\"") && Contains("\"matched_by\":\"message-id\""));

    REQUIRE(eventually([&] { return mail.messages().size() == 2; }));
    const nlohmann::json forwarded = mail.messages()[1];
    INFO(forwarded.dump(2));
    CHECK(forwarded["code"] == 250);
    CHECK(forwarded["tls"] == true);
    CHECK(forwarded["login"] == "shop");
    CHECK(forwarded["rcpt_tos"] == nlohmann::json::array({"support@bakkerijbol.example"}));
    CHECK(forwarded["headers"]["to"] == "support@bakkerijbol.example");
    CHECK(forwarded["headers"]["subject"] == "Reply from customer c-1 about order/A-1");
    CHECK(forwarded["defects"].empty());
    REQUIRE(forwarded["parts"].size() == 2);
    CHECK(forwarded["parts"][0]["type"] == "text/plain");
    CHECK(forwarded["parts"][1]["type"] == "text/html");
    const std::string text = forwarded["parts"][0]["content"];
    // The reply, then the conversation so far: what tactd sent Anna, then her reply.
    CHECK_THAT(text, Contains("Customer c-1 (Anna <anna@example.nl>) replied by email"));
    CHECK_THAT(text, Contains("Waar blijft mijn geld? <b>Nu!</b>"));
    // The customer's words are text in the HTML part, never markup.
    CHECK_THAT(forwarded["parts"][1]["content"].get<std::string>(),
               Contains("&lt;b&gt;Nu!&lt;/b&gt;") && !Contains("<b>Nu!"));
    CHECK_THAT(text, Contains("The conversation so far"));
    CHECK_THAT(text, Contains("tactd (order-cancelled, apology) by email"));
    CHECK_THAT(text, Contains("Subject: " + subject));
    // The apology as Anna got it.
    CHECK_THAT(apology_text, Contains("Wat er gebeurde: te druk."));
    CHECK_THAT(text, Contains("Het spijt ons dat we je bestelling A-1 moesten annuleren") &&
                         Contains("Wat er gebeurde: te druk."));
    const auto sent = text.find("tactd (order-cancelled");
    const auto answered = text.rfind("] customer by email");
    CHECK(sent < answered);
    CHECK(answered != std::string::npos);

    REQUIRE(eventually([&] {
      SQLite::Database db((dir.path() / "state.db").string());
      return db.execAndGet("SELECT COUNT(*) FROM replies WHERE forwarded_at IS NOT NULL").getInt() == 1;
    }));
    CHECK(daemon.stop() == 0);
  }
  // After a restart nothing is forwarded again.
  tactd::test::Daemon again(config, dir.path() / "log2", kMailEnv);
  REQUIRE(tactd::test::logged_port(dir.path() / "log2", "inbound: listening on 127.0.0.1:") != 0);
  std::this_thread::sleep_for(std::chrono::milliseconds{1500});  // a wrong second forward would be out by now
  CHECK(mail.messages().size() == 2);
  CHECK(again.stop() == 0);
}

TEST_CASE(
    "a forward the support mail server refuses with 550 is logged once, reaches the operators' digest, and goes "
    "with a Reply-To to the customer after a reload that fixed the address") {
  TempDir dir;
  MailServer mail(dir, {"suport@bakkerijbol.example"});
  const std::string operators = "[operators]\ndigest = \"1s\"\nemail = \"ops@bakkerijbol.example\"\n";
  const auto config = write_mail_config(dir, mail, "suport@bakkerijbol.example", operators);  // a typo
  tactd::test::Daemon daemon(config, dir.path() / "log", kMailEnv);
  const int inbound = tactd::test::logged_port(dir.path() / "log", "inbound: listening on 127.0.0.1:");
  REQUIRE(inbound != 0);
  const nlohmann::json reply{{"from", "Anna <anna@example.nl>"},
                             {"to", "hallo@bakkerijbol.example"},
                             {"subject", "Bestelling"},
                             {"text", "Waar blijft mijn bestelling?"}};
  REQUIRE(signed_json(inbound, "/v1/inbound/email", reply.dump()).status == 200);

  REQUIRE(eventually([&] { return mail.refused().size() == 1; }));
  CHECK(mail.refused()[0]["rcpt"] == "suport@bakkerijbol.example");
  // The operators hear of it in their digest, over the same mail server.
  const auto digest = [&]() -> std::optional<nlohmann::json> {
    for (const nlohmann::json& m : mail.messages())
      if (m["rcpt_tos"] == nlohmann::json::array({"ops@bakkerijbol.example"})) return m;
    return std::nullopt;
  };
  REQUIRE(eventually([&] { return digest().has_value(); }));
  const std::string text = (*digest())["parts"][0]["content"];
  INFO(text);
  CHECK_THAT((*digest())["headers"]["subject"].get<std::string>(), Contains("1 forward_refused"));
  CHECK_THAT(text, Contains("reply 1 (not matched to a customer) was refused by suport@bakkerijbol.example: SMTP 550"));
  // The server's own reason, not the "221 Bye" of the QUIT that followed.
  CHECK_THAT(text, Contains("no such user"));
  const std::string log = tactd::test::slurp(dir.path() / "log");
  INFO(log);
  const auto first = log.find("inbound: reply 1 refused for good");
  REQUIRE(first != std::string::npos);
  CHECK(log.find("refused for good", log.find('\n', first)) == std::string::npos);  // once, not per retry
  const std::string line = log.substr(first, log.find('\n', first) - first);
  CHECK_THAT(line, Contains("suport@bakkerijbol.example") && Contains("550"));
  {
    SQLite::Database db((dir.path() / "state.db").string());
    CHECK(db.execAndGet("SELECT COUNT(*) FROM replies WHERE forwarded_at IS NULL").getInt() == 1);  // kept
  }

  // The operator fixes the address and reloads: the reply goes at once, not in ten minutes.
  write_mail_config(dir, mail, "support@bakkerijbol.example", operators);
  daemon.signal(SIGHUP);
  const auto forwarded = [&]() -> std::optional<nlohmann::json> {
    for (const nlohmann::json& m : mail.messages())
      if (m["rcpt_tos"] == nlohmann::json::array({"support@bakkerijbol.example"})) return m;
    return std::nullopt;
  };
  REQUIRE(eventually([&] { return forwarded().has_value(); }));
  INFO(forwarded()->dump(2));
  // Support's answer goes to Anna, not back to the shop.
  CHECK_THAT((*forwarded())["headers"]["reply-to"].get<std::string>(),
             Contains("Anna") && Contains("<anna@example.nl>"));
  CHECK((*forwarded())["defects"].empty());
  REQUIRE(eventually([&] {
    SQLite::Database db((dir.path() / "state.db").string());
    return db.execAndGet("SELECT COUNT(*) FROM replies WHERE forwarded_at IS NOT NULL").getInt() == 1;
  }));
  CHECK(mail.refused().size() == 1);
  CHECK(daemon.stop() == 0);
}
