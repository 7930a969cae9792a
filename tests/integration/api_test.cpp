// The real `tactd run` polling the shipped example mappings
// (config/examples/) against a loopback server that plays a webshop's order
// API and a carrier's tracking API from fixtures (tests/support/
// api_fixture_server.py): paging, ETags, slow and failing answers, restarts.
#include <catch2/catch.hpp>

#include <SQLiteCpp/SQLiteCpp.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "support/daemon.h"
#include "support/state_db.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::Daemon;
using tactd::test::eventually;
using tactd::test::Process;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

const tactd::test::Environment kSecrets = {{"SHOP_TOKEN", "shpat_fixture_token_7f3a"},
                                           {"DHL_KEY", "dhl_fixture_key_91c2"},
                                           {"SHOP_API_TOKEN", "shpat_fixture_token_7f3a"},
                                           {"DHL_API_KEY", "dhl_fixture_key_91c2"}};

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

// The fixture server with its data in `dir/api`.
class Api {
 public:
  explicit Api(const TempDir& dir) : folder_(dir.path() / "api") {
    std::filesystem::create_directories(folder_);
    for (const char* fixture : {"shop/orders.json", "carrier/shipments.json"})
      std::filesystem::copy_file(tactd::test::source_dir() / "tests/fixtures" / fixture,
                                 folder_ / std::filesystem::path(fixture).filename());
    server_ = std::make_unique<Process>(
        std::vector<std::string>{
            "python3", (tactd::test::source_dir() / "tests/support/api_fixture_server.py").string(), folder_.string()},
        dir.path() / "api.log", kSecrets);
    REQUIRE(eventually([&] { return std::filesystem::exists(folder_ / "port"); }));
    base_ = "http://127.0.0.1:" + slurp(folder_ / "port");
  }
  const std::string& base() const { return base_; }

  nlohmann::json read(const char* name) const { return nlohmann::json::parse(slurp(folder_ / name)); }
  void write(const char* name, const nlohmann::json& value) const {
    std::ofstream(folder_ / (std::string(name) + ".tmp")) << value.dump();
    std::filesystem::rename(folder_ / (std::string(name) + ".tmp"), folder_ / name);
  }
  // The requests so far to `path`, oldest first.
  std::vector<nlohmann::json> requests(const std::string& path) const {
    std::vector<nlohmann::json> out;
    std::istringstream lines(slurp(folder_ / "requests.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      auto request = nlohmann::json::parse(line);
      if (request["path"] == path) out.push_back(std::move(request));
    }
    return out;
  }

 private:
  std::filesystem::path folder_;
  std::string base_;
  std::unique_ptr<Process> server_;
};

const std::string kOrders = "/admin/api/2024-10/orders.json";
const std::string kShipments = "/track/shipments";

// The shipped rules and templates, the state in `dir`, and both shipped
// example sources pointed at the fixture server, polled every second.
std::filesystem::path write_config(const TempDir& dir, const Api& api) {
  std::string shop = slurp(tactd::test::source_dir() / "config/examples/webshop-orders.toml");
  shop = replace(shop, "https://example-shop.myshopify.com", api.base());
  shop = replace(shop, "interval     = \"1m\"", "interval     = \"1s\"");
  shop = replace(shop, "jitter       = \"15s\"", "jitter       = \"1s\"");
  shop = replace(shop, "timeout      = \"30s\"", "timeout      = \"1s\"");
  shop = replace(shop, "limit=250", "limit=2");
  std::string carrier = slurp(tactd::test::source_dir() / "config/examples/carrier-tracking.toml");
  carrier = replace(carrier, "https://api-eu.dhl.com", api.base());
  carrier = replace(carrier, "interval = \"5m\"", "interval = \"1s\"");
  carrier = replace(carrier, "jitter   = \"30s\"", "jitter   = \"0s\"");
  return dir.write("tactd.toml", "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                                     "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                                     "\"\nstate = \"state.db\"\n[locale]\ntime_zone = \"Europe/Amsterdam\"\n" + shop +
                                     "\n" + carrier);
}

// rule -> entity of every outbox row; empty while there is no database.
std::vector<std::string> outbox(const TempDir& dir) {
  return tactd::test::column(dir.path() / "state.db", "SELECT rule || ' ' || entity FROM outbox ORDER BY id");
}

bool has(const std::vector<std::string>& rows, const std::string& row) {
  return std::find(rows.begin(), rows.end(), row) != rows.end();
}

std::string cursor(const TempDir& dir, const std::string& source) {
  SQLite::Database db((dir.path() / "state.db").string());
  SQLite::Statement q(db, "SELECT cursor FROM source_cursors WHERE source = ?");
  q.bind(1, source);
  return q.executeStep() ? q.getColumn(0).getString() : "";
}

}  // namespace

TEST_CASE("the shipped webshop and carrier mappings feed the real daemon from loopback APIs, page by page") {
  TempDir dir;
  Api api(dir);
  Daemon daemon(write_config(dir, api), dir.path() / "log", kSecrets);

  // Five orders, two a page: three pages linked by Link headers. The
  // cancelled one gets its apology, addressed to the customer the same
  // record described.
  REQUIRE(eventually([&] { return has(outbox(dir), "order-cancelled order/450789470"); }));
  REQUIRE(eventually([&] { return cursor(dir, "webshop") == "2026-11-20T09:20:00+01:00"; }));
  const auto pages = api.requests(kOrders);
  REQUIRE(pages.size() >= 3);
  CHECK_FALSE(pages[0]["query"].contains("page_info"));
  CHECK(pages[0]["query"]["updated_at_min"] == "2026-01-01T00:00:00Z");
  CHECK(pages[1]["query"].contains("page_info"));
  CHECK(pages[2]["query"].contains("page_info"));
  CHECK(pages[0]["headers"]["x-shopify-access-token"] == "shpat_fixture_token_7f3a");
  {
    SQLite::Database db((dir.path() / "state.db").string());
    CHECK(db.execAndGet("SELECT recipient FROM outbox WHERE entity = 'order/450789470'").getString() ==
          "bram@example.com");
  }
  // Later polls start from the committed cursor.
  REQUIRE(eventually([&] {
    const auto later = api.requests(kOrders);
    return later.size() > pages.size() && later.back()["query"]["updated_at_min"] == "2026-11-20T09:20:00+01:00";
  }));

  // The carrier: asked again with the ETag, answered 304.
  REQUIRE(eventually([&] {
    const auto polls = api.requests(kShipments);
    return polls.size() >= 3 && polls.back()["headers"].contains("if-none-match");
  }));
  CHECK(api.requests(kShipments)[0]["headers"]["dhl-api-key"] == "dhl_fixture_key_91c2");

  // The parcel's delivery fails: a new answer, a new ETag, an explanation.
  auto shipments = api.read("shipments.json");
  auto& status = shipments["00340434161094042557"]["shipments"][0]["status"];
  status["statusCode"] = "failure";
  status["timestamp"] = "2026-11-21T13:05:00+01:00";
  status["description"] = "The recipient was not at home; the parcel is at the nearest parcel shop";
  api.write("shipments.json", shipments);
  REQUIRE(eventually([&] { return has(outbox(dir), "delivery-problem shipment/00340434161094042557"); }));

  CHECK(daemon.stop() == 0);
  const std::string log = slurp(dir.path() / "log");
  CHECK_THAT(log, !Contains("shpat_fixture_token_7f3a") && !Contains("dhl_fixture_key_91c2"));
}

TEST_CASE("slow, failing and dropped API answers are retried with backoff and nothing is lost") {
  TempDir dir;
  Api api(dir);
  // The shop is busy twice (asking for a second's patience), then too slow
  // for the 1s timeout, then hangs up.
  api.write("faults.json", {{"orders",
                             {{{"status", 503}, {"retry_after", "1"}},
                              {{"status", 429}, {"retry_after", "1"}},
                              {{"delay", 2.5}},
                              {{"drop", true}}}}});
  Daemon daemon(write_config(dir, api), dir.path() / "log", kSecrets);
  REQUIRE(eventually([&] { return has(outbox(dir), "order-cancelled order/450789470"); }));
  const std::string log = slurp(dir.path() / "log");
  CHECK_THAT(log, Contains("answered 503") && Contains("answered 429") && Contains("next_try_s="));
  CHECK(api.read("faults.json")["orders"].empty());

  // A new cancellation, in the middle of the pages: still found.
  auto orders = api.read("orders.json");
  orders[3]["cancel_reason"] = "customer";
  orders[3]["cancelled_at"] = orders[3]["updated_at"] = "2026-11-20T11:00:00+01:00";
  api.write("orders.json", orders);
  REQUIRE(eventually([&] { return has(outbox(dir), "order-cancelled order/450789472"); }));
  CHECK(daemon.stop() == 0);
}

TEST_CASE("after a restart the daemon resumes from its cursors and sends nothing twice") {
  TempDir dir;
  Api api(dir);
  const auto config = write_config(dir, api);
  {
    Daemon daemon(config, dir.path() / "log", kSecrets);
    REQUIRE(eventually([&] { return has(outbox(dir), "order-cancelled order/450789470"); }));
    REQUIRE(eventually([&] { return cursor(dir, "webshop") == "2026-11-20T09:20:00+01:00"; }));
    CHECK(daemon.stop() == 0);
  }
  const auto before = outbox(dir);
  const size_t requests_before = api.requests(kOrders).size();
  Daemon daemon(config, dir.path() / "log", kSecrets);
  REQUIRE(eventually([&] { return api.requests(kOrders).size() >= requests_before + 2; }));
  const auto resumed = api.requests(kOrders)[requests_before];
  CHECK(resumed["query"]["updated_at_min"] == "2026-11-20T09:20:00+01:00");
  REQUIRE(eventually([&] { return api.requests(kShipments).size() >= 2; }));
  CHECK(daemon.stop() == 0);
  CHECK(outbox(dir) == before);
}
