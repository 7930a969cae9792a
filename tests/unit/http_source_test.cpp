#include "sources/http_source.h"

#include <utility>  // before Boost.Asio

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <map>

#include "net/http_server.h"
#include "support/recording_intake.h"

using namespace tactd;
using tactd::test::RecordingIntake;
namespace asio = boost::asio;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

// The query parameters of a request target ("/x?a=1&b=2").
std::map<std::string, std::string> query(const std::string& target) {
  std::map<std::string, std::string> out;
  const size_t q = target.find('?');
  if (q == std::string::npos) return out;
  std::string rest = target.substr(q + 1);
  while (!rest.empty()) {
    const std::string pair = rest.substr(0, rest.find('&'));
    rest = rest.find('&') == std::string::npos ? "" : rest.substr(rest.find('&') + 1);
    const size_t eq = pair.find('=');
    std::string value = pair.substr(eq + 1);
    for (size_t i = 0; (i = value.find('%', i)) != std::string::npos; ++i)
      value.replace(i, 3, 1, static_cast<char>(std::stoi(value.substr(i + 1, 2), nullptr, 16)));
    out[pair.substr(0, eq)] = value;
  }
  return out;
}

// A webshop API in the shape of a well-known platform's order list: orders
// in updated_at order, updated_at_min inclusive, pages linked by Link.
struct Shop {
  std::vector<nlohmann::json> orders;
  std::vector<HttpRequest> requests;

  HttpResponse answer(const HttpRequest& request) {
    requests.push_back(request);
    auto params = query(request.target);
    size_t from = 0;
    if (params.count("page_info")) from = std::stoul(params["page_info"]);
    std::vector<nlohmann::json> matching;
    for (const auto& order : orders)
      if (!params.count("updated_at_min") || order["updated_at"].get<std::string>() >= params["updated_at_min"])
        matching.push_back(order);
    if (params.count("page_info")) matching = orders;  // a page_info carries the original filter; here: all
    HttpResponse response;
    nlohmann::json page = nlohmann::json::array();
    for (size_t i = from; i < matching.size() && i < from + 2; ++i) page.push_back(matching[i]);
    response.body = nlohmann::json{{"orders", page}}.dump();
    if (from + 2 < matching.size())
      response.headers.emplace_back(
          "Link", "</admin/orders.json?limit=2&page_info=" + std::to_string(from + 2) + ">; rel=\"next\"");
    return response;
  }
};

nlohmann::json order(int id, const char* updated_at, const char* status) {
  return {{"id", id}, {"updated_at", updated_at}, {"fulfillment_status", status}};
}

SourceConfig shop_config(unsigned short port) {
  SourceConfig config;
  config.name = "shop";
  config.type = "http";
  config.url = "http://127.0.0.1:" + std::to_string(port) + "/admin/orders.json?limit=2";
  config.items = "/orders";
  config.cursor_param = "updated_at_min";
  config.cursor_field = "/updated_at";
  config.follow_links = true;
  config.auth = {HttpAuth::Type::kHeader, "", "X-Shop-Access-Token", "s3cret-token"};
  Mapping mapping;
  mapping.type = EntityType::kOrder;
  mapping.id = "/id";
  mapping.observed_at = "/updated_at";
  mapping.fields = {{"status", {"/fulfillment_status"}, {{"fulfilled", "shipped"}, {"*", "confirmed"}}}};
  config.mappings = {mapping};
  return config;
}

// Runs one poll to its end on `io`.
HttpSource::Poll poll(asio::io_context& io, HttpSource& source) {
  std::optional<HttpSource::Poll> result;
  std::exception_ptr failure;
  asio::co_spawn(io, source.poll(), [&](std::exception_ptr e, HttpSource::Poll p) {
    failure = e;
    result = std::move(p);
    io.stop();
  });
  io.restart();
  io.run_for(std::chrono::seconds{20});
  if (failure) std::rethrow_exception(failure);
  REQUIRE(result);
  return *result;
}

struct Fixture {
  asio::io_context io;
  std::unique_ptr<HttpClient> client = HttpClient::create(io);
  VirtualClock clock{at("2026-11-20T12:00:00Z")};
  RecordingIntake intake;
};

}  // namespace

TEST_CASE("the HTTP source follows Link pages and commits each page with the highest cursor in its data") {
  Fixture f;
  Shop shop;
  shop.orders = {order(1, "2026-11-20T10:00:00Z", "pending"), order(2, "2026-11-20T10:01:00Z", "fulfilled"),
                 order(3, "2026-11-20T10:02:00Z", "pending"), order(4, "2026-11-20T10:03:00Z", "pending"),
                 order(5, "2026-11-20T10:04:00Z", "fulfilled")};
  auto server =
      HttpServer::start(f.io, "127.0.0.1", 0, {}, [&shop](const HttpRequest& request) { return shop.answer(request); });
  HttpSource source(shop_config(server->port()), *f.client, f.intake, f.clock);

  const auto first = poll(f.io, source);
  CHECK_FALSE(first.failure);
  CHECK(first.pages == 3);
  CHECK(first.observations == 5);
  REQUIRE(f.intake.batches.size() == 3);
  CHECK(f.intake.batches[0][1].fields["status"] == "shipped");
  CHECK(f.intake.cursors["shop"] == "2026-11-20T10:04:00Z");
  REQUIRE(shop.requests.size() == 3);
  CHECK(shop.requests[0].target == "/admin/orders.json?limit=2");  // no cursor yet
  CHECK(shop.requests[0].headers["x-shop-access-token"] == "s3cret-token");
  CHECK(shop.requests[1].target == "/admin/orders.json?limit=2&page_info=2");

  // The next poll asks from the cursor on; the platform's bound is inclusive,
  // so the last order comes again, the cursor stays, and paging stops.
  shop.requests.clear();
  const auto second = poll(f.io, source);
  CHECK(second.pages == 1);
  REQUIRE(shop.requests.size() == 1);
  CHECK(query(shop.requests[0].target)["updated_at_min"] == "2026-11-20T10:04:00Z");
  CHECK(f.intake.cursors["shop"] == "2026-11-20T10:04:00Z");
}

TEST_CASE("a record with a bad updated_at or an id out of range is rejected, and the cursor moves past it") {
  Fixture f;
  Shop shop;
  nlohmann::json huge_id = order(3, "2026-11-20T10:02:00Z", "pending");
  huge_id["id"] = 18446744073709551615ULL;
  shop.orders = {order(1, "2026-11-20T10:00:00Z", "pending"), order(2, "soon", "pending"), huge_id,
                 order(4, "2026-11-20T10:03:00Z", "fulfilled")};
  auto server =
      HttpServer::start(f.io, "127.0.0.1", 0, {}, [&shop](const HttpRequest& request) { return shop.answer(request); });
  HttpSource source(shop_config(server->port()), *f.client, f.intake, f.clock);

  const auto first = poll(f.io, source);
  CHECK_FALSE(first.failure);
  CHECK(first.observations == 2);
  CHECK(first.rejected == 2);
  CHECK(f.intake.cursors["shop"] == "2026-11-20T10:03:00Z");  // not "soon", and not stuck before it
  std::string problems;
  for (const auto& p : first.problems) problems += p + "\n";
  CHECK_THAT(problems, Catch::Contains("observed_at (/updated_at): 'soon' is not an RFC 3339 date-time"));
  CHECK_THAT(problems, Catch::Contains("its cursor 'soon' (/updated_at) is neither a time nor a number"));
  CHECK_THAT(problems, Catch::Contains("id at /id: 18446744073709551615 is not a whole number"));
}

TEST_CASE("an answer nested absurdly deep fails the poll with the reason, without taking the source down") {
  Fixture f;
  const std::string deep = std::string(75000, '[') + std::string(75000, ']');
  auto server = HttpServer::start(f.io, "127.0.0.1", 0, {}, [&](const HttpRequest&) {
    return HttpResponse{200, R"({"orders":)" + deep + "}", "application/json", {}};
  });
  HttpSource source(shop_config(server->port()), *f.client, f.intake, f.clock);
  const auto result = poll(f.io, source);
  REQUIRE(result.failure);
  CHECK_THAT(*result.failure, Catch::Contains("the answer is not usable JSON: JSON nested deeper than 64"));
  CHECK(f.intake.batches.empty());
}

TEST_CASE("an answer that has not changed is asked for with If-None-Match and commits nothing") {
  Fixture f;
  int full = 0;
  auto server = HttpServer::start(f.io, "127.0.0.1", 0, {}, [&full](const HttpRequest& request) {
    auto match = request.headers.find("if-none-match");
    if (match != request.headers.end() && match->second == "\"v1\"")
      return HttpResponse{304, "", "application/json", {}};
    ++full;
    HttpResponse response{
        200, R"({"shipments":[{"id":"JJD1","status":{"statusCode":"transit"}}]})", "application/json", {}};
    response.headers.emplace_back("ETag", "\"v1\"");
    return response;
  });
  SourceConfig config = shop_config(server->port());
  config.url = "http://127.0.0.1:" + std::to_string(server->port()) + "/track/shipments?trackingNumber=JJD1";
  config.items = "/shipments";
  config.cursor_param = config.cursor_field = "";
  config.mappings[0].type = EntityType::kShipment;
  config.mappings[0].observed_at = "";
  config.mappings[0].fields = {{"status", {"/status/statusCode"}, {{"transit", "in_transit"}}}};
  HttpSource source(config, *f.client, f.intake, f.clock);
  CHECK(poll(f.io, source).observations == 1);
  const auto again = poll(f.io, source);
  CHECK(again.unchanged);
  CHECK(again.observations == 0);
  CHECK(full == 1);
  CHECK(f.intake.batches.size() == 1);
}

TEST_CASE("a cursor from the response is followed to the end and resumed after a restart") {
  Fixture f;
  // Events after a cursor, two at a time; the last page says next = null.
  const std::vector<std::string> cursors = {"", "c2", "c4"};
  auto server = HttpServer::start(f.io, "127.0.0.1", 0, {}, [&](const HttpRequest& request) {
    const std::string after = query(request.target)["after"];
    const size_t page = after.empty() ? 0 : after == "c2" ? 1 : after == "c4" ? 2 : 3;
    nlohmann::json body = {{"data", nlohmann::json::array()}, {"paging", {{"next", nullptr}}}};
    if (page < 2) {
      for (size_t i = 0; i < 2; ++i)
        body["data"].push_back({{"id", "S" + std::to_string(page * 2 + i)}, {"state", "in_transit"}});
      body["paging"]["next"] = cursors[page + 1];
    }
    return HttpResponse{200, body.dump(), "application/json", {}};
  });
  SourceConfig config = shop_config(server->port());
  config.url = "http://127.0.0.1:" + std::to_string(server->port()) + "/events";
  config.items = "/data";
  config.cursor_param = "after";
  config.cursor_field = "";
  config.next_cursor = "/paging/next";
  config.follow_links = false;
  config.mappings[0].observed_at = "";
  config.mappings[0].fields = {};
  {
    HttpSource source(config, *f.client, f.intake, f.clock);
    const auto p = poll(f.io, source);
    CHECK(p.pages == 3);
    CHECK(p.observations == 4);
    CHECK(f.intake.cursors["shop"] == "c4");
  }
  HttpSource restarted(config, *f.client, f.intake, f.clock);
  const auto p = poll(f.io, restarted);
  CHECK(p.pages == 1);
  CHECK(p.observations == 0);
  CHECK(f.intake.cursors["shop"] == "c4");
}

TEST_CASE("failures are reported without secrets and back off, honouring Retry-After") {
  Fixture f;
  std::vector<HttpResponse> answers = {
      {503, "busy", "text/plain", {{"Retry-After", "120"}}},
      {500, "Authorization: Bearer s3cret-token was wrong", "text/plain", {}},
      {200, "<html>not json</html>", "text/html", {}},
      {200, R"({"items": 3})", "application/json", {}},
  };
  size_t next = 0;
  auto server = HttpServer::start(f.io, "127.0.0.1", 0, {}, [&](const HttpRequest&) { return answers.at(next++); });
  SourceConfig config = shop_config(server->port());
  config.interval = std::chrono::seconds{10};
  config.max_backoff = std::chrono::minutes{5};
  HttpSource source(config, *f.client, f.intake, f.clock);

  auto busy = poll(f.io, source);
  REQUIRE(busy.failure);
  CHECK_THAT(*busy.failure, Catch::StartsWith("page 1 (http://127.0.0.1:") && Catch::Contains("answered 503: busy"));
  CHECK(busy.retry_after == std::chrono::seconds{120});
  CHECK(source.next_delay(busy, 0.0) == std::chrono::seconds{120});

  auto error = poll(f.io, source);
  REQUIRE(error.failure);
  CHECK_THAT(*error.failure, Catch::Contains("answered 500"));
  CHECK(source.next_delay(error, 0.0) == std::chrono::seconds{10});  // 2 failures: 20s, half of it at least
  CHECK(source.next_delay(error, 0.999) < std::chrono::seconds{20});

  auto html = poll(f.io, source);
  REQUIRE(html.failure);
  CHECK_THAT(*html.failure, Catch::Contains("the answer is not usable JSON: malformed JSON"));
  auto shape = poll(f.io, source);
  REQUIRE(shape.failure);
  CHECK_THAT(*shape.failure, Catch::Contains("the answer has no array at '/orders' (items)"));
  CHECK(source.next_delay(shape, 0.999) < std::chrono::seconds{80});
  CHECK(f.intake.batches.empty());

  // Four failures in a row: 10s doubled three times, at least half of it; never more than max_backoff.
  CHECK(source.next_delay(shape, 0.0) == std::chrono::seconds{40});
  HttpSource nowhere(shop_config(1), *f.client, f.intake, f.clock);  // nothing listens on port 1
  HttpSource::Poll refused;
  for (int i = 0; i < 8; ++i) refused = poll(f.io, nowhere);
  REQUIRE(refused.failure);
  CHECK_THAT(*refused.failure, Catch::Contains("page 1 (http://127.0.0.1:1/admin/orders.json)"));
  CHECK(nowhere.next_delay(refused, 0.999) <= std::chrono::minutes{15});
  CHECK(nowhere.next_delay(refused, 0.0) == std::chrono::seconds{320});  // 5s doubled 7 times, halved
}

TEST_CASE("a successful poll waits the interval plus up to the jitter") {
  Fixture f;
  SourceConfig config = shop_config(1);
  config.interval = std::chrono::seconds{60};
  config.jitter = std::chrono::seconds{10};
  HttpSource source(config, *f.client, f.intake, f.clock);
  CHECK(source.next_delay({}, 0.0) == std::chrono::seconds{60});
  CHECK(source.next_delay({}, 0.5) == std::chrono::seconds{65});
}

TEST_CASE("Retry-After is read in seconds or as an HTTP date") {
  const Timestamp now = at("2015-10-21T07:28:00Z");
  CHECK(parse_retry_after("7", now) == std::chrono::seconds{7});
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now) == std::chrono::minutes{2});
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == Duration{});  // in the past: now
  CHECK_FALSE(parse_retry_after("soon", now));
  CHECK_FALSE(parse_retry_after("Wed, 21 Foo 2015 07:30:00 GMT", now));
}

TEST_CASE("the next page's link is found among others and resolved against the request") {
  const std::string base = "https://shop.example/admin/api/orders.json?limit=2";
  CHECK(
      next_link(
          R"(<https://shop.example/a?page_info=p1>; rel="previous", <https://shop.example/a?page_info=p3>; rel="next")",
          base) == "https://shop.example/a?page_info=p3");
  CHECK(next_link("</admin/api/orders.json?page=2>; rel=next", base) ==
        "https://shop.example/admin/api/orders.json?page=2");
  CHECK(next_link("<orders.json?page=2>; rel=\"next last\"", base) ==
        "https://shop.example/admin/api/orders.json?page=2");
  CHECK_FALSE(next_link(R"(<https://shop.example/a?page_info=p1>; rel="previous")", base));
  CHECK_FALSE(next_link("", base));
  CHECK(with_query_param("https://x/o?limit=2", "updated_at_min", "2026-11-20T10:00:00+01:00") ==
        "https://x/o?limit=2&updated_at_min=2026-11-20T10%3A00%3A00%2B01%3A00");
}

TEST_CASE("origins compare scheme, host and port, the default port left out") {
  CHECK(origin("https://Shop.Example/a?b") == "https://shop.example");
  CHECK(origin("https://shop.example:443/a") == "https://shop.example");
  CHECK(origin("http://shop.example:80") == "http://shop.example");
  CHECK(origin("http://shop.example:8080/") == "http://shop.example:8080");
  CHECK(origin("http://shop.example/") != origin("https://shop.example/"));
  CHECK(origin("/relative") == "");
}

TEST_CASE("a same-origin redirect is followed, and one to another host fails without sending the token there") {
  Fixture f;
  std::vector<HttpRequest> elsewhere;
  auto other = HttpServer::start(f.io, "127.0.0.1", 0, {}, [&](const HttpRequest& request) {
    elsewhere.push_back(request);
    return HttpResponse{200, R"({"orders":[]})", "application/json", {}};
  });
  std::string where = "/moved";
  auto server = HttpServer::start(f.io, "127.0.0.1", 0, {}, [&](const HttpRequest& request) {
    if (request.target.rfind("/admin/orders.json", 0) == 0)
      return HttpResponse{302, "", "text/plain", {{"Location", where}}};
    return HttpResponse{
        200, nlohmann::json{{"orders", {order(1, "2026-11-20T10:00:00Z", "pending")}}}.dump(), "application/json", {}};
  });
  HttpSource source(shop_config(server->port()), *f.client, f.intake, f.clock);
  const auto same = poll(f.io, source);
  CHECK_FALSE(same.failure);
  CHECK(same.observations == 1);

  where = "http://localhost:" + std::to_string(other->port()) + "/steal";
  const auto away = poll(f.io, source);
  REQUIRE(away.failure);
  CHECK_THAT(*away.failure, Catch::Contains("another origin") && Catch::Contains("not followed"));
  CHECK(elsewhere.empty());
}

TEST_CASE("a next-page link to another host is not followed: the token stays home") {
  Fixture f;
  std::vector<HttpRequest> elsewhere;
  auto other = HttpServer::start(f.io, "127.0.0.1", 0, {}, [&](const HttpRequest& request) {
    elsewhere.push_back(request);
    return HttpResponse{200, R"({"orders":[]})", "application/json", {}};
  });
  auto server = HttpServer::start(f.io, "127.0.0.1", 0, {}, [&](const HttpRequest&) {
    HttpResponse page{
        200, nlohmann::json{{"orders", {order(1, "2026-11-20T10:00:00Z", "pending")}}}.dump(), "application/json", {}};
    page.headers.emplace_back("Link", "<http://localhost:" + std::to_string(other->port()) + "/p2>; rel=\"next\"");
    return page;
  });
  HttpSource source(shop_config(server->port()), *f.client, f.intake, f.clock);
  const auto result = poll(f.io, source);
  CHECK_FALSE(result.failure);
  CHECK(result.observations == 1);  // the page itself counts
  REQUIRE(result.problems.size() == 1);
  CHECK_THAT(result.problems[0], Catch::Contains("another origin") && Catch::Contains("not followed"));
  CHECK(elsewhere.empty());
}
