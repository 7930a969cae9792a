// The support desk's view (issue 14): the real `tactd run` with an admin
// token answers GET /v1/customers/{id}/timeline over loopback, and
// `tactd timeline` prints the same from the state database.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>

#include "support/daemon.h"
#include "support/http.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::CliResult;
using tactd::test::Daemon;
using tactd::test::drop;
using tactd::test::eventually;
using tactd::test::run_tactd;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

const std::string kToken = "admin-token-for-tests-0123456789";

// The shipped rules and templates, a spool source, no channels (messages
// stay pending), and the admin endpoint with `admin` lines added.
std::filesystem::path write_config(const TempDir& dir, const std::string& admin) {
  std::filesystem::create_directories(dir.path() / "spool");
  dir.write("admin-token", kToken + "\n");
  return dir.write("tactd.toml", "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                                     "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                                     "\"\nstate = \"state.db\"\n[locale]\ntime_zone = \"Europe/Amsterdam\"\n"
                                     "[admin]\nlisten = \"127.0.0.1:0\"\n" +
                                     admin +
                                     "[[source]]\nname = \"drops\"\ntype = \"spool\"\npath = \"spool\"\n"
                                     "interval = \"1s\"\n");
}

const std::string kObservations =
    R"({"type":"customer","id":"c-1","observed_at":"2026-11-20T09:00:00Z","fields":{"name":"Mia Jansen","email":"mia@example.com","locale":"en"}}
{"type":"order","id":"A-1","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-1","status":"placed","total":12}}
{"type":"order","id":"A-1","observed_at":"2026-11-20T10:30:00Z","fields":{"customer":"c-1","status":"cancelled","cancel_reason":"kitchen overloaded","total":12}}
)";

}  // namespace

TEST_CASE("the admin endpoint shows a customer's timeline to holders of the token only") {
  TempDir dir;
  const auto config = write_config(dir, "token_file = \"admin-token\"\n");
  Daemon daemon(config, dir.path() / "log");
  const int port = tactd::test::logged_port(dir.path() / "log", "/metrics on 127.0.0.1:");
  REQUIRE(port != 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  drop(dir.path() / "spool", "a.jsonl", kObservations);
  REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/done/a.jsonl"); }));

  const std::string url = base + "/v1/customers/c-1/timeline";
  auto anonymous = tactd::test::http("GET", url);
  CHECK(anonymous.status == 401);
  CHECK(anonymous.headers["www-authenticate"] == "Bearer realm=\"tactd admin\"");
  const auto wrong = tactd::test::http("GET", url, "", {"Authorization: Bearer not-" + kToken});
  CHECK(wrong.status == 401);
  CHECK_THAT(wrong.body, !Contains(kToken));

  const std::string bearer = "Authorization: Bearer " + kToken;
  auto ok = tactd::test::http("GET", url, "", {bearer});
  REQUIRE(ok.status == 200);
  CHECK(ok.headers["content-type"] == "application/json");
  const auto timeline = nlohmann::json::parse(ok.body);
  CHECK(timeline["customer"] == "c-1");
  CHECK(timeline["name"] == "Mia Jansen");
  CHECK(timeline["truncated"] == false);
  std::vector<std::string> types;
  for (const auto& e : timeline["events"]) types.push_back(e["type"]);
  // First seen when tactd got them (now); observed as the source saw them (in November).
  std::sort(types.begin(), types.end());
  CHECK(types == std::vector<std::string>{"change", "decided", "first_seen", "first_seen", "observed", "observed"});
  CHECK(timeline["events"][0]["type"] == "observed");
  CHECK(timeline["events"][0]["entity"] == "customer/c-1");
  CHECK(timeline["events"][1]["entity"] == "order/A-1");
  CHECK(timeline["events"][1]["at"] == "2026-11-20T11:30:00+01:00");  // in the configured zone
  CHECK(timeline["events"][1]["fields"]["status"] == "cancelled");
  const auto& decided = timeline["events"].back();
  CHECK(decided["rule"] == "order-cancelled");
  CHECK(decided["channel"] == "email");
  CHECK(decided["status"] == "pending");  // no channel is configured
  CHECK_THAT(decided["body"].get<std::string>(), Contains("kitchen overloaded"));
  CHECK(decided["subject"].is_string());
  const auto& change = timeline["events"][timeline["events"].size() - 2];
  CHECK(change["type"] == "change");
  CHECK(change["old"] == "placed");
  CHECK(change["new"] == "cancelled");

  const auto unknown = tactd::test::http("GET", base + "/v1/customers/c-404/timeline", "", {bearer});
  CHECK(unknown.status == 404);
  CHECK_THAT(nlohmann::json::parse(unknown.body)["error"].get<std::string>(), Contains("c-404"));
  CHECK(tactd::test::http("GET", base + "/v1/customers/c%0A1/timeline", "", {bearer}).status == 400);
  CHECK(tactd::test::http("GET", base + "/v1/customers/" + std::string(300, 'x') + "/timeline", "", {bearer}).status ==
        400);
  CHECK(tactd::test::http("GET", url + "?limit=2", "", {bearer}).status == 200);
  CHECK(nlohmann::json::parse(tactd::test::http("GET", url + "?limit=2", "", {bearer}).body)["truncated"] == true);
  CHECK(tactd::test::http("GET", base + "/healthz").status == 200);  // probes stay open
  CHECK(tactd::test::http("GET", base + "/metrics").status == 200);
  CHECK(daemon.stop() == 0);
  CHECK_THAT(slurp(dir.path() / "log"), !Contains(kToken));

  // The same from the state database, for a support agent at a terminal.
  const CliResult text = run_tactd(dir.path(), "timeline c-1 --config '" + config.string() + "'");
  INFO(text.err);
  CHECK(text.status == 0);
  CHECK_THAT(text.out, Contains("Customer c-1 (Mia Jansen); times in Europe/Amsterdam"));
  CHECK_THAT(text.out, Contains("2026-11-20 11:30:00  observed\n  latest snapshot: order/A-1, status cancelled"));
  CHECK_THAT(text.out, Contains("apology by email to mia@example.com (rule order-cancelled); now pending"));
  CHECK_THAT(text.out, Contains("  | ") && Contains("kitchen overloaded"));
  const CliResult json = run_tactd(dir.path(), "timeline c-1 --json --config '" + config.string() + "'");
  CHECK(json.status == 0);
  CHECK(nlohmann::json::parse(json.out) == timeline);  // the whole answer of the endpoint, not only its events
  const CliResult unknown_cli = run_tactd(dir.path(), "timeline c-404 --config '" + config.string() + "'");
  CHECK(unknown_cli.status == 1);
  CHECK_THAT(unknown_cli.err, Contains("no customer 'c-404' is known"));
  const CliResult bad_limit = run_tactd(dir.path(), "timeline c-1 --limit 0 --config '" + config.string() + "'");
  CHECK(bad_limit.status == 2);
  CHECK(run_tactd(dir.path(), "timeline --config '" + config.string() + "'").status == 2);
}

TEST_CASE("without a token configured the timeline answers 403 and says how to configure one") {
  TempDir dir;
  Daemon daemon(write_config(dir, ""), dir.path() / "log");
  const int port = tactd::test::logged_port(dir.path() / "log", "/metrics on 127.0.0.1:");
  REQUIRE(port != 0);
  const auto closed =
      tactd::test::http("GET", "http://127.0.0.1:" + std::to_string(port) + "/v1/customers/c-1/timeline", "",
                        {"Authorization: Bearer anything"});
  CHECK(closed.status == 403);
  CHECK_THAT(nlohmann::json::parse(closed.body)["error"].get<std::string>(), Contains("[admin] token_file"));
  CHECK(daemon.stop() == 0);
  CHECK_THAT(slurp(dir.path() / "log"), Contains("answer 403"));
}
