// The service lifecycle of the real `tactd run` (issue 10): what it tells
// systemd over a fake NOTIFY_SOCKET (a Unix datagram socket the test binds
// and reads), the watchdog, reload on SIGHUP while deliveries are in flight,
// the drain on SIGTERM with a backlog, and the admin endpoint. Channels are
// webhooks to a loopback sink (tests/support/recording_server.py) that can
// answer slowly; a second one plays a polled JSON API.
#include <catch2/catch.hpp>

#include <signal.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <sstream>

#include "support/daemon.h"
#include "support/http.h"
#include "support/notify_socket.h"
#include "support/observations.h"
#include "support/scripted_server.h"
#include "support/state_db.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::cancellation;
using tactd::test::Daemon;
using tactd::test::drop;
using tactd::test::eventually;
using tactd::test::NotifySocket;
using tactd::test::Process;
using tactd::test::Provider;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

const std::string kPushToken = "push-token-for-tests";

// One configuration of the lifecycle tests; write() puts it, its rules and
// the spool folder into the test's directory. Channels are webhooks to
// `sink` (`<sink>/sms`, `<sink>/email`); `sources` are more [[source]]
// tables beside the spool source `drops`.
struct Setup {
  explicit Setup(std::string sink_base) : sink(std::move(sink_base)) {}

  std::string sink;
  std::string rules = R"([[rule]]
id       = "order-cancelled"
kind     = "apology"
on       = "order.status -> cancelled"
template = "order_cancelled"
channels = ["sms", "email"]
once     = true
urgent   = true
)";
  std::string sms_path = "/sms";
  std::string sources;
  std::string stop_grace = "10s";

  std::filesystem::path write(const TempDir& dir) const {
    std::filesystem::create_directories(dir.path() / "spool");
    dir.write("rules/orders.toml", rules);
    dir.write("push-token", kPushToken + "\n");
    return dir.write("tactd.toml",
                     "[tactd]\nrules = \"rules\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                         "\"\nstate = \"state.db\"\nmerchant = \"Bakkerij Bol\"\nstop_grace = \"" + stop_grace +
                         "\"\n[locale]\ntime_zone = \"Europe/Amsterdam\"\n"
                         "[admin]\nlisten = \"127.0.0.1:0\"\n"
                         "[push]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"push-token\"\n"
                         "[[source]]\nname = \"drops\"\ntype = \"spool\"\npath = \"spool\"\ninterval = \"1s\"\n" +
                         sources + "\n[[channel]]\nchannel = \"sms\"\nprovider = \"webhook\"\nurl = \"" + sink +
                         sms_path +
                         "\"\nbackoff = \"1s\"\n\n[[channel]]\nchannel = \"email\"\nprovider = \"webhook\"\nurl = \"" +
                         sink + "/email\"\nbackoff = \"1s\"\n");
  }
};

// The daemon under test and its admin endpoint.
class Service {
 public:
  // Its log is `dir/<log>`; one per daemon started, since the admin port is read from it.
  Service(const TempDir& dir, const std::filesystem::path& config, const tactd::test::Environment& env = {},
          std::string log = "log")
      : log_(dir.path() / std::move(log)), daemon_(config, log_, env) {
    admin_ = tactd::test::logged_port(log_path(), "/metrics on 127.0.0.1:");
    REQUIRE(admin_ != 0);
  }
  Process& process() { return daemon_; }
  const std::filesystem::path& log_path() const { return log_; }
  std::string log() const { return slurp(log_path()); }
  size_t log_count(const std::string& text) const {
    const std::string all = log();
    size_t count = 0;
    for (size_t at = all.find(text); at != std::string::npos; at = all.find(text, at + 1)) ++count;
    return count;
  }

  tactd::test::Reply admin(const std::string& path) const {
    return tactd::test::http("GET", "http://127.0.0.1:" + std::to_string(admin_) + path);
  }
  // The value of one series on /metrics, e.g. `tactd_reload_failures_total`
  // or `tactd_observations_total{source="orders",type="order"}`; -1 when absent.
  double metric(const std::string& series) const {
    std::istringstream lines(admin("/metrics").body);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    return -1;
  }

  // SIGHUP, then waits until the reload is done or refused (the count-th
  // time in the log).
  void reload(const std::string& outcome, size_t count) {
    daemon_.signal(SIGHUP);
    REQUIRE(eventually([&] { return log_count("reload: " + outcome) >= count; }));
  }

 private:
  std::filesystem::path log_;
  Daemon daemon_;
  int admin_ = 0;
};

// The webhook notifications a sink received, parsed, by request path.
std::vector<nlohmann::json> notifications(const Provider& sink, const std::string& path) {
  std::vector<nlohmann::json> out;
  for (const auto& request : sink.requests())
    if (request["path"] == path) out.push_back(nlohmann::json::parse(request["body"].get<std::string>()));
  return out;
}

// The status of each outbox row, in id order; empty before the database exists.
std::vector<std::string> statuses(const TempDir& dir) {
  return tactd::test::column(dir.path() / "state.db", "SELECT status FROM outbox ORDER BY id");
}

}  // namespace

TEST_CASE("systemd hears READY=1 once state and configuration are up, readable STATUS=, reloads and STOPPING=1") {
  TempDir dir;
  Provider sink(dir, "sink");
  NotifySocket systemd;
  Service service(dir, Setup(sink.base()).write(dir), {{"NOTIFY_SOCKET", systemd.path()}});

  REQUIRE(eventually([&] { return !systemd.starting_with("READY=1").empty(); }));
  // Nothing before READY=1, and by then the state is open and the
  // configuration loaded (and the admin endpoint, whose port we read, up).
  const auto first = systemd.received().front();
  CHECK(first.sender == service.process().pid());  // NotifyAccess=main
  CHECK(std::filesystem::exists(dir.path() / "state.db"));
  CHECK_THAT(service.log(), Contains("running: 1 rules, 1 sources, 2 channels"));
  // A status a person can read in `systemctl status`.
  const std::regex status(R"(READY=1\nSTATUS=\d+/1 sources polled; outbox 0 pending; 0 delivered since start)");
  CHECK(std::regex_match(first.text, status));

  // A valid reload: RELOADING=1 with the monotonic time, then READY=1.
  service.reload("done", 1);
  REQUIRE(eventually([&] { return systemd.starting_with("READY=1").size() == 2; }));
  auto texts = systemd.received();
  REQUIRE(texts.size() == 3);
  CHECK(std::regex_match(texts[1].text, std::regex(R"(RELOADING=1\nMONOTONIC_USEC=\d+)")));
  CHECK(std::regex_match(texts[2].text, status));

  // A refused reload still ends with READY=1, and its status says so.
  dir.write("rules/orders.toml", "[[rule]]\nid = \"broken\"\n");
  service.reload("refused", 1);
  REQUIRE(eventually([&] { return systemd.starting_with("READY=1").size() == 3; }));
  CHECK(systemd.starting_with("RELOADING=1").size() == 2);
  CHECK_THAT(systemd.received().back().text, Contains("STATUS=reload refused (") && Contains("see the log"));

  CHECK(service.process().stop() == 0);
  CHECK(systemd.received().back().text == "STOPPING=1");
  for (const auto& d : systemd.received()) CHECK(d.sender == first.sender);
}

TEST_CASE("a reload cannot move the state or change how it syncs: it is refused and the running state stays") {
  TempDir dir;
  Provider sink(dir, "sink");
  const auto config = Setup(sink.base()).write(dir);
  Service service(dir, config);
  const std::string running = slurp(config);
  std::string next = running;
  next.replace(next.find("[tactd]\n"), 8, "[tactd]\nsync = \"normal\"\n");
  dir.write("tactd.toml", next);
  service.reload("refused", 1);
  CHECK_THAT(service.log(), Contains("[tactd] sync cannot change on reload; restart tactd"));
  next = running;
  next.replace(next.find("state = \"state.db\""), 18, "state = \"moved.db\"");
  dir.write("tactd.toml", next);
  service.reload("refused", 2);
  CHECK_THAT(service.log(), Contains("[tactd] state cannot change on reload"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "moved.db"));
  CHECK(service.process().stop() == 0);
}

TEST_CASE("with WATCHDOG_USEC for its own PID, WATCHDOG=1 arrives from the loop within every interval") {
  TempDir dir;
  Provider sink(dir, "sink");
  NotifySocket systemd;
  const auto config = Setup(sink.base()).write(dir);
  // WATCHDOG_PID must be tactd's PID: a shell that learns its own and execs tactd.
  Process daemon(
      {"/bin/sh", "-c", "export WATCHDOG_PID=$$; exec \"$0\" run --config \"$1\"", TACTD_BINARY, config.string()},
      dir.path() / "log", {{"NOTIFY_SOCKET", systemd.path()}, {"WATCHDOG_USEC", "1000000"}});
  constexpr auto kInterval = std::chrono::seconds{1};
  REQUIRE(eventually([&] { return systemd.starting_with("WATCHDOG=1").size() >= 6; }));
  std::vector<std::chrono::system_clock::time_point> pings;
  for (const auto& d : systemd.received()) {
    if (d.text != "WATCHDOG=1") continue;
    CHECK(d.sender == daemon.pid());
    pings.push_back(d.arrived);
  }
  CHECK(pings.back() - pings.front() >= kInterval);  // kernel timestamps, one every half interval
  for (size_t i = 1; i < pings.size(); ++i) CHECK(pings[i] - pings[i - 1] < kInterval);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("a reload while a delivery is in flight: invalid keeps the running rules, valid applies, removed cancels") {
  TempDir dir;
  Provider sink(dir, "sink");
  sink.script({{{"delay", 6}}});  // the first delivery is in flight through both reloads
  Setup setup(sink.base());
  const std::string at_rule = R"([[rule]]
id       = "promise-reminder"
kind     = "heads_up"
at       = "order.promised_by - 30m"
template = "delivery_late"
channels = ["sms", "email"]
)";
  setup.rules += "\n" + at_rule;
  Service service(dir, setup.write(dir));
  drop(
      dir.path() / "spool", "a.jsonl",
      cancellation("1", true) +
          R"({"type":"order","id":"L-1","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-1","status":"shipped","promised_by":"2099-01-01T12:00:00Z"}})"
          "\n");
  REQUIRE(eventually([&] { return sink.requests().size() == 1; }));  // the apology to c-1, in flight
  REQUIRE(eventually([&] { return service.metric("tactd_timers_pending") == 1; }));

  // Invalid: every problem logged with file:line:column, counted, and the
  // running rules stay.
  const std::string file = (dir.path() / "rules/orders.toml").string();
  dir.write("rules/orders.toml", R"([[rule]]
id       = "order-cancelled"
kind     = "shout"
on       = "order.status -> cancelled"
template = "order_cancelled"
channels = ["fax"]
)");
  service.reload("refused", 1);
  const std::string log = service.log();
  CHECK_THAT(log, Contains("reload: " + file + ":3:") && Contains("shout"));
  CHECK_THAT(log, Contains("reload: " + file + ":6:") && Contains("fax"));
  CHECK(service.metric("tactd_reload_failures_total") == 1);
  CHECK(service.metric("tactd_last_reload_success") == 0);
  drop(dir.path() / "spool", "b.jsonl", cancellation("2", true));
  REQUIRE(eventually([&] { return notifications(sink, "/sms").size() == 2; }));  // by the old rule's sms

  // Valid: order-cancelled prefers email now, a refund rule is added, the
  // `at` rule is removed, and the sms channel moves to another URL.
  setup.rules = R"([[rule]]
id       = "order-cancelled"
kind     = "apology"
on       = "order.status -> cancelled"
template = "order_cancelled"
channels = ["email", "sms"]
once     = true
urgent   = true

[[rule]]
id       = "order-refunded"
kind     = "apology"
on       = "order.status -> refunded"
template = "order_cancelled"
channels = ["sms", "email"]
)";
  setup.sms_path = "/sms-v2";
  setup.write(dir);
  service.reload("done", 1);
  CHECK(service.metric(R"(tactd_deliveries_in_flight{channel="sms"})") == 1);  // the first, still unanswered
  {
    const std::string reloaded = service.log();
    CHECK_THAT(reloaded, Contains("reload: rule changed rule=order-cancelled"));
    CHECK_THAT(reloaded, Contains("reload: rule added rule=order-refunded"));
    CHECK_THAT(reloaded, Contains("reload: rule removed rule=promise-reminder"));
    CHECK_THAT(reloaded, Contains("reload: channel changed channel=sms"));
  }
  // The timers go after the reload, a batch at a time.
  REQUIRE(eventually([&] { return service.log_count("reload: timers cancelled rule=promise-reminder count=1") == 1; }));
  CHECK(service.metric("tactd_timers_pending") == 0);
  CHECK(service.metric("tactd_last_reload_success") == 1);

  // The delivery in flight finishes on the channel it started on, once.
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered", "delivered"}; }));
  // New observations meet the new rules and channels.
  drop(dir.path() / "spool", "c.jsonl", cancellation("3", true) + cancellation("4", true, "refunded"));
  REQUIRE(eventually([&] { return statuses(dir).size() == 4; }));
  REQUIRE(eventually([&] { return sink.requests().size() == 4; }));
  const auto sms = notifications(sink, "/sms");
  REQUIRE(sms.size() == 2);
  CHECK(sms[0]["customer"] == "c-1");
  CHECK(sms[1]["customer"] == "c-2");
  const auto email = notifications(sink, "/email");
  REQUIRE(email.size() == 1);
  CHECK(email[0]["customer"] == "c-3");
  CHECK(email[0]["rule"] == "order-cancelled");
  const auto sms_v2 = notifications(sink, "/sms-v2");
  REQUIRE(sms_v2.size() == 1);
  CHECK(sms_v2[0]["customer"] == "c-4");
  CHECK(sms_v2[0]["rule"] == "order-refunded");
  CHECK(service.process().stop() == 0);
}

TEST_CASE("a reload that removes a rule with 400,000 timers cancels them a batch at a time while the daemon answers") {
  TempDir dir;
  Provider sink(dir, "sink");
  Setup setup(sink.base());
  const std::string plain = setup.rules;
  setup.rules += R"(
[[rule]]
id       = "promise-reminder"
kind     = "heads_up"
at       = "order.promised_by - 30m"
template = "delivery_late"
channels = ["sms", "email"]
)";
  const auto config = setup.write(dir);
  {
    Service first(dir, config, {}, "first.log");  // makes the state
    CHECK(first.process().stop() == 0);
  }
  // A shop's worth of timers of the one rule, far in the future.
  constexpr int kTimers = 400000;
  {
    SQLite::Database db((dir.path() / "state.db").string(), SQLite::OPEN_READWRITE);
    db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(kTimers) +
            ") INSERT INTO timers (rule, entity, due_at, fired) "
            "SELECT 'promise-reminder', 'order/T-' || i, 4102444800000 + i, 0 FROM n");
  }
  Service service(dir, config);
  REQUIRE(eventually([&] { return service.metric("tactd_timers_pending") == kTimers; }));

  setup.rules = plain;
  setup.write(dir);
  service.reload("done", 1);
  // Between two batches the loop answers: one DELETE of every timer would
  // have ended (and logged) before anything else was answered. No timing
  // is assumed but this margin: the cancellation takes about a second
  // (2.5 s a million, docs/performance.md), a look at the log and one
  // request some 20 ms.
  CHECK(service.admin("/healthz").status == 200);
  CHECK(service.log_count("reload: timers cancelled") == 0);
  REQUIRE(eventually([&] {
    return service.log_count("reload: timers cancelled rule=promise-reminder count=" + std::to_string(kTimers)) == 1;
  }));
  CHECK(service.metric("tactd_timers_pending") == 0);
  CHECK(tactd::test::column(dir.path() / "state.db", "SELECT COUNT(*) FROM timers") == std::vector<std::string>{"0"});
  CHECK(service.process().stop() == 0);
}

TEST_CASE("a source removed by a reload stops and stays stopped, and a changed one restarts from its cursor") {
  TempDir dir;
  Provider sink(dir, "sink");
  Provider api(dir, "api");
  api.script({{{"delay", 3}, {"status", 200}, {"body", {{"items", nlohmann::json::array()}}}}});
  const auto shop = dir.path() / "shop.db";
  {
    SQLite::Database db(shop.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE orders (id TEXT, customer TEXT, state TEXT, changed TEXT)");
    db.exec("INSERT INTO orders VALUES ('A-1', 'c-1', 'cancelled', '2026-11-20T10:00:00Z')");
  }
  auto sources = [&](const std::string& interval, bool tracker) {
    return R"(
[[source]]
name = "orders"
type = "sqlite"
path = "shop.db"
interval = ")" +
           interval + R"("
query = "SELECT id, customer, state, changed FROM orders WHERE changed > :cursor ORDER BY changed"
cursor_column = "changed"
[source.mapping]
type = "order"
id = "/id"
observed_at = "/changed"
[source.mapping.fields]
customer = "/customer"
status = "/state"
)" +
           (tracker ? R"(
[[source]]
name = "tracker"
type = "http"
url = ")" + api.base() + R"(/track"
interval = ")" + interval +
                          R"("
timeout = "10s"
items = "/items"
[source.mapping]
type = "shipment"
id = "/id"
observed_at = "/at"
[source.mapping.fields]
status = "/status"
)"
                    : std::string());
  };
  Setup setup(sink.base());
  setup.sources = sources("1s", true);
  Service service(dir, setup.write(dir));
  const std::string orders = R"(tactd_observations_total{source="orders",type="order"})";
  REQUIRE(eventually([&] { return service.metric(orders) == 1; }));
  REQUIRE(eventually([&] { return api.requests().size() == 1; }));  // the tracker's poll, in flight

  // Both change: each restarts, the tracker once its poll in flight ends.
  setup.sources = sources("2s", true);
  setup.write(dir);
  service.reload("done", 1);
  CHECK_THAT(service.log(), Contains("reload: source changed, restarting from its cursor source=orders") &&
                                Contains("reload: source changed, restarting from its cursor source=tracker"));
  // The tracker is removed before its old poll has ended.
  setup.sources = sources("2s", false);
  setup.write(dir);
  service.reload("done", 2);
  CHECK_THAT(service.log(), Contains("reload: source removed source=tracker"));
  REQUIRE(eventually([&] { return service.log_count("source: stopped source=tracker") >= 1; }));

  // The orders source goes on from its cursor: A-1 is not read again.
  {
    SQLite::Database db(shop.string(), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO orders VALUES ('A-2', 'c-1', 'cancelled', '2026-11-20T11:00:00Z')");
  }
  REQUIRE(eventually([&] { return service.metric(orders) == 2; }));
  CHECK(tactd::test::column(dir.path() / "state.db", "SELECT cursor FROM source_cursors WHERE source = 'orders'") ==
        std::vector<std::string>{"2026-11-20T11:00:00Z"});

  // The removed tracker is gone for good: not polled, not started again,
  // and not among the readiness checks.
  const auto ready = nlohmann::json::parse(service.admin("/readyz").body);
  INFO(ready.dump(2));
  for (const auto& check : ready["checks"]) CHECK(check["name"] != "source tracker");
  CHECK(service.admin("/readyz").status == 200);
  CHECK(api.requests().size() == 1);
  CHECK(service.log_count("source: started source=tracker") == 1);
  CHECK(service.process().stop() == 0);
}

TEST_CASE("SIGTERM with a backlog and a slow sink loses nothing, and a restart sends the rest once") {
  TempDir dir;
  Provider sink(dir, "sink");
  constexpr int kCustomers = 16;
  sink.script(nlohmann::json::array({{{"delay", 2}}, {{"delay", 2}}, {{"delay", 2}}, {{"delay", 2}}}));
  Setup setup(sink.base());
  setup.stop_grace = "6s";
  const auto config = setup.write(dir);
  std::string backlog;
  for (int i = 1; i <= kCustomers; ++i) backlog += cancellation(std::to_string(i), true);
  {
    Service service(dir, config);
    const int push = tactd::test::logged_port(service.log_path(), "push: listening on 127.0.0.1:");
    drop(dir.path() / "spool", "a.jsonl", backlog);
    // Four deliveries in flight (the channel's concurrency), the rest waits.
    REQUIRE(eventually([&] { return sink.requests().size() == 4; }));
    REQUIRE(eventually([&] { return statuses(dir).size() == kCustomers; }));
    const auto stop_at = std::chrono::steady_clock::now();
    service.process().signal(SIGTERM);
    REQUIRE(eventually([&] { return service.log_count("stopping: intake stops") == 1; }));
    // Intake is closed: the push endpoint asks to come back later.
    const auto refused = tactd::test::http("POST", "http://127.0.0.1:" + std::to_string(push) + "/v1/observations",
                                           cancellation("99", true), {"Authorization: Bearer " + kPushToken});
    CHECK(refused.status == 503);
    CHECK(refused.headers.at("retry-after") == "5");
    CHECK(service.process().wait() == 0);
    CHECK(std::chrono::steady_clock::now() - stop_at < std::chrono::seconds{6});
  }
  // The deliveries in flight finished; the rest is pending, nothing dead or lost.
  const auto after_stop = statuses(dir);
  REQUIRE(after_stop.size() == kCustomers);
  CHECK(std::count(after_stop.begin(), after_stop.end(), "delivered") == 4);
  CHECK(std::count(after_stop.begin(), after_stop.end(), "pending") == kCustomers - 4);
  CHECK(sink.requests().size() == 4);

  // A restart sends the rest, and every idempotency key arrives once.
  Service service(dir, config, {}, "log.restart");
  REQUIRE(eventually([&] {
    const auto now = statuses(dir);
    return std::count(now.begin(), now.end(), "delivered") == kCustomers;
  }));
  std::map<std::string, int> keys;
  for (const auto& request : sink.requests()) ++keys[request["headers"]["idempotency-key"].get<std::string>()];
  CHECK(keys.size() == kCustomers);
  for (const auto& [key, count] : keys) CHECK(count == 1);
  CHECK(service.process().stop() == 0);
}

TEST_CASE("/readyz turns ready after the first poll, and /metrics passes promtool after reloads") {
  TempDir dir;
  Provider sink(dir, "sink");
  Provider api(dir, "api");
  api.script({{{"delay", 2}, {"status", 200}, {"body", {{"items", nlohmann::json::array()}}}}});
  Setup setup(sink.base());
  setup.sources = R"(
[[source]]
name = "tracker"
type = "http"
url = ")" + api.base() +
                  R"(/track"
interval = "1s"
timeout = "10s"
items = "/items"
[source.mapping]
type = "shipment"
id = "/id"
observed_at = "/at"
)";
  Service service(dir, setup.write(dir));
  const auto waiting = service.admin("/readyz");
  CHECK(waiting.status == 503);
  INFO(waiting.body);
  const auto checks = nlohmann::json::parse(waiting.body)["checks"];
  CHECK(std::count(checks.begin(), checks.end(),
                   nlohmann::json{{"name", "source tracker"}, {"ok", false}, {"detail", "no successful poll yet"}}) ==
        1);
  REQUIRE(eventually([&] { return service.admin("/readyz").status == 200; }));

  drop(dir.path() / "spool", "a.jsonl", cancellation("1", true));
  REQUIRE(eventually([&] { return statuses(dir) == std::vector<std::string>{"delivered"}; }));
  dir.write("rules/orders.toml", "[[rule]]\nid = \"broken\"\n");
  service.reload("refused", 1);
  setup.write(dir);
  service.reload("done", 1);
  const auto metrics = service.admin("/metrics");
  REQUIRE(metrics.status == 200);
  const auto [status, output] = tactd::test::run_with_input("/usr/bin/promtool check metrics", metrics.body);
  INFO(output);
  CHECK(status == 0);
  CHECK_THAT(metrics.body, Contains("tactd_reloads_total 2") && Contains("tactd_reload_failures_total 1") &&
                               Contains("tactd_last_reload_success 1"));
  CHECK(service.process().stop() == 0);
}
