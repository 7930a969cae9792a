// The real `tactd run` taking the shipped broken-promise apology's voucher
// action against a loopback shop API (tests/support/recording_server.py,
// scripted answers) before the apology goes to a loopback SMS provider: the
// voucher's code in the message sent; a refusal and a timeout that send it
// without, with operators told; the signature and the Idempotency-Key as the
// endpoint sees them; and a crash after the voucher was made, whose restart
// reuses the stored answer instead of asking again.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <sstream>
#include <string>

#include "model/time.h"
#include "signing/signing.h"
#include "support/daemon.h"
#include "support/http.h"
#include "support/scripted_server.h"
#include "support/state_db.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::Daemon;
using tactd::test::drop;
using tactd::test::eventually;
using tactd::test::Provider;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

constexpr const char* kShopSecret = "shop-voucher-key";
const tactd::test::Environment kSecrets = {{"SMS_TOKEN", "fixture-sms-token"}, {"SHOP_SECRET", kShopSecret}};

// Shipped rules and templates; SMS through the `sms` recording server; an
// [[action]] "voucher" at `shop` with `action` appended to it (none when
// `shop` is null); metrics on an ephemeral admin port.
std::filesystem::path write_config(const TempDir& dir, const Provider& sms, const Provider* shop,
                                   const std::string& action = "", const std::string& sms_extra = "") {
  std::filesystem::create_directories(dir.path() / "spool");
  std::string actions;
  if (shop)
    actions = "[[action]]\nname = \"voucher\"\nurl = \"" + shop->base() +
              "/api/vouchers\"\nsecret_env = \"SHOP_SECRET\"\nbackoff = \"1s\"\n" + action + "\n";
  return dir.write("tactd.toml",
                   "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                       "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                       "\"\nstate = \"state.db\"\nmerchant = \"Bakkerij Bol\"\n"
                       "[locale]\ntime_zone = \"Europe/Amsterdam\"\n"
                       "[admin]\nlisten = \"127.0.0.1:0\"\n"
                       "[[source]]\nname = \"drops\"\ntype = \"spool\"\npath = \"spool\"\ninterval = \"1s\"\n"
                       "[[channel]]\nchannel = \"sms\"\nprovider = \"twilio\"\nurl = \"" +
                       sms.base() +
                       "/2010-04-01/Accounts/AC0001/Messages.json\"\naccount = \"AC0001\"\n"
                       "from = \"+3197010000001\"\nsecret_env = \"SMS_TOKEN\"\nbackoff = \"1s\"\ntimeout = \"2s\"\n" +
                       sms_extra + "\n" + actions);
}

// Customer c-7 (English, a mobile number) and order A-7, shipped and
// promised a minute ago: the shipped rule delivery-promise-broken fires at
// once and apologises by SMS.
std::string broken_promise() {
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  const std::string promised = tactd::format_rfc3339(now - std::chrono::minutes{1});
  const std::string seen = tactd::format_rfc3339(now - std::chrono::minutes{10});
  return R"({"type":"customer","id":"c-7","observed_at":")" + seen +
         R"(","fields":{"name":"Sam Jones","phone":"+31612345677","locale":"en"}}
{"type":"order","id":"A-7","observed_at":")" +
         seen + R"(","fields":{"customer":"c-7","status":"shipped","total":42.0,"currency":"EUR","promised_by":")" +
         promised + R"("}}
)";
}

// The decoded form of the last request of the apology's SMS, or "" before
// it was sent.
std::string apology_sms(const Provider& sms) {
  std::string last;
  for (const auto& request : sms.requests()) {
    const std::string body = request["body"];
    std::string decoded;
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '+')
        decoded += ' ';
      else if (body[i] == '%' && i + 2 < body.size()) {
        decoded += static_cast<char>(std::stoi(body.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        decoded += body[i];
      }
    }
    if (decoded.find("promised order A-7") != std::string::npos) last = decoded;
  }
  return last;
}

std::string apology_status(const TempDir& dir, const std::string& column = "status") {
  const auto rows = tactd::test::column(dir.path() / "state.db", "SELECT COALESCE(" + column +
                                                                     ", '') FROM outbox WHERE rule = "
                                                                     "'delivery-promise-broken'");
  return rows.empty() ? "" : rows.front();
}

// The value of one series on the daemon's /metrics; -1 when absent.
double metric(const std::filesystem::path& log, const std::string& series) {
  const int port = tactd::test::logged_port(log, "/metrics on 127.0.0.1:");
  std::istringstream lines(tactd::test::http("GET", "http://127.0.0.1:" + std::to_string(port) + "/metrics").body);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

}  // namespace

TEST_CASE("a broken promise's apology carries the voucher the shop's API made for it, asked for once and signed") {
  TempDir dir;
  Provider sms(dir, "sms");
  Provider shop(dir, "shop");
  shop.script(nlohmann::json::array(
      {{{"status", 201}, {"body", {{"code", "SORRY-A7"}, {"amount", "EUR 5.00"}, {"expires", "31 Dec"}}}}}));
  Daemon daemon(write_config(dir, sms, &shop), dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", broken_promise());
  REQUIRE(eventually([&] { return apology_status(dir) == "delivered"; }));

  const std::string text = apology_sms(sms);
  CHECK_THAT(text, Contains("voucher SORRY-A7 (EUR 5.00)"));
  const auto calls = shop.requests();
  REQUIRE(calls.size() == 1);
  const auto& call = calls[0];
  CHECK(call["method"] == "POST");
  CHECK(call["path"] == "/api/vouchers");
  // The endpoint can check who asked, and that nothing changed on the way.
  const std::string body = call["body"];
  const std::string timestamp = call["headers"]["x-tactd-timestamp"];
  CHECK(call["headers"]["x-tactd-signature"] ==
        "sha256=" + tactd::hmac_sha256_hex(kShopSecret, timestamp + "." + body));
  CHECK(call["headers"]["x-tactd-signature"] == tactd::webhook_signature(kShopSecret, timestamp, body));
  // One voucher per notification: the key is the notification's, hashed.
  const std::string key = tactd::test::column(dir.path() / "state.db",
                                              "SELECT idempotency_key FROM outbox WHERE rule = "
                                              "'delivery-promise-broken'")
                              .at(0);
  CHECK(call["headers"]["idempotency-key"] == "tactd-action-" + tactd::sha256_hex("action/" + key).substr(0, 32));
  const auto request = nlohmann::json::parse(body);
  CHECK(request["action"] == "voucher");
  CHECK(request["rule"] == "delivery-promise-broken");
  CHECK(request["customer"] == "c-7");
  CHECK(request["idempotency_key"] == key);
  CHECK(request["entity"]["type"] == "order");
  CHECK(request["entity"]["id"] == "A-7");
  CHECK(request["entity"]["fields"]["total"] == 42.0);
  CHECK(request["entity"]["fields"]["status"] == "shipped");
  // The answer is stored with the row, and the decision is there to read.
  CHECK(apology_status(dir, "action_state") == "done");
  CHECK_THAT(apology_status(dir, "action_answer"), Contains("SORRY-A7"));
  const auto decisions = tactd::test::column(dir.path() / "state.db",
                                             "SELECT decision || ': ' || reason FROM outbox_decisions WHERE "
                                             "decision = 'action'");
  REQUIRE(decisions.size() == 1);
  CHECK_THAT(decisions[0], Contains("voucher: HTTP 201, answered"));
  CHECK(metric(dir.path() / "log", R"(tactd_actions_total{action="voucher",outcome="ok"})") == 1);
}

TEST_CASE("a refused voucher sends the apology without one, and operators are told who, where and why") {
  TempDir dir;
  Provider sms(dir, "sms");
  Provider shop(dir, "shop");
  shop.script(nlohmann::json::array({{{"status", 422}, {"body", {{"error", "order not eligible"}}}}}));
  // The operators' digest goes to the same recording server, on /ops.
  Daemon daemon(
      write_config(dir, sms, &shop, "", "[operators]\ndigest = \"1s\"\nwebhook = \"" + sms.base() + "/ops\"\n"),
      dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", broken_promise());
  REQUIRE(eventually([&] { return apology_status(dir) == "delivered"; }));

  const std::string text = apology_sms(sms);
  CHECK_THAT(text, Contains("promised order A-7"));
  CHECK_THAT(text, !Contains("voucher"));
  CHECK(shop.requests().size() == 1);  // a refusal is not asked again
  CHECK(apology_status(dir, "action_state") == "failed");
  const std::string log = slurp(dir.path() / "log");
  CHECK_THAT(log, Contains("action: failed, the message goes without it"));
  CHECK_THAT(log, Contains("rule=delivery-promise-broken"));
  CHECK_THAT(log, Contains("customer=c-7"));
  CHECK_THAT(log, Contains("endpoint=" + shop.base() + "/api/vouchers"));
  CHECK_THAT(log, Contains("HTTP 422"));
  CHECK_THAT(apology_status(dir, "action_detail"), Contains("refused: HTTP 422"));
  CHECK(metric(dir.path() / "log", R"(tactd_actions_total{action="voucher",outcome="failed"})") == 1);
  // And the operators' digest carries it.
  const auto digest = [&] {
    std::string texts;
    for (const auto& request : sms.requests())
      if (request["path"] == "/ops") texts += request["body"].get<std::string>();
    return texts;
  };
  REQUIRE(eventually([&] { return digest().find("action 'voucher'") != std::string::npos; }));
  CHECK_THAT(digest(), Contains("order/A-7: rule 'delivery-promise-broken': action 'voucher' for customer c-7") &&
                           Contains("failed") && Contains("HTTP 422"));
}

TEST_CASE("a voucher API that does not answer in time is tried max_attempts times, then the apology goes without") {
  TempDir dir;
  Provider sms(dir, "sms");
  Provider shop(dir, "shop");
  shop.script(nlohmann::json::array({{{"delay", 4}}, {{"delay", 4}}}));
  Daemon daemon(write_config(dir, sms, &shop, "timeout = \"1s\"\nmax_attempts = 2\n"), dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", broken_promise());
  REQUIRE(eventually([&] { return apology_status(dir) == "delivered"; }));

  CHECK_THAT(apology_sms(sms), !Contains("voucher"));
  const auto calls = shop.requests();
  REQUIRE(calls.size() == 2);
  CHECK(calls[0]["headers"]["idempotency-key"] == calls[1]["headers"]["idempotency-key"]);
  CHECK(apology_status(dir, "action_state") == "failed");
  CHECK(apology_status(dir, "action_attempts") == "2");
  CHECK_THAT(apology_status(dir, "action_detail"), Contains("gave up after 2 attempts"));
  CHECK(metric(dir.path() / "log", R"(tactd_actions_total{action="voucher",outcome="retry"})") == 1);
  CHECK(metric(dir.path() / "log", R"(tactd_actions_total{action="voucher",outcome="failed"})") == 1);
}

TEST_CASE("no voucher is asked for again once the order arrived while the first try went unanswered") {
  TempDir dir;
  Provider sms(dir, "sms");
  Provider shop(dir, "shop");
  shop.script(nlohmann::json::array({{{"delay", 4}}}));
  Daemon daemon(write_config(dir, sms, &shop, "timeout = \"3s\"\nmax_attempts = 5\n"), dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", broken_promise());
  REQUIRE(eventually([&] { return shop.requests().size() == 1; }));
  // The retry comes after the 3 s timeout; the order arrives before.
  const std::string now =
      tactd::format_rfc3339(std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
  drop(dir.path() / "spool", "b.jsonl",
       R"({"type":"order","id":"A-7","observed_at":")" + now +
           R"(","fields":{"customer":"c-7","status":"delivered","total":42.0,"currency":"EUR"}})"
           "\n");
  REQUIRE(eventually([&] { return apology_status(dir) == "overtaken"; }));
  CHECK(shop.requests().size() == 1);
  CHECK(apology_sms(sms).empty());
  CHECK_THAT(apology_status(dir, "last_error"), Contains("its condition no longer holds"));
}

TEST_CASE("without an action configured the shipped apology goes out at once, offering no voucher") {
  TempDir dir;
  Provider sms(dir, "sms");
  Daemon daemon(write_config(dir, sms, nullptr), dir.path() / "log", kSecrets);
  drop(dir.path() / "spool", "a.jsonl", broken_promise());
  REQUIRE(eventually([&] { return apology_status(dir) == "delivered"; }));
  CHECK_THAT(apology_sms(sms), Contains("promised order A-7"));
  CHECK_THAT(apology_sms(sms), !Contains("voucher"));
  CHECK(apology_status(dir, "action") == "");
}

TEST_CASE("a crash after the voucher was made and before the apology was sent reuses the stored voucher") {
  TempDir dir;
  Provider sms(dir, "sms");
  Provider shop(dir, "shop");
  shop.script(nlohmann::json::array({{{"status", 200}, {"body", {{"code", "KEEP-1"}}}}}));
  // The SMS provider is down while the voucher is made.
  sms.script(nlohmann::json::array({{{"status", 503}},
                                    {{"status", 503}},
                                    {{"status", 503}},
                                    {{"status", 503}},
                                    {{"status", 503}},
                                    {{"status", 503}},
                                    {{"status", 503}},
                                    {{"status", 503}}}));
  const auto config = write_config(dir, sms, &shop, "", "max_attempts = 20\non_unknown = \"retry\"\n");
  {
    Daemon daemon(config, dir.path() / "log", kSecrets);
    drop(dir.path() / "spool", "a.jsonl", broken_promise());
    REQUIRE(eventually([&] { return apology_status(dir, "action_state") == "done" && !sms.requests().empty(); }));
    daemon.signal(SIGKILL);
    daemon.wait();
  }
  CHECK(apology_status(dir) == "pending");
  sms.script(nlohmann::json::array());  // back up
  Daemon again(config, dir.path() / "log2", kSecrets);
  REQUIRE(eventually([&] { return apology_status(dir) == "delivered"; }));
  CHECK_THAT(apology_sms(sms), Contains("KEEP-1"));
  CHECK(shop.requests().size() == 1);  // asked once, in all
}
