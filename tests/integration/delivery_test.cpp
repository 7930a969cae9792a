// The real `tactd run` delivering its outbox to a loopback server that
// records every request and answers as each test scripts it
// (tests/support/recording_server.py): provider formats, retries with
// backoff and Retry-After, the dead letter, rate limits, and the
// idempotency key across retries and restarts; and to a real SMTP server
// (tests/support/smtp_server.py, aiosmtpd) that receives the MIME message
// and parses it with Python's email package. `tactd outbox` is used on the
// state database of the running daemon.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <sstream>
#include <thread>

#include "support/daemon.h"
#include "support/observations.h"
#include "support/scripted_server.h"
#include "support/state_db.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::cancellation;
using tactd::test::Daemon;
using tactd::test::drop;
using tactd::test::eventually;
using tactd::test::Provider;
using tactd::test::ScriptedServer;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

const tactd::test::Environment kSecrets = {{"MAIL_KEY", "SG.fixture-mail-key"}, {"SMS_TOKEN", "fixture-sms-token"}};

// Shipped rules and templates, a spool source, and `channels`.
std::filesystem::path write_config(const TempDir& dir, const std::string& channels) {
  std::filesystem::create_directories(dir.path() / "spool");
  return dir.write("tactd.toml",
                   "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                       "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                       "\"\nstate = \"state.db\"\nmerchant = \"Bakkerij Bol\"\n"
                       "[locale]\ntime_zone = \"Europe/Amsterdam\"\n"
                       "[[source]]\nname = \"drops\"\ntype = \"spool\"\npath = \"spool\"\ninterval = \"1s\"\n" +
                       channels);
}

// Both channels pointed at the recording server; `extra` is appended to each [[channel]].
std::filesystem::path write_config(const TempDir& dir, const Provider& provider, const std::string& extra = "") {
  return write_config(dir, "[[channel]]\nchannel = \"email\"\nprovider = \"sendgrid\"\nurl = \"" + provider.base() +
                               "/v3/mail/send\"\nfrom = \"Bakkerij Bol <hallo@bakkerijbol.example>\"\n"
                               "secret_env = \"MAIL_KEY\"\nbackoff = \"1s\"\ntimeout = \"2s\"\n" +
                               extra + "\n[[channel]]\nchannel = \"sms\"\nprovider = \"twilio\"\nurl = \"" +
                               provider.base() +
                               "/2010-04-01/Accounts/AC0001/Messages.json\"\naccount = \"AC0001\"\n"
                               "from = \"+3197010000001\"\nsecret_env = \"SMS_TOKEN\"\nbackoff = \"1s\"\n"
                               "timeout = \"2s\"\n" +
                               extra + "\n");
}

// status of each outbox row, in id order; empty before the database exists.
std::vector<std::string> statuses(const TempDir& dir) {
  return tactd::test::column(dir.path() / "state.db", "SELECT status FROM outbox ORDER BY id");
}

int db_count(const TempDir& dir, const std::string& table) {
  return std::stoi(tactd::test::column(dir.path() / "state.db", "SELECT COUNT(*) FROM " + table).at(0));
}

// Runs `tactd outbox ...`; its standard output.
std::string outbox_cli(const TempDir& dir, const std::string& args, int* status = nullptr) {
  const std::string command =
      std::string(TACTD_BINARY) + " outbox " + args + " --config " + (dir.path() / "tactd.toml").string() + " 2>&1";
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe);
  std::array<char, 4096> buffer{};
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  const int rc = pclose(pipe);
  if (status) *status = WEXITSTATUS(rc);
  return out;
}

std::map<std::string, std::string> form(const std::string& body) {
  std::map<std::string, std::string> out;
  std::istringstream pairs(body);
  for (std::string pair; std::getline(pairs, pair, '&');) {
    const size_t eq = pair.find('=');
    std::string value = pair.substr(eq + 1);
    std::string decoded;
    for (size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '+')
        decoded += ' ';
      else if (value[i] == '%' && i + 2 < value.size()) {
        decoded += static_cast<char>(std::stoi(value.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        decoded += value[i];
      }
    }
    out[pair.substr(0, eq)] = decoded;
  }
  return out;
}

}  // namespace

TEST_CASE("the outbox is delivered once per notification, in each provider's request format") {
  TempDir dir;
  Provider provider(dir);
  Daemon daemon(write_config(dir, provider), dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", cancellation("1", true) + cancellation("2", false));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered", "delivered"}; }));
  const auto requests = provider.requests();
  REQUIRE(requests.size() == 2);
  const auto& sms = requests[0]["path"] == "/v3/mail/send" ? requests[1] : requests[0];
  const auto& mail = requests[0]["path"] == "/v3/mail/send" ? requests[0] : requests[1];

  // SMS: form-encoded, basic auth with the account and token.
  CHECK(sms["path"] == "/2010-04-01/Accounts/AC0001/Messages.json");
  CHECK(sms["headers"]["content-type"] == "application/x-www-form-urlencoded");
  CHECK(sms["headers"]["authorization"] == "Basic QUMwMDAxOmZpeHR1cmUtc21zLXRva2Vu");  // AC0001:fixture-sms-token
  const auto fields = form(sms["body"]);
  CHECK(fields.at("To") == "+31612345671");
  CHECK(fields.at("From") == "+3197010000001");
  CHECK_THAT(fields.at("Body"), Contains("de oven is kapot"));
  CHECK_FALSE(sms["headers"]["idempotency-key"].get<std::string>().empty());

  // Email: JSON mail-send with a bearer key, text and HTML.
  CHECK(mail["headers"]["authorization"] == "Bearer SG.fixture-mail-key");
  const auto body = nlohmann::json::parse(mail["body"].get<std::string>());
  CHECK(body["personalizations"][0]["to"][0]["email"] == "sanne2@example.com");
  CHECK(body["from"]["email"] == "hallo@bakkerijbol.example");
  CHECK(body["from"]["name"] == "Bakkerij Bol");
  CHECK_FALSE(body["subject"].get<std::string>().empty());
  REQUIRE(body["content"].size() == 2);
  CHECK(body["content"][1]["type"] == "text/html");
  CHECK(mail["headers"]["idempotency-key"] != sms["headers"]["idempotency-key"]);

  // Delivered is contact history, and stays delivered: nothing is sent twice.
  CHECK(db_count(dir, "contacts") == 2);
  CHECK(daemon.stop() == 0);
  const std::string log = slurp(dir.path() / "log");
  CHECK_THAT(log, !Contains("SG.fixture-mail-key") && !Contains("fixture-sms-token"));
}

TEST_CASE("failed attempts are retried with backoff and Retry-After under one idempotency key, and a 4xx is dead") {
  TempDir dir;
  Provider provider(dir);
  provider.script({{{"status", 503}, {"retry_after", "2"}},
                   {{"drop", true}},
                   {{"status", 500}},
                   {{"delay", 3}},  // beyond the 2s timeout
                   {{"status", 202}}});
  Daemon daemon(write_config(dir, provider), dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", cancellation("1", true));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered"}; }));
  const auto requests = provider.requests();
  REQUIRE(requests.size() == 5);
  for (const auto& r : requests) CHECK(r["headers"]["idempotency-key"] == requests[0]["headers"]["idempotency-key"]);
  CHECK(requests[1]["at"].get<double>() - requests[0]["at"].get<double>() >= 1.9);  // Retry-After: 2
  // Each attempt is recorded. (curl itself sends again at once when a reused
  // connection turns out dead, so the dropped one is not an attempt of its own.)
  const std::string shown = outbox_cli(dir, "show 1");
  CHECK_THAT(shown, Contains("1. ") && Contains("retry  HTTP 503") && Contains("retry  HTTP 500") &&
                        Contains("retry  no answer: Timeout was reached") && Contains("delivered  HTTP 202"));

  // A permanent refusal: the dead letter keeps the provider's answer.
  provider.script({{{"status", 400}, {"body", {{"code", 21211}, {"message", "The 'To' number is not valid"}}}}});
  drop(dir.path() / "spool", "b.jsonl", cancellation("2", true));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered", "dead"}; }));
  CHECK_THAT(outbox_cli(dir, "list --status dead"), Contains("2  dead  attempts 1") && Contains("not valid"));
  CHECK_THAT(outbox_cli(dir, "show 2"), Contains("dead  HTTP 400") && Contains("The 'To' number is not valid"));

  // The operator fixes the cause and sends it again, while the daemon runs.
  CHECK_THAT(outbox_cli(dir, "retry 2"), Contains("outbox entry 2 will be sent again now"));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered", "delivered"}; }));
  CHECK_THAT(outbox_cli(dir, "show 2"), Contains("retried  an operator, by tactd outbox"));
  int status = 0;
  CHECK_THAT(outbox_cli(dir, "retry 2", &status), Contains("is delivered; only pending or dead"));
  CHECK(status == 1);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("after max_attempts a notification goes to the dead letter instead of being retried for ever") {
  TempDir dir;
  Provider provider(dir);
  provider.script({{{"status", 502}}, {{"status", 502}}, {{"status", 502}}});
  Daemon daemon(write_config(dir, provider, "max_attempts = 3"), dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", cancellation("1", true));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"dead"}; }));
  CHECK(provider.requests().size() == 3);
  CHECK_THAT(outbox_cli(dir, "show 1"), Contains("gave up after 3 attempts"));
  CHECK(daemon.stop() == 0);
}

TEST_CASE("a channel's rate limit spaces its requests") {
  TempDir dir;
  Provider provider(dir);
  Daemon daemon(write_config(dir, provider, "rate = 2\nburst = 1"), dir.path() / "log", kSecrets);
  std::string lines;
  for (int i = 1; i <= 5; ++i) lines += cancellation(std::to_string(i), true);
  drop(dir.path() / "spool", "a.jsonl", lines);
  REQUIRE(eventually([&] { return provider.requests().size() == 5; }));
  const auto requests = provider.requests();
  for (size_t i = 1; i < requests.size(); ++i)
    CHECK(requests[i]["at"].get<double>() - requests[i - 1]["at"].get<double>() >= 0.4);
  CHECK(requests.back()["at"].get<double>() - requests.front()["at"].get<double>() >= 1.9);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("the idempotency key survives a restart between attempts") {
  TempDir dir;
  Provider provider(dir);
  provider.script({{{"status", 429}, {"retry_after", "3600"}}});
  const auto config = write_config(dir, provider);
  {
    Daemon daemon(config, dir.path() / "log", kSecrets);
    drop(dir.path() / "spool", "a.jsonl", cancellation("1", true));
    REQUIRE(eventually([&] { return provider.requests().size() == 1; }));
    REQUIRE(eventually([&] { return outbox_cli(dir, "list").find("attempts 1") != std::string::npos; }));
    CHECK(daemon.stop() == 0);
  }
  CHECK_THAT(outbox_cli(dir, "list --status pending"), Contains("429"));
  CHECK_THAT(outbox_cli(dir, "retry 1"), Contains("will be sent again now"));
  Daemon daemon(config, dir.path() / "log", kSecrets);
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered"}; }));
  const auto requests = provider.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1]["headers"]["idempotency-key"] == requests[0]["headers"]["idempotency-key"]);
  CHECK(daemon.stop() == 0);
}

namespace {

// The SMTP server; `tls` is starttls or implicit, and it accepts mail from
// user "shop" with password "fixture-smtp-password".
class MailServer : public ScriptedServer {
 public:
  MailServer(const TempDir& dir, const std::string& tls)
      : ScriptedServer(
            dir, "mail",
            {"/usr/bin/python3",  // Debian's, which has python3-aiosmtpd
             tactd::test::support_script("smtp_server.py"), "--tls", tls, "--login", "shop:fixture-smtp-password"}),
        url_((tls == "implicit" ? "smtps://127.0.0.1:" : "smtp://127.0.0.1:") + port()) {}
  const std::string& url() const { return url_; }
  std::filesystem::path ca_file() const { return folder_ / "cert.pem"; }
  // What it received, each message parsed.
  std::vector<nlohmann::json> messages() const { return records("messages.jsonl"); }

 private:
  std::string url_;
};

const tactd::test::Environment kSmtpSecret = {{"SMTP_PASSWORD", "fixture-smtp-password"}};

// Email over SMTP to `mail`, with its certificate and login.
std::filesystem::path write_config(const TempDir& dir, const MailServer& mail) {
  return write_config(dir, "[[channel]]\nchannel = \"email\"\nprovider = \"smtp\"\nurl = \"" + mail.url() +
                               "\"\nca_file = \"" + mail.ca_file().string() +
                               "\"\nfrom = \"Bakkerij Bol <hallo@bakkerijbol.example>\"\nusername = \"shop\"\n"
                               "secret_env = \"SMTP_PASSWORD\"\nbackoff = \"1s\"\ntimeout = \"5s\"\n");
}

// A customer (name and email as given, JSON-escaped) whose first order is delivered.
std::string first_order(const std::string& n, const std::string& name, const std::string& email) {
  return R"({"type":"customer","id":"c-)" + n + R"(","observed_at":"2026-11-20T09:00:00Z","fields":{"name":")" + name +
         R"(","email":")" + email + R"(","locale":"nl"}}
{"type":"order","id":"B-)" +
         n + R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-)" + n +
         R"(","status":"shipped","total":18.5,"currency":"EUR"}}
{"type":"order","id":"B-)" +
         n + R"(","observed_at":"2026-11-21T10:00:00Z","fields":{"customer":"c-)" + n +
         R"(","status":"delivered","total":18.5,"currency":"EUR"}}
)";
}

}  // namespace

TEST_CASE("email goes over SMTP with STARTTLS and AUTH as a MIME message with text and HTML parts") {
  TempDir dir;
  MailServer mail(dir, "starttls");
  Daemon daemon(write_config(dir, mail), dir.path() / "log", kSmtpSecret);
  drop(dir.path() / "spool", "a.jsonl", first_order("1", "Zoë de Vries", "zoe@example.nl"));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered"}; }));
  const auto messages = mail.messages();
  REQUIRE(messages.size() == 1);
  const auto& m = messages[0];
  INFO(m.dump(2));
  CHECK(m["tls"] == true);
  CHECK(m["login"] == "shop");
  CHECK(m["mail_from"] == "hallo@bakkerijbol.example");
  CHECK(m["rcpt_tos"] == nlohmann::json::array({"zoe@example.nl"}));
  CHECK(m["defects"].empty());
  CHECK(m["headers"]["from"] == "Bakkerij Bol <hallo@bakkerijbol.example>");
  CHECK(m["headers"]["to"] == "zoe@example.nl");
  CHECK(m["headers"]["subject"] == "Dank je wel voor je eerste bestelling, Zoë");  // decoded from UTF-8 words
  CHECK(m["headers"]["mime-version"] == "1.0");
  CHECK_FALSE(m["headers"]["date"].get<std::string>().empty());
  const std::string id = m["headers"]["message-id"];
  CHECK(id.size() == std::string("<").size() + 32 + std::string("@bakkerijbol.example>").size());
  CHECK_THAT(id, Catch::EndsWith("@bakkerijbol.example>"));
  CHECK(m["type"] == "multipart/alternative");
  REQUIRE(m["parts"].size() == 2);
  CHECK(m["parts"][0]["type"] == "text/plain");
  CHECK(m["parts"][0]["charset"] == "utf-8");
  CHECK_THAT(m["parts"][0]["content"].get<std::string>(), Contains("Beste Zoë,") && Contains("bestelling B-1"));
  CHECK(m["parts"][1]["type"] == "text/html");
  CHECK_THAT(m["parts"][1]["content"].get<std::string>(), Contains("<p>Beste Zoë,</p>"));
  CHECK(db_count(dir, "contacts") == 1);
  CHECK(daemon.stop() == 0);
  CHECK_THAT(slurp(dir.path() / "log"), !Contains("fixture-smtp-password"));
}

TEST_CASE("customer data cannot add a mail header or a recipient") {
  TempDir dir;
  MailServer mail(dir, "starttls");
  Daemon daemon(write_config(dir, mail), dir.path() / "log", kSmtpSecret);
  drop(dir.path() / "spool", "a.jsonl",
       first_order("1", R"(Eve\r\nBcc: eve@evil.example\r\n\r\n<b>hi</b> & bye)", "ada@example.com") +
           first_order("2", "Ben", R"(ben@example.com\r\nBcc: eve@evil.example)"));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered", "dead"}; }));
  const auto messages = mail.messages();
  REQUIRE(messages.size() == 1);
  const auto& m = messages[0];
  INFO(m.dump(2));
  CHECK(m["rcpt_tos"] == nlohmann::json::array({"ada@example.com"}));
  CHECK(m["defects"].empty());
  for (const auto& name : m["header_names"]) CHECK(name != "Bcc");
  CHECK_THAT(m["parts"][1]["content"].get<std::string>(), !Contains("<b>hi</b>"));
  // The second address is not an address: the dead letter says so, nothing was sent.
  CHECK_THAT(outbox_cli(dir, "show 2"), Contains("is not an email address"));
  CHECK(daemon.stop() == 0);
}

TEST_CASE("over implicit TLS a 4xx is retried with the same Message-ID and a 5xx is the dead letter") {
  TempDir dir;
  MailServer mail(dir, "implicit");
  mail.script({{{"code", 451}, {"text", "4.3.0 try again later"}}});
  Daemon daemon(write_config(dir, mail), dir.path() / "log", kSmtpSecret);
  drop(dir.path() / "spool", "a.jsonl", cancellation("1", false));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered"}; }));
  auto messages = mail.messages();
  REQUIRE(messages.size() == 2);
  CHECK(messages[0]["code"] == 451);
  CHECK(messages[1]["code"] == 250);
  CHECK(messages[1]["tls"] == true);
  CHECK(messages[0]["headers"]["message-id"] == messages[1]["headers"]["message-id"]);
  CHECK_THAT(outbox_cli(dir, "show 1"), Contains("retry  SMTP 451") && Contains("delivered  SMTP 250"));

  mail.script({{{"code", 550}, {"text", "5.1.1 no such user"}}});
  drop(dir.path() / "spool", "b.jsonl", cancellation("2", false));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered", "dead"}; }));
  CHECK_THAT(outbox_cli(dir, "show 2"), Contains("dead  SMTP 550") && Contains("no such user"));
  CHECK(daemon.stop() == 0);
}

namespace {

// A subscription whose price rises without a reason, and a cancelled order
// of customer c-<n>, who has neither an email address nor a phone number.
std::string operators_findings(const std::string& n) {
  return R"({"type":"customer","id":"c-)" + n +
         R"(","observed_at":"2026-11-20T09:00:00Z","fields":{"name":"Anna","email":"anna@example.nl"}}
{"type":"subscription","id":"SUB-)" +
         n + R"(","observed_at":"2026-11-20T09:01:00Z","fields":{"customer":"c-)" + n +
         R"(","plan":"yoga","price":12.5}}
{"type":"subscription","id":"SUB-)" +
         n + R"(","observed_at":"2026-11-21T09:00:00Z","fields":{"next_price":22,"price_effective":"2099-01-01"}}
{"type":"customer","id":"c-)" +
         n + R"(x","observed_at":"2026-11-20T09:00:00Z","fields":{"name":"Nobody"}}
{"type":"order","id":"B-)" +
         n + R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-)" + n + R"(x","status":"placed"}}
{"type":"order","id":"B-)" +
         n + R"(","observed_at":"2026-11-20T10:05:00Z","fields":{"customer":"c-)" + n + R"(x","status":"cancelled"}}
)";
}

}  // namespace

TEST_CASE("the real daemon posts one operators' digest to a chat webhook, and the last one when it stops") {
  TempDir dir;
  Provider chat(dir);
  const tactd::test::Environment secret = {{"OPS_HOOK_KEY", "fixture-hook-key"}};
  // The unreachable customer is waited for one second, then given up.
  Daemon daemon(write_config(dir,
                             "[policy]\nwait_for_links = \"1s\"\n"
                             "[operators]\ndigest = \"3s\"\nwebhook = \"" +
                                 chat.base() + "/hooks/ops\"\nsecret_env = \"OPS_HOOK_KEY\"\n"),
                dir.path() / "log", secret);
  drop(dir.path() / "spool", "a.jsonl", operators_findings("1"));
  REQUIRE(eventually([&] { return chat.requests().size() == 1; }));
  const auto first = chat.requests()[0];
  CHECK(first["path"] == "/hooks/ops");
  CHECK(first["headers"]["content-type"] == "application/json");
  CHECK_THAT(first["headers"]["x-tactd-signature"].get<std::string>(), Catch::StartsWith("sha256="));
  const auto body = nlohmann::json::parse(first["body"].get<std::string>());
  REQUIRE(body.is_object());
  REQUIRE(body.size() == 1);
  const std::string text = body["text"];
  INFO(text);
  CHECK_THAT(text, Contains("tactd: 2 findings need a person"));
  CHECK_THAT(text, Contains("missing_field (1)") &&
                       Contains("- subscription/SUB-1: rule 'price-change': subscription/SUB-1 has no price_reason"));
  CHECK_THAT(text, Contains("gave_up_waiting (1)") && Contains("- order/B-1: rule 'order-cancelled' waited since ") &&
                       Contains("for customer/c-1x (no channel can reach customer 'c-1x' for rule 'order-cancelled'"));
  // Nothing more was found: no second digest.
  std::this_thread::sleep_for(std::chrono::seconds{3});
  CHECK(chat.requests().size() == 1);

  // A finding still waiting when tactd stops goes out before it exits.
  drop(dir.path() / "spool", "b.jsonl", operators_findings("2"));
  REQUIRE(eventually([&] {
    const std::string log = slurp(dir.path() / "log");
    return log.find("reason=gave_up_waiting detail=\"order/B-2") != std::string::npos;
  }));
  CHECK(daemon.stop() == 0);
  const auto requests = chat.requests();
  REQUIRE(requests.size() == 2);
  CHECK_THAT(nlohmann::json::parse(requests[1]["body"].get<std::string>())["text"].get<std::string>(),
             Contains("subscription/SUB-2 has no price_reason") && Contains("order/B-2"));
  const std::string log = slurp(dir.path() / "log");
  CHECK_THAT(log, Contains("operators: digest sent findings=2 to=webhook"));
  CHECK_THAT(log, !Contains("fixture-hook-key") && !Contains("/hooks/ops"));
}

TEST_CASE("a dead letter reaches operators in a digest email sent over the email channel") {
  TempDir dir;
  Provider provider(dir);
  provider.script({{{"status", 400}, {"body", {{"message", "the address is blocked"}}}}});
  Daemon daemon(
      write_config(dir, "[[channel]]\nchannel = \"email\"\nprovider = \"sendgrid\"\nurl = \"" + provider.base() +
                            "/v3/mail/send\"\nfrom = \"Bakkerij Bol <hallo@bakkerijbol.example>\"\n"
                            "secret_env = \"MAIL_KEY\"\n"
                            "[operators]\ndigest = \"1s\"\nemail = \"ops@bakkerijbol.example\"\n"),
      dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", cancellation("1", false));  // no phone: by email
  REQUIRE(eventually([&] { return provider.requests().size() == 2; }));
  CHECK(statuses(dir) == std::vector<std::string>{"dead"});
  const auto mail = nlohmann::json::parse(provider.requests()[1]["body"].get<std::string>());
  INFO(mail.dump(2));
  CHECK(mail["personalizations"][0]["to"][0]["email"] == "ops@bakkerijbol.example");
  CHECK(mail["from"]["email"] == "hallo@bakkerijbol.example");
  CHECK(mail["subject"] == "tactd: 1 finding needs a person (1 dead_letter)");
  CHECK_THAT(mail["content"][0]["value"].get<std::string>(),
             Contains("dead_letter (1): the provider refused the message, or its retries ran out; given up\n"
                      "- order/B-1: rule 'order-cancelled': outbox entry 1 to customer c-1 by email is dead: HTTP "
                      "400: {\"message\": \"the address is blocked\"}. See tactd outbox show 1"));
  CHECK(daemon.stop() == 0);
}

TEST_CASE("an outbox row that cannot be read is set aside with its reason, and delivery and tactd outbox go on") {
  TempDir dir;
  Provider provider(dir);
  {
    Daemon daemon(write_config(dir, ""), dir.path() / "log", kSecrets);  // no channel: it stays pending
    drop(dir.path() / "spool", "a.jsonl", cancellation("1", true));
    REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"pending"}; }));
    CHECK(daemon.stop() == 0);
  }
  SQLite::Database((dir.path() / "state.db").string(), SQLite::OPEN_READWRITE)
      .exec("UPDATE outbox SET kind = 'pep_talk'");
  Daemon daemon(write_config(dir, provider), dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "b.jsonl", cancellation("2", true));  // same channel, after the broken row
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"dead", "delivered"}; }));
  CHECK(provider.requests().size() == 1);
  int status = 0;
  const std::string listed = outbox_cli(dir, "list", &status);
  CHECK(status == 0);
  CHECK_THAT(listed, Contains("1  dead  unreadable, set aside: unknown message kind 'pep_talk' in the database"));
  CHECK_THAT(listed, Contains("2  delivered"));
  CHECK_THAT(outbox_cli(dir, "show 1", &status), Contains("unreadable:      unknown message kind 'pep_talk'"));
  CHECK(status == 0);
  CHECK(daemon.stop() == 0);
}

namespace {

// Email by webhook (deduplicates on the key: on_unknown defaults to retry),
// SMS by twilio (does not: hold), both to `provider`; `tactd` is added to [tactd].
std::filesystem::path write_cut_off_config(const TempDir& dir, const Provider& provider,
                                           const std::string& tactd = "") {
  std::filesystem::create_directories(dir.path() / "spool");
  return dir.write("tactd.toml",
                   "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                       "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                       "\"\nstate = \"state.db\"\nmerchant = \"Bakkerij Bol\"\n" + tactd +
                       "[locale]\ntime_zone = \"Europe/Amsterdam\"\n" +
                       "[[source]]\nname = \"drops\"\ntype = \"spool\"\npath = \"spool\"\ninterval = \"1s\"\n"
                       "[[channel]]\nchannel = \"email\"\nprovider = \"webhook\"\nurl = \"" +
                       provider.base() +
                       "/hook\"\ntimeout = \"30s\"\n[[channel]]\nchannel = \"sms\"\nprovider = \"twilio\"\nurl = \"" +
                       provider.base() +
                       "/2010-04-01/Accounts/AC0001/Messages.json\"\naccount = \"AC0001\"\n"
                       "from = \"+3197010000001\"\nsecret_env = \"SMS_TOKEN\"\ntimeout = \"30s\"\n");
}

// "<channel> <status>" of each outbox row, in id order.
std::vector<std::string> channel_statuses(const TempDir& dir) {
  return tactd::test::column(dir.path() / "state.db", "SELECT channel || ' ' || status FROM outbox ORDER BY id");
}

}  // namespace

TEST_CASE("a send cut off by a crash: the webhook is sent again with its key, the SMS waits for an operator") {
  TempDir dir;
  Provider provider(dir);
  provider.script(nlohmann::json::array({{{"delay", 60}}, {{"delay", 60}}}));  // both hang until the crash
  const auto config = write_cut_off_config(dir, provider);
  {
    Daemon daemon(config, dir.path() / "log", kSecrets);
    drop(dir.path() / "spool", "a.jsonl", cancellation("1", true) + cancellation("2", false));
    REQUIRE(eventually([&] { return provider.requests().size() == 2; }));
    // Each attempt was claimed before its request left.
    CHECK(tactd::test::column(dir.path() / "state.db", "SELECT COUNT(*) FROM outbox WHERE sending_since IS NOT NULL")
              .at(0) == "2");
    daemon.signal(SIGKILL);
    daemon.wait();
  }
  CHECK_THAT(outbox_cli(dir, "list"), Contains("sending since"));
  Daemon daemon(config, dir.path() / "log.restart", kSecrets);
  REQUIRE(eventually([&] {
    return channel_statuses(dir) == std::vector<std::string>{"sms unknown", "email delivered"};
  }));
  const auto requests = provider.requests();
  REQUIRE(requests.size() == 3);  // the webhook again, the SMS not
  CHECK(requests[2]["path"] == "/hook");
  const auto& first_hook = requests[0]["path"] == "/hook" ? requests[0] : requests[1];
  CHECK(requests[2]["headers"]["idempotency-key"] == first_hook["headers"]["idempotency-key"]);

  int status = 0;
  CHECK_THAT(outbox_cli(dir, "list --status unknown", &status),
             Contains("1  unknown") && Contains("outcome unknown: tactd outbox resolve 1 delivered|retry|drop"));
  CHECK(status == 0);
  const std::string shown = outbox_cli(dir, "show 1");
  CHECK_THAT(shown, Contains("outcome:         unknown") && Contains("interrupted") &&
                        Contains("provider twilio answered; whether it reached the customer is unknown"));
  CHECK_THAT(outbox_cli(dir, "resolve 2 delivered", &status), Contains("is delivered; only entries whose outcome"));
  CHECK(status != 0);
  CHECK_THAT(outbox_cli(dir, "resolve 1 maybe", &status), Contains("delivered (the provider's log"));
  CHECK(status != 0);
  CHECK_THAT(outbox_cli(dir, "resolve 1 delivered", &status), Contains("resolved: delivered"));
  CHECK(status == 0);
  CHECK(channel_statuses(dir) == std::vector<std::string>{"sms delivered", "email delivered"});
  CHECK(db_count(dir, "contacts") == 2);
  CHECK_THAT(slurp(dir.path() / "log.restart"),
             Contains("delivery: send cut off outbox=1") && Contains("outcome=unknown") && Contains("outcome=retry"));
  CHECK(provider.requests().size() == 3);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("a stop whose grace ends during a send leaves an SMS as an unknown outcome, not pending") {
  TempDir dir;
  Provider provider(dir);
  provider.script(nlohmann::json::array({{{"delay", 60}}}));
  const auto config = write_cut_off_config(dir, provider, "stop_grace = \"1s\"\n");
  {
    Daemon daemon(config, dir.path() / "log", kSecrets);
    drop(dir.path() / "spool", "a.jsonl", cancellation("1", true));
    REQUIRE(eventually([&] { return provider.requests().size() == 1; }));
    CHECK(daemon.stop() == 0);
  }
  CHECK(channel_statuses(dir) == std::vector<std::string>{"sms unknown"});
  CHECK_THAT(slurp(dir.path() / "log"), Contains("they are settled as cut off"));
  // A restart sends nothing again; an operator's retry does.
  Daemon daemon(config, dir.path() / "log", kSecrets);
  int status = 0;
  CHECK_THAT(outbox_cli(dir, "resolve 1 retry", &status), Contains("resolved: will be sent again now"));
  CHECK(status == 0);
  REQUIRE(eventually([&] { return channel_statuses(dir) == std::vector<std::string>{"sms delivered"}; }));
  CHECK(provider.requests().size() == 2);
  CHECK(daemon.stop() == 0);
}
