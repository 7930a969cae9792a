// The real tactd binary, run as operators run it.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/daemon.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::CliResult;
using tactd::test::run_tactd;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

std::string shipped(const char* relative) { return "'" + (tactd::test::source_dir() / relative).string() + "'"; }

// A copy of the shipped configuration in `dir`, so that a test can break it.
std::filesystem::path copy_config(const TempDir& dir) {
  namespace fs = std::filesystem;
  fs::copy(tactd::test::source_dir() / "config", dir.path() / "config", fs::copy_options::recursive);
  fs::copy(tactd::test::source_dir() / "templates", dir.path() / "templates", fs::copy_options::recursive);
  return dir.path() / "config/tactd.toml";
}

}  // namespace

TEST_CASE("tactd check accepts the shipped configuration") {
  TempDir dir;
  const CliResult r = run_tactd(dir.path(), "check --config " + shipped("config/tactd.toml"));
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("OK"));
}

TEST_CASE("tactd check says what each rule's message cannot go without, and where that came from") {
  TempDir dir;
  const CliResult r = run_tactd(dir.path(), "check --config " + shipped("config/tactd.toml"));
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("\nrule 'price-change' requires subscription.price, subscription.next_price, "
                             "subscription.price_effective, subscription.price_reason\n"));
  CHECK_THAT(r.out, Contains("\nrule 'delivery-promise-broken' requires order.promised_by (from its templates)\n"));
  CHECK_THAT(r.out, Contains("\nrule 'order-cancelled' requires nothing (its templates guard every field)\n"));
  CHECK_THAT(r.out, Contains("\noperators: no [operators] table; what needs a person is only in the journal\n"));
}

TEST_CASE("tactd simulate prints one JSON line per notification of the demo") {
  TempDir dir;
  const CliResult r =
      run_tactd(dir.path(), "simulate --config " + shipped("config/tactd.toml") + " --observations " +
                                shipped("config/demo/observations.jsonl") + " --until 2026-12-31T00:00:00Z");
  CHECK(r.status == 0);
  std::istringstream lines(r.out);
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    const auto n = nlohmann::json::parse(line);
    for (const char* key : {"at", "rule", "kind", "customer", "entity", "channel", "to", "subject", "body"})
      CHECK(n.contains(key));
  }
  CHECK(count >= 3);
}

TEST_CASE("tactd simulate --format text is for people") {
  TempDir dir;
  const CliResult r = run_tactd(dir.path(), "simulate --config " + shipped("config/tactd.toml") + " --observations " +
                                                shipped("config/demo/observations.jsonl") + " --format text");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("apology (order-cancelled) to c-anna by sms +31612345678 [nl]"));
  CHECK_THAT(r.out, Contains("held back (order-cancelled): the customer opted out"));
  CHECK_THAT(r.out, Contains("    | "));
}

TEST_CASE("a malformed observation makes simulate exit 1 after running the rest") {
  TempDir dir;
  const auto input = dir.write("in.jsonl", "{\"type\":\"order\"}\n");
  const CliResult r = run_tactd(
      dir.path(), "simulate --config " + shipped("config/tactd.toml") + " --observations '" + input.string() + "'");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("in.jsonl:1: rejected: field 'id' is missing or not a string"));
}

TEST_CASE("a malformed rule file makes check exit 1 with file, line and column") {
  TempDir dir;
  const auto config = copy_config(dir);
  const auto rule = dir.write("config/rules/broken.toml", R"([[rule]]
id = "broken"
kind = "apology"
on = "order.status -> cancelled"
when = "order.total > "
template = "order_cancelled"
channels = ["sms"]
)");
  const CliResult r = run_tactd(dir.path(), "check --config '" + config.string() + "'");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains(rule.string() + ":5:"));
  CHECK_THAT(r.err, Contains("1 problem"));
}

TEST_CASE("check fails when a rule's template is missing for a locale or channel") {
  TempDir dir;
  const auto config = copy_config(dir);
  std::filesystem::remove(dir.path() / "templates/nl/order_cancelled.sms.mustache");
  const CliResult r = run_tactd(dir.path(), "check --config '" + config.string() + "'");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("rule 'order-cancelled' needs the template"));
  CHECK_THAT(r.err, Contains("nl/order_cancelled.sms.mustache (locale nl, channel sms), which is missing"));
}

TEST_CASE("bad command lines are refused with usage") {
  TempDir dir;
  CHECK(run_tactd(dir.path(), "").status == 2);
  CHECK(run_tactd(dir.path(), "frobnicate").status == 2);
  const CliResult r = run_tactd(dir.path(), "simulate --config x");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("missing --observations"));
  CHECK(run_tactd(dir.path(), "simulate --config " + shipped("config/tactd.toml") + " --observations - --until soon")
            .status == 2);
  CHECK(run_tactd(dir.path(), "help").status == 0);
}

TEST_CASE("check reports a template that breaks the tone rules, with file, line and the rule") {
  TempDir dir;
  const auto config = copy_config(dir);
  const auto sms = dir.write("templates/en/first_order_thanks.sms.mustache",
                             "Dear customer, thanks for order {{order.id}}! Use code THANKS for a 10% discount.");
  const CliResult r = run_tactd(dir.path(), "check --config '" + config.string() + "'");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains(sms.string() + ":1:"));
  CHECK_THAT(r.err, Contains("rule 'first-order-thanks'"));
  CHECK_THAT(r.err, Contains("discount"));
  CHECK_THAT(r.err, Contains("dear customer"));
}

TEST_CASE("preview shows a rule's message in every locale and channel from example data") {
  TempDir dir;
  const CliResult r =
      run_tactd(dir.path(), "preview --config " + shipped("config/tactd.toml") + " --rule order-cancelled");
  INFO(r.err);
  CHECK(r.status == 0);
  for (const char* header : {"== order-cancelled: en, sms", "== order-cancelled: en, email",
                             "== order-cancelled: nl, sms", "== order-cancelled: nl, email"})
    CHECK_THAT(r.out, Contains(header));
  CHECK_THAT(r.out, Contains("Subject: "));
  CHECK_THAT(r.out, Contains("segments, GSM-7)"));
}

TEST_CASE("preview renders for the last matching entity of given observations") {
  TempDir dir;
  const auto input = dir.write(
      "in.jsonl",
      R"({"type":"customer","id":"c-1","observed_at":"2026-11-20T09:00:00Z","fields":{"name":"Mia Jansen","email":"m@example.nl"}}
{"type":"order","id":"A-1","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-1","status":"cancelled","total":12.5,"merchant":"Bakkerij Bol","cancel_reason":"de oven is kapot"}}
{"type":"order","id":"A-2","observed_at":"2026-11-20T11:00:00Z","fields":{"customer":"c-1","status":"placed"}}
)");
  const CliResult r = run_tactd(dir.path(), "preview --config " + shipped("config/tactd.toml") +
                                                " --rule order-cancelled --observations '" + input.string() + "'");
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("order/A-1 from"));
  CHECK_THAT(r.out, Contains("Mia") && Contains("de oven is kapot") && Contains("€ 12,50") && Contains("€12.50") &&
                        Contains("Bakkerij Bol"));
}

TEST_CASE("preview of an unknown rule, or of observations where the rule never applies, says so") {
  TempDir dir;
  CHECK(run_tactd(dir.path(), "preview --config " + shipped("config/tactd.toml") + " --rule nope").status == 2);
  const auto input = dir.write(
      "in.jsonl", R"({"type":"order","id":"A-2","observed_at":"2026-11-20T11:00:00Z","fields":{"status":"placed"}})");
  const CliResult r = run_tactd(dir.path(), "preview --config " + shipped("config/tactd.toml") +
                                                " --rule order-cancelled --observations '" + input.string() + "'");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("no order for which rule 'order-cancelled' would fire"));
}

TEST_CASE("preview --request shows each channel's exact provider request with its secrets masked") {
  TempDir dir;
  const auto config = copy_config(dir);
  dir.write("config/mail.key", "mail-s3cret\n");
  dir.write("config/sms.key", "sms-s3cret\n");
  const std::string channels = R"toml(
[[channel]]
channel = "email"
provider = "mailgun"
url = "https://api.mailgun.net/v3/mg.bakkerij.example/messages"
from = "Bakkerij Bol <hallo@bakkerij.example>"
secret_file = "mail.key"
[[channel]]
channel = "sms"
provider = "messagebird"
from = "BakkerijBol"
secret_file = "sms.key"
)toml";
  std::ofstream(config, std::ios::app) << channels;
  CliResult r = run_tactd(dir.path(), "preview --config '" + config.string() + "' --rule order-cancelled --request");
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("-- request (mailgun)\nPOST https://api.mailgun.net/v3/mg.bakkerij.example/messages\n"));
  CHECK_THAT(r.out, Contains("Authorization: Basic base64(api:***)") && Contains("&v%3Aidempotency_key="));
  CHECK_THAT(r.out, Contains("-- request (messagebird)\nPOST https://rest.messagebird.com/messages\n"));
  CHECK_THAT(r.out, Contains("Authorization: AccessKey ***") && Contains("\"originator\":\"BakkerijBol\""));
  CHECK_THAT(r.out, !Contains("s3cret"));

  // SMTP: the envelope and the MIME message.
  std::string text = slurp(config);
  text.replace(text.find("provider = \"mailgun\""), std::string("provider = \"mailgun\"").size(),
               "provider = \"smtp\"\nusername = \"shop\"");
  text.replace(text.find("https://api.mailgun.net/v3/mg.bakkerij.example/messages"),
               std::string("https://api.mailgun.net/v3/mg.bakkerij.example/messages").size(),
               "smtp://mail.bakkerij.example:587");
  std::ofstream(config) << text;
  r = run_tactd(dir.path(), "preview --config '" + config.string() + "' --rule order-cancelled --request");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("-- request (smtp)\nSMTP smtp://mail.bakkerij.example:587 (STARTTLS required)\n"
                             "AUTH shop ***\nMAIL FROM:<hallo@bakkerij.example>\n"));
  CHECK_THAT(r.out, Contains("MIME-Version: 1.0") && Contains("Content-Transfer-Encoding: quoted-printable"));
  CHECK_THAT(r.out, !Contains("s3cret"));
}
