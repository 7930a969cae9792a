#include "ops/admin_endpoint.h"
#include "ops/logging.h"
#include "ops/metrics.h"
#include "ops/service_notifier.h"
#include "ops/token_throttle.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/captured_log.h"
#include "support/daemon.h"
#include "support/http.h"
#include "support/notify_socket.h"
#include "support/temp_dir.h"

using namespace tactd;
using test::CapturedLog;
using test::NotifySocket;
using test::TempDir;

namespace {

// Sets (or with nullopt unsets) an environment variable for one scope and
// puts the old value back afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++count;
  return count;
}

}  // namespace

// ---------------------------------------------------------------- metrics

TEST_CASE("a small registry renders exactly the expected exposition text") {
  Metrics metrics;
  auto& observations = metrics.counter("tactd_observations_total", "Observations applied, by source and entity type",
                                       {"source", "type"});
  observations.add({"shop", "order"});
  observations.add({"shop", "order"}, 5);
  observations.add({"carrier", "shipment"}, 2.5);
  auto& pending = metrics.gauge("tactd_outbox_pending", "Notifications waiting in the outbox", {});
  pending.set({}, 12);
  auto& latency = metrics.histogram("tactd_delivery_latency_seconds", "Seconds from due to delivered", {"channel"},
                                    {0.005, 0.01, 0.5});
  latency.observe({"sms"}, 0.012);
  latency.observe({"sms"}, 0.005);  // on a bound: counted in that bucket (le is "less or equal")
  latency.observe({"sms"}, 7);
  metrics.gauge("tactd_build_info", "Version of the running daemon; always 1", {"version"}).set({"0.1.0"}, 1);

  CHECK(metrics.render() ==
        "# HELP tactd_build_info Version of the running daemon; always 1\n"
        "# TYPE tactd_build_info gauge\n"
        "tactd_build_info{version=\"0.1.0\"} 1\n"
        "# HELP tactd_delivery_latency_seconds Seconds from due to delivered\n"
        "# TYPE tactd_delivery_latency_seconds histogram\n"
        "tactd_delivery_latency_seconds_bucket{channel=\"sms\",le=\"0.005\"} 1\n"
        "tactd_delivery_latency_seconds_bucket{channel=\"sms\",le=\"0.01\"} 1\n"
        "tactd_delivery_latency_seconds_bucket{channel=\"sms\",le=\"0.5\"} 2\n"
        "tactd_delivery_latency_seconds_bucket{channel=\"sms\",le=\"+Inf\"} 3\n"
        "tactd_delivery_latency_seconds_sum{channel=\"sms\"} 7.017\n"
        "tactd_delivery_latency_seconds_count{channel=\"sms\"} 3\n"
        "# HELP tactd_observations_total Observations applied, by source and entity type\n"
        "# TYPE tactd_observations_total counter\n"
        "tactd_observations_total{source=\"carrier\",type=\"shipment\"} 2.5\n"
        "tactd_observations_total{source=\"shop\",type=\"order\"} 6\n"
        "# HELP tactd_outbox_pending Notifications waiting in the outbox\n"
        "# TYPE tactd_outbox_pending gauge\n"
        "tactd_outbox_pending 12\n");
}

TEST_CASE("promtool accepts a rendered registry with every kind of family and awkward values") {
  Metrics metrics;
  auto& observations = metrics.counter("tactd_observations_total", "Observations applied.\nBy source and type \\ kind",
                                       {"source", "type"});
  observations.add({"shop", "order"}, 3);
  observations.add({"quote\"back\\slash\nnewline", "bad \xff utf-8"});
  observations.add({"", "empty source"}, 1e20);
  metrics.counter("tactd_restarts_total", "Declared and never counted", {});
  metrics.counter("tactd_unused_total", "A labelled family without series", {"reason"});
  auto& gauges = metrics.gauge("tactd_odd_values", "Gauges holding odd values", {"case"});
  gauges.set({"nan"}, std::numeric_limits<double>::quiet_NaN());
  gauges.set({"plus_inf"}, std::numeric_limits<double>::infinity());
  gauges.set({"minus_inf"}, -std::numeric_limits<double>::infinity());
  gauges.set({"negative"}, -0.25);
  gauges.set({"tiny"}, 1.5e-12);
  gauges.set({"big"}, 123456789012345678.0);
  metrics.gauge("tactd_source_last_success_timestamp_seconds", "When each source last succeeded", {"source"})
      .set_to_time({"shop"}, std::chrono::system_clock::time_point{std::chrono::milliseconds{1'763'656'200'250}});
  metrics.gauge("tactd_build_info", "Build of the running daemon", {"version", "commit"}).set({"0.1.0", "abc"}, 1);
  auto& latency = metrics.histogram("tactd_delivery_latency_seconds", "Delivery latency", {"channel"},
                                    {0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30});
  for (double v : {0.001, 0.02, 0.3, 2.0, 60.0}) latency.observe({"email"}, v);
  latency.observe({"sms"}, 0.012);
  metrics.histogram("tactd_poll_duration_seconds", "Poll durations", {}, {0.1, 1}).observe({}, 0.5);

  const std::string text = metrics.render();
  const auto [status, output] = test::run_with_input("/usr/bin/promtool check metrics", text);
  INFO(text);
  INFO(output);
  REQUIRE(status == 0);
  CHECK(output.empty());  // no lint complaints either
}

TEST_CASE("promtool rejects what the registry must never write") {
  // The check above is only worth something if promtool fails bad input.
  const auto [status, output] = test::run_with_input(
      "/usr/bin/promtool check metrics", "# HELP x_total a\n# TYPE x_total counter\nx_total{a=\"\xff\"} 1\n");
  CHECK(status != 0);
}

TEST_CASE("a family keeps a bounded number of label sets and counts the rest as other") {
  CapturedLog log;
  Metrics metrics;
  auto& polls = metrics.counter("tactd_polls_total", "Polls, by source", {"source", "result"});
  for (std::size_t i = 0; i < MetricFamily::kMaxSeries + 100; ++i) polls.add({"source-" + std::to_string(i), "ok"});
  CHECK(polls.series_count() == MetricFamily::kMaxSeries + 1);
  CHECK(polls.value({"other", "other"}) == 100);
  CHECK(polls.value({"source-600", "ok"}) == 0);
  // Label sets seen before the bound keep their own series.
  polls.add({"source-0", "ok"}, 2);
  CHECK(polls.value({"source-0", "ok"}) == 3);
  CHECK(polls.series_count() == MetricFamily::kMaxSeries + 1);

  const std::string text = metrics.render();
  CHECK_THAT(text, Catch::Contains("tactd_polls_total{source=\"other\",result=\"other\"} 100\n"));
  CHECK(occurrences(text, "tactd_polls_total{") == MetricFamily::kMaxSeries + 1);
  CHECK(occurrences(log.text(), "tactd_polls_total has 500 label sets") == 1);
  CHECK_THAT(log.text(), Catch::StartsWith("warning "));

  // Another family has its own bound, and its own warning.
  auto& other = metrics.histogram("tactd_sizes_bytes", "Sizes", {"kind"}, {10, 100});
  for (std::size_t i = 0; i < MetricFamily::kMaxSeries + 1; ++i) other.observe({std::to_string(i)}, 50);
  CHECK(other.series_count() == MetricFamily::kMaxSeries + 1);
  CHECK(occurrences(log.text(), "label sets") == 2);
  CHECK_THAT(metrics.render(), Catch::Contains("tactd_sizes_bytes_count{kind=\"other\"} 1\n"));
}

TEST_CASE("declaring a family twice gives the same family only when it is the same") {
  Metrics metrics;
  auto& first = metrics.counter("tactd_sent_total", "Sent", {"channel"});
  auto& again = metrics.counter("tactd_sent_total", "Sent, said differently", {"channel"});
  CHECK(&first == &again);
  first.add({"sms"});
  CHECK(again.value({"sms"}) == 1);
  CHECK_THAT(metrics.render(), Catch::Contains("# HELP tactd_sent_total Sent\n"));
  CHECK_THROWS_AS(metrics.counter("tactd_sent_total", "Sent", {"kind"}), std::logic_error);
  CHECK_THROWS_AS(metrics.counter("tactd_sent_total", "Sent", {"channel", "kind"}), std::logic_error);
  CHECK_THROWS_AS(metrics.histogram("tactd_sent_total", "Sent", {"channel"}, {1}), std::logic_error);
  auto& latency = metrics.histogram("tactd_latency_seconds", "Latency", {}, {1, 2});
  CHECK(&metrics.histogram("tactd_latency_seconds", "Latency", {}, {1, 2}) == &latency);
  CHECK_THROWS_AS(metrics.histogram("tactd_latency_seconds", "Latency", {}, {1, 3}), std::logic_error);
  CHECK_THROWS_AS(metrics.gauge("tactd_latency_seconds", "Latency", {}), std::logic_error);
  // A histogram's samples would clash with a gauge of the same name.
  CHECK_THROWS_AS(metrics.gauge("tactd_latency_seconds_bucket", "x", {}), std::logic_error);
  metrics.gauge("tactd_queue", "Queue", {});
  CHECK_THROWS_AS(metrics.histogram("tactd_queue", "Queue", {}, {1}), std::logic_error);
}

TEST_CASE("invalid names, wrong label counts, falling counters and unordered buckets are bugs that throw") {
  Metrics metrics;
  CHECK_THROWS_AS(metrics.counter("1tactd_total", "h", {}), std::logic_error);
  CHECK_THROWS_AS(metrics.counter("tactd-sent_total", "h", {}), std::logic_error);
  CHECK_THROWS_AS(metrics.counter("", "h", {}), std::logic_error);
  CHECK_THROWS_AS(metrics.counter("tactd_sent", "h", {}), std::logic_error);  // a counter ends in _total
  CHECK_THROWS_AS(metrics.gauge("tactd_sent_total", "h", {}), std::logic_error);
  CHECK_THROWS_AS(metrics.gauge("tactd_x_count", "h", {}), std::logic_error);
  CHECK_THROWS_AS(metrics.gauge("tactd_x", "", {}), std::logic_error);  // help is required
  CHECK_THROWS_AS(metrics.gauge("tactd_x", "h", {"bad-label"}), std::logic_error);
  CHECK_THROWS_AS(metrics.gauge("tactd_x", "h", {"__reserved"}), std::logic_error);
  CHECK_THROWS_AS(metrics.gauge("tactd_x", "h", {"a:b"}), std::logic_error);
  CHECK_THROWS_AS(metrics.gauge("tactd_x", "h", {"a", "a"}), std::logic_error);
  CHECK_THROWS_AS(metrics.histogram("tactd_h", "h", {"le"}, {1}), std::logic_error);
  CHECK_THROWS_AS(metrics.histogram("tactd_h", "h", {}, {1, 1}), std::logic_error);
  CHECK_THROWS_AS(metrics.histogram("tactd_h", "h", {}, {2, 1}), std::logic_error);
  CHECK_THROWS_AS(metrics.histogram("tactd_h", "h", {}, {1, std::numeric_limits<double>::infinity()}),
                  std::logic_error);
  CHECK_NOTHROW(metrics.gauge("tactd:recorded_x", "colons are allowed in metric names", {"Ok_1"}));

  auto& sent = metrics.counter("tactd_sent_total", "Sent", {"channel"});
  CHECK_THROWS_AS(sent.add({}), std::logic_error);
  CHECK_THROWS_AS(sent.add({"sms", "extra"}), std::logic_error);
  CHECK_THROWS_AS(sent.add({"sms"}, -1), std::logic_error);
  CHECK_THROWS_AS(sent.add({"sms"}, std::numeric_limits<double>::quiet_NaN()), std::logic_error);
  CHECK_THROWS_AS(metrics.gauge("tactd_g", "g", {}).set({"x"}, 1), std::logic_error);
  auto& histogram = metrics.histogram("tactd_h", "h", {}, {1});
  CHECK_THROWS_AS(histogram.observe({}, std::numeric_limits<double>::quiet_NaN()), std::logic_error);
  // Nothing above left a trace.
  CHECK(sent.value({"sms"}) == 0);
  CHECK(sent.series_count() == 0);
}

TEST_CASE("label values and help text are escaped and kept valid UTF-8") {
  Metrics metrics;
  auto& gauge = metrics.gauge("tactd_escapes", "Help with a \\ backslash,\na newline and \"quotes\"", {"value"});
  gauge.set({"a\\b \"c\"\nd"}, 1);
  gauge.set({"caf\xC3\xA9 \xff!"}, 2);
  gauge.set({std::string(MetricFamily::kMaxLabelValueBytes - 1, 'x') + "\xC3\xA9"}, 3);
  CHECK(metrics.render() ==
        "# HELP tactd_escapes Help with a \\\\ backslash,\\na newline and \"quotes\"\n"
        "# TYPE tactd_escapes gauge\n"
        "tactd_escapes{value=\"a\\\\b \\\"c\\\"\\nd\"} 1\n"
        "tactd_escapes{value=\"caf\xC3\xA9 \xEF\xBF\xBD!\"} 2\n"
        "tactd_escapes{value=\"" +
            std::string(MetricFamily::kMaxLabelValueBytes - 1, 'x') + "\"} 3\n");
}

TEST_CASE("sample values are written the way Prometheus parses them") {
  CHECK(format_metric_value(0) == "0");
  CHECK(format_metric_value(-0.0) == "0");
  CHECK(format_metric_value(12) == "12");
  CHECK(format_metric_value(-3) == "-3");
  CHECK(format_metric_value(1'763'656'200) == "1763656200");
  CHECK(format_metric_value(0.005) == "0.005");
  CHECK(format_metric_value(0.1 + 0.2) == "0.30000000000000004");
  CHECK(format_metric_value(1763656200.25) == "1763656200.25");
  CHECK(format_metric_value(1e20) == "1e+20");
  CHECK(format_metric_value(1.5e-12) == "1.5e-12");
  CHECK(format_metric_value(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(format_metric_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(format_metric_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("collectors run before every render and one that throws stops neither the render nor the others") {
  CapturedLog log;
  Metrics metrics;
  auto& pending = metrics.gauge("tactd_outbox_pending", "Pending", {});
  int scrapes = 0;
  metrics.on_scrape([&] { throw std::runtime_error("store is locked"); });
  metrics.on_scrape([&] { pending.set({}, ++scrapes * 10); });
  CHECK_THAT(metrics.render(), Catch::Contains("tactd_outbox_pending 10\n"));
  CHECK_THAT(metrics.render(), Catch::Contains("tactd_outbox_pending 20\n"));
  CHECK(occurrences(log.text(), "store is locked") == 2);
  CHECK_THAT(log.text(), Catch::StartsWith("error "));
}

TEST_CASE("a timestamp gauge holds seconds since the epoch") {
  Metrics metrics;
  auto& last = metrics.gauge("tactd_last_poll_timestamp_seconds", "Last poll", {});
  last.set_to_time({}, std::chrono::system_clock::time_point{std::chrono::milliseconds{1'763'656'200'250}});
  CHECK(last.value({}) == 1763656200.25);
  CHECK_THAT(metrics.render(), Catch::Contains("tactd_last_poll_timestamp_seconds 1763656200.25\n"));
}

// ---------------------------------------------------------- admin endpoint

TEST_CASE("the admin routes answer over a real loopback HTTP server") {
  Metrics metrics;
  auto& scrapes = metrics.counter("tactd_scrapes_total", "Scrapes seen by the collector", {});
  metrics.on_scrape([&] { scrapes.add({}); });
  std::atomic<bool> source_ok{true};
  AdminEndpoint admin(metrics, [&] {
    return std::vector<ReadinessCheck>{
        {"store", true, ""},
        {"source shop", source_ok.load(), source_ok ? "" : "last successful poll 312 s ago; window 60 s"}};
  });

  boost::asio::io_context io;
  auto server = HttpServer::start(io, "127.0.0.1", 0, {}, [&](const HttpRequest& r) { return admin.handle(r); });
  std::thread loop([&] { io.run(); });
  const std::string base = "http://127.0.0.1:" + std::to_string(server->port());

  auto health = test::http("GET", base + "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  CHECK_THAT(health.headers["content-type"], Catch::StartsWith("text/plain"));
  CHECK(health.headers["cache-control"] == "no-store");

  auto ready = test::http("GET", base + "/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.headers["content-type"] == "application/json");
  const auto ready_json = nlohmann::json::parse(ready.body);
  CHECK(ready_json["ready"] == true);
  CHECK(ready_json["checks"].size() == 2);

  source_ok = false;
  auto unready = test::http("GET", base + "/readyz?verbose=1");
  CHECK(unready.status == 503);
  const auto unready_json = nlohmann::json::parse(unready.body);
  CHECK(unready_json["ready"] == false);
  CHECK(unready_json["checks"][1] == nlohmann::json{{"name", "source shop"},
                                                    {"ok", false},
                                                    {"detail", "last successful poll 312 s ago; window 60 s"}});
  CHECK(unready_json["checks"][0]["ok"] == true);

  auto scrape = test::http("GET", base + "/metrics?name[]=x");
  CHECK(scrape.status == 200);
  CHECK(scrape.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(scrape.body ==
        "# HELP tactd_scrapes_total Scrapes seen by the collector\n"
        "# TYPE tactd_scrapes_total counter\n"
        "tactd_scrapes_total 1\n");

  auto head = test::http("HEAD", base + "/metrics");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(test::http("HEAD", base + "/readyz").status == 503);

  auto post = test::http("POST", base + "/metrics");
  CHECK(post.status == 405);
  CHECK(post.headers["allow"] == "GET, HEAD");
  CHECK(test::http("DELETE", base + "/healthz").status == 405);

  CHECK(test::http("GET", base + "/").status == 404);
  CHECK(test::http("GET", base + "/metrics/extra").status == 404);
  CHECK(test::http("GET", base + "/healthzz").status == 404);
  CHECK(test::http("POST", base + "/v1/observations").status == 403);  // /v1/ needs a token, and none is configured

  io.stop();
  loop.join();
}

TEST_CASE("the /v1 routes need the admin bearer token while the probes and metrics stay open") {
  Metrics metrics;
  AdminEndpoint admin(
      metrics, [] { return std::vector<ReadinessCheck>{}; }, "s3cret");
  int calls = 0;
  admin.add_route("/v1/customers/", [&](const HttpRequest& r) {
    ++calls;
    return HttpResponse{200, "{\"target\": \"" + r.target + "\"}\n", "application/json", {}};
  });
  admin.add_route("/v1/broken", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("store gone"); });
  auto get = [&](const std::string& target, std::map<std::string, std::string> headers = {}) {
    return admin.handle({"GET", target, std::move(headers), ""});
  };
  const auto header = [](const HttpResponse& r, const std::string& name) {
    for (const auto& [n, v] : r.headers)
      if (n == name) return v;
    return std::string();
  };

  const HttpResponse anonymous = get("/v1/customers/c-1/timeline");
  CHECK(anonymous.status == 401);
  CHECK(header(anonymous, "WWW-Authenticate") == "Bearer realm=\"tactd admin\"");
  CHECK_THAT(nlohmann::json::parse(anonymous.body)["error"].get<std::string>(),
             Catch::Contains("Authorization: Bearer"));
  const HttpResponse wrong = get("/v1/customers/c-1/timeline", {{"authorization", "Bearer s3cre"}});
  CHECK(wrong.status == 401);
  CHECK(header(wrong, "WWW-Authenticate") == "Bearer realm=\"tactd admin\"");
  CHECK(get("/v1/customers/c-1/timeline", {{"authorization", "Basic s3cret"}}).status == 401);
  CHECK(get("/v1/customers/c-1/timeline", {{"authorization", "Bearer s3cret2"}}).status == 401);
  CHECK(get("/v1/nothing-here").status == 401);  // what exists is not told before authentication
  CHECK(calls == 0);

  const HttpResponse ok = get("/v1/customers/c-1/timeline?limit=5", {{"authorization", "Bearer s3cret"}});
  CHECK(ok.status == 200);
  CHECK(calls == 1);
  CHECK(nlohmann::json::parse(ok.body)["target"] == "/v1/customers/c-1/timeline?limit=5");
  CHECK(header(ok, "Cache-Control") == "no-store");
  CHECK(get("/v1/nothing-here", {{"authorization", "Bearer s3cret"}}).status == 404);
  CapturedLog log;
  const HttpResponse broken = get("/v1/broken", {{"authorization", "Bearer s3cret"}});
  CHECK(broken.status == 500);
  CHECK_THAT(log.text(), Catch::Contains("store gone"));
  CHECK_THAT(log.text(), !Catch::Contains("s3cret"));

  CHECK(get("/healthz").status == 200);
  CHECK(get("/readyz").status == 200);
  CHECK(get("/metrics").status == 200);

  // Without a token configured the routes are closed, and say how to open them.
  admin.set_token("");
  const HttpResponse closed = get("/v1/customers/c-1/timeline", {{"authorization", "Bearer "}});
  CHECK(closed.status == 403);
  CHECK_THAT(nlohmann::json::parse(closed.body)["error"].get<std::string>(), Catch::Contains("[admin] token_file"));
  CHECK(calls == 1);
  CHECK(get("/healthz").status == 200);
}

TEST_CASE("after five wrong bearer tokens in a minute the /v1 routes answer 429, the right token too") {
  Metrics metrics;
  AdminEndpoint admin(
      metrics, [] { return std::vector<ReadinessCheck>{}; }, "s3cret");
  admin.add_route("/v1/customers/", [](const HttpRequest&) {
    return HttpResponse{200, "{}\n", "application/json", {}};
  });
  VirtualClock clock(*parse_rfc3339("2026-11-20T12:00:00Z"));
  TokenThrottle throttle;
  admin.set_throttle(&throttle, &clock);
  auto get = [&](const std::string& token) {
    std::map<std::string, std::string> headers;
    if (!token.empty()) headers["authorization"] = "Bearer " + token;
    return admin.handle({"GET", "/v1/customers/c-1/timeline", std::move(headers), ""});
  };
  CapturedLog log;
  for (int i = 0; i < 4; ++i) CHECK(get("guess").status == 401);
  CHECK(get("").status == 401);  // no token at all is no guess
  CHECK(get("s3cret").status == 200);
  CHECK(get("guess").status == 401);  // the fifth
  CHECK_THAT(log.text(), Catch::Contains("5 wrong admin tokens within 60 s"));
  const HttpResponse throttled = get("s3cret");
  CHECK(throttled.status == 429);
  std::string retry_after;
  for (const auto& [name, value] : throttled.headers)
    if (name == "Retry-After") retry_after = value;
  CHECK(retry_after == "60");
  CHECK_THAT(nlohmann::json::parse(throttled.body)["error"].get<std::string>(),
             Catch::Contains("too many wrong admin tokens"));
  CHECK(admin.handle({"GET", "/healthz", {}, ""}).status == 200);  // probes are not held up
  clock.advance_to(clock.now() + std::chrono::seconds{59});
  CHECK(get("s3cret").status == 429);
  clock.advance_to(clock.now() + std::chrono::seconds{1});
  CHECK(get("s3cret").status == 200);
  CHECK_THAT(log.text(), !Catch::Contains("s3cret"));
}

TEST_CASE("a readiness probe that throws makes the daemon not ready and says why") {
  CapturedLog log;
  Metrics metrics;
  AdminEndpoint admin(metrics, []() -> std::vector<ReadinessCheck> { throw std::runtime_error("store gone"); });
  const HttpResponse response = admin.handle({"GET", "/readyz", {}, ""});
  CHECK(response.status == 503);
  const auto body = nlohmann::json::parse(response.body);
  CHECK(body["ready"] == false);
  CHECK(body["checks"][0]["ok"] == false);
  CHECK_THAT(body["checks"][0]["detail"].get<std::string>(), Catch::Contains("store gone"));
  CHECK_THAT(log.text(), Catch::Contains("store gone"));
}

TEST_CASE("readiness with no checks is ready and bad UTF-8 in a detail still gives valid JSON") {
  Metrics metrics;
  bool empty = true;
  AdminEndpoint admin(metrics, [&] {
    return empty ? std::vector<ReadinessCheck>{}
                 : std::vector<ReadinessCheck>{{"source \xff", false, "got \xfe\xff from upstream"}};
  });
  const HttpResponse none = admin.handle({"GET", "/readyz", {}, ""});
  CHECK(none.status == 200);
  CHECK(nlohmann::json::parse(none.body) == nlohmann::json{{"ready", true}, {"checks", nlohmann::json::array()}});
  empty = false;
  const HttpResponse bad = admin.handle({"GET", "/readyz", {}, ""});
  CHECK(bad.status == 503);
  CHECK_NOTHROW(nlohmann::json::parse(bad.body));
}

// --------------------------------------------------------- service notifier

namespace {

std::uint64_t monotonic_usec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000 + static_cast<std::uint64_t>(now.tv_nsec) / 1'000;
}

}  // namespace

TEST_CASE("the notifier sends systemd exactly the datagrams of the sd_notify protocol") {
  NotifySocket socket;
  ScopedEnv env("NOTIFY_SOCKET", socket.path());
  ServiceNotifier notifier;

  notifier.ready("watching 3 sources");
  CHECK(socket.next() == "READY=1\nSTATUS=watching 3 sources");
  notifier.status("polling shop");
  CHECK(socket.next() == "STATUS=polling shop");
  notifier.watchdog();
  CHECK(socket.next() == "WATCHDOG=1");
  notifier.stopping();
  CHECK(socket.next() == "STOPPING=1");

  const auto before = monotonic_usec();
  notifier.reloading();
  const auto after = monotonic_usec();
  const auto reloading = socket.next();
  REQUIRE(reloading);
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  REQUIRE_THAT(*reloading, Catch::StartsWith(prefix));
  const std::string digits = reloading->substr(prefix.size());
  REQUIRE(digits.find_first_not_of("0123456789") == std::string::npos);
  const auto usec = std::stoull(digits);
  CHECK(usec >= before);
  CHECK(usec <= after);

  CHECK_FALSE(socket.next());  // nothing else was sent
  // The environment is left as it was, for children and for later calls.
  CHECK(std::getenv("NOTIFY_SOCKET") == socket.path());
}

TEST_CASE("a status line cannot add assignments of its own") {
  NotifySocket socket;
  ScopedEnv env("NOTIFY_SOCKET", socket.path());
  ServiceNotifier notifier;
  notifier.status("shop failed\nREADY=1\r\nSTOPPING=1");
  CHECK(socket.next() == "STATUS=shop failed READY=1  STOPPING=1");
  notifier.ready(std::string("a\0b", 3));
  CHECK(socket.next() == "READY=1\nSTATUS=a b");
  notifier.status(std::string(ServiceNotifier::kMaxStatusBytes + 50, 's'));
  CHECK(socket.next() == "STATUS=" + std::string(ServiceNotifier::kMaxStatusBytes, 's'));
}

TEST_CASE("without NOTIFY_SOCKET the notifier quietly does nothing") {
  NotifySocket socket;
  ScopedEnv env("NOTIFY_SOCKET", std::nullopt);
  CapturedLog log;
  ServiceNotifier notifier;
  notifier.ready("up");
  notifier.status("still up");
  notifier.reloading();
  notifier.watchdog();
  notifier.stopping();
  CHECK_FALSE(socket.next());
  CHECK(log.text().empty());
}

TEST_CASE("a notification socket that is gone is logged once and the service goes on") {
  CapturedLog log;
  TempDir dir;
  ScopedEnv env("NOTIFY_SOCKET", (dir.path() / "nobody-listens").string());
  ServiceNotifier notifier;
  notifier.watchdog();
  notifier.watchdog();
  notifier.status("x");
  CHECK(occurrences(log.text(), "cannot notify") == 1);
}

TEST_CASE("the watchdog interval comes from WATCHDOG_USEC when it is meant for this process") {
  ServiceNotifier notifier;
  {
    ScopedEnv usec("WATCHDOG_USEC", "200000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(getpid()));
    CHECK(notifier.watchdog_interval() == std::chrono::microseconds{200'000});
    // Asking does not consume the variables.
    CHECK(notifier.watchdog_interval() == std::chrono::microseconds{200'000});
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "200000");
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    CHECK(notifier.watchdog_interval() == std::chrono::microseconds{200'000});
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "200000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(getpid() + 1));  // meant for another process
    CHECK_FALSE(notifier.watchdog_interval());
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    CHECK_FALSE(notifier.watchdog_interval());
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "soon");
    CHECK_FALSE(notifier.watchdog_interval());
  }
}

// ----------------------------------------------------------------- logging

namespace {

// Points file descriptor 2 at a file for one scope, then back.
class CapturedStderr {
 public:
  CapturedStderr() : path_(dir_.path() / "stderr") {
    std::fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  ~CapturedStderr() {
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
  }
  CapturedStderr(const CapturedStderr&) = delete;
  CapturedStderr& operator=(const CapturedStderr&) = delete;

  // JOURNAL_STREAM as systemd sets it for this file.
  std::string journal_stream() const {
    struct stat st {};
    REQUIRE(fstat(STDERR_FILENO, &st) == 0);
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  }
  std::string text() const {
    std::fflush(stderr);
    return test::slurp(path_);
  }

 private:
  TempDir dir_;
  std::filesystem::path path_;
  int saved_ = -1;
};

}  // namespace

TEST_CASE("a log field with an embedded newline and a forged priority stays one field on one line") {
  const std::string forged = "kitchen busy\n<3>tactd: all customers deleted";
  CHECK(kv("reason", forged) == R"(reason="kitchen busy\n<3>tactd: all customers deleted")");
  CHECK(kv("reason", "x\r\n<2>y") == R"(reason="x\r\n<2>y")");

  auto previous = spdlog::default_logger();
  {
    CapturedStderr err;
    ScopedEnv env("JOURNAL_STREAM", err.journal_stream());
    setup_logging(spdlog::level::info);
    spdlog::warn("source: poll failed {}", kv("reason", forged));
    spdlog::error("raw text {}", "a\n<2>b");  // a message that forgot kv() stays one line too
    spdlog::info("caf\xC3\xA9 \xff");
    spdlog::debug("below the level");
    spdlog::default_logger()->flush();
    CHECK(err.text() ==
          "<4>source: poll failed reason=\"kitchen busy\\n<3>tactd: all customers deleted\"\n"
          "<3>raw text a\\n<2>b\n"
          "<6>caf\xC3\xA9 \\xFF\n");
  }
  spdlog::set_default_logger(previous);
}

TEST_CASE("on a terminal a log line has an ISO 8601 timestamp and the level and no priority") {
  auto previous = spdlog::default_logger();
  {
    CapturedStderr err;
    ScopedEnv env("JOURNAL_STREAM", std::nullopt);
    setup_logging(spdlog::level::debug);
    spdlog::debug("polling {}", kv("source", "shop"));
    spdlog::critical("disk full");
    spdlog::default_logger()->flush();
    CHECK_THAT(err.text(), Catch::Matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}[+-]\\d\\d:\\d\\d "
                                          "debug polling source=shop\n"
                                          "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}[+-]\\d\\d:\\d\\d "
                                          "critical disk full\n"));
  }
  spdlog::set_default_logger(previous);
}

TEST_CASE("JOURNAL_STREAM counts only when it names the file standard error is") {
  TempDir dir;
  const auto path = dir.write("log", "");
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  {
    ScopedEnv env("JOURNAL_STREAM", std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
    CHECK(is_journal_stream(fd));
  }
  {
    // stderr was redirected after systemd set JOURNAL_STREAM: not the journal.
    ScopedEnv env("JOURNAL_STREAM", std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1));
    CHECK_FALSE(is_journal_stream(fd));
  }
  {
    ScopedEnv env("JOURNAL_STREAM", std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + "x");
    CHECK_FALSE(is_journal_stream(fd));
  }
  {
    ScopedEnv env("JOURNAL_STREAM", "");
    CHECK_FALSE(is_journal_stream(fd));
  }
  {
    ScopedEnv env("JOURNAL_STREAM", std::nullopt);
    CHECK_FALSE(is_journal_stream(fd));
  }
  close(fd);
}

TEST_CASE("kv quotes and escapes exactly what could be mistaken for structure") {
  CHECK(kv("source", "shop") == "source=shop");
  CHECK(kv("source", "") == R"(source="")");
  CHECK(kv("merchant", "Trattoria Da Marco") == R"(merchant="Trattoria Da Marco")");
  CHECK(kv("query", "a=b") == R"(query="a=b")");
  CHECK(kv("said", R"(he said "hi")") == R"(said="he said \"hi\"")");
  CHECK(kv("path", R"(C:\temp)") == R"(path="C:\\temp")");
  CHECK(kv("tabbed", "a\tb") == R"(tabbed="a\tb")");
  CHECK(kv("colour", "\x1b[31mred") == R"(colour="\x1B[31mred")");
  CHECK(kv("nul", std::string("a\0b", 3)) == R"(nul="a\x00b")");
  CHECK(kv("del", "a\x7f") == R"(del="a\x7F")");
  CHECK(kv("csi",
           "a\xC2\x9B"
           "2J") == R"(csi="a\xC2\x9B2J")");  // C1 control, the one-byte CSI
  CHECK(kv("bytes", "ok\xff\xc3") == R"(bytes="ok\xFF\xC3")");
  CHECK(kv("surrogate", "\xED\xA0\x80") == R"(surrogate="\xED\xA0\x80")");
  CHECK(kv("overlong", "\xC0\xAF") == R"(overlong="\xC0\xAF")");
  CHECK(kv("name", "Jos\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80") == "name=\"Jos\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80\"");
  CHECK(kv("city", "K\xC3\xB6ln") == "city=K\xC3\xB6ln");
  CHECK(kv("bad key=\n", "v") == "bad_key__=v");
  CHECK(kv("", "v") == "_=v");
}

TEST_CASE("log levels are read from their names") {
  CHECK(parse_log_level("trace") == spdlog::level::trace);
  CHECK(parse_log_level("debug") == spdlog::level::debug);
  CHECK(parse_log_level("info") == spdlog::level::info);
  CHECK(parse_log_level("warn") == spdlog::level::warn);
  CHECK(parse_log_level("warning") == spdlog::level::warn);
  CHECK(parse_log_level("error") == spdlog::level::err);
  CHECK(parse_log_level("INFO") == spdlog::level::info);
  CHECK_FALSE(parse_log_level(""));
  CHECK_FALSE(parse_log_level("verbose"));
  CHECK_FALSE(parse_log_level("info "));
  CHECK_FALSE(parse_log_level("off"));
}

TEST_CASE("setup_logging sets the level and can be called again") {
  auto previous = spdlog::default_logger();
  {
    CapturedStderr err;
    setup_logging(spdlog::level::err);
    CHECK(spdlog::default_logger()->level() == spdlog::level::err);
    setup_logging(spdlog::level::trace);
    CHECK(spdlog::default_logger()->level() == spdlog::level::trace);
    CHECK(spdlog::default_logger()->name() == "tactd");
  }
  spdlog::set_default_logger(previous);
}
