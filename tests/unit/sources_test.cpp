#include "sources/spool_source.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <map>

#include "sources/mapping.h"
#include "sources/sqlite_source.h"

#include "support/recording_intake.h"
#include "support/temp_dir.h"

using namespace tactd;
using tactd::test::RecordingIntake;
using tactd::test::TempDir;

namespace {

const std::string kLine =
    R"({"type":"order","id":"A-1","observed_at":"2026-11-20T10:00:00Z","fields":{"status":"placed"}})";

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("each spool file is committed as one batch and moved to done/, oldest name first") {
  TempDir dir;
  dir.write("b.jsonl", kLine + "\n");
  dir.write("a.jsonl", kLine + "\n\n" + kLine + "\n");
  dir.write("c.jsonl.tmp", kLine + "\n");  // still being written: left alone
  RecordingIntake intake;
  const auto scan = SpoolSource(dir.path()).scan(intake);
  CHECK(scan.files == 2);
  CHECK(scan.observations == 3);
  CHECK(scan.rejected == 0);
  REQUIRE(intake.batches.size() == 2);
  CHECK(intake.batches[0].size() == 2);  // a.jsonl
  CHECK(std::filesystem::exists(dir.path() / "done/a.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "done/b.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "c.jsonl.tmp"));
}

TEST_CASE("a spool file with malformed lines goes to failed/ beside a file naming each line and its problem") {
  TempDir dir;
  dir.write("x.jsonl", kLine + "\n{\"type\":\"order\"}\n");
  RecordingIntake intake;
  const auto scan = SpoolSource(dir.path()).scan(intake);
  CHECK(scan.rejected == 1);
  REQUIRE(intake.batches.size() == 1);
  CHECK(intake.batches[0].size() == 1);
  CHECK(std::filesystem::exists(dir.path() / "failed/x.jsonl"));
  CHECK(slurp(dir.path() / "failed/x.jsonl.errors") == "line 2: field 'id' is missing or not a string\n");
  REQUIRE(scan.problems.size() == 1);
  CHECK_THAT(scan.problems[0], Catch::Contains("malformed lines, see"));
}

TEST_CASE("a file whose batch cannot be committed stays for the next scan") {
  TempDir dir;
  dir.write("a.jsonl", kLine + "\n");
  dir.write("b.jsonl", kLine + "\n");
  RecordingIntake intake;
  intake.refuse = true;
  const auto scan = SpoolSource(dir.path()).scan(intake);
  CHECK(scan.files == 0);
  CHECK(std::filesystem::exists(dir.path() / "a.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "b.jsonl"));
  REQUIRE(scan.problems.size() == 1);
  CHECK_THAT(scan.problems[0], Catch::Contains("not committed, left in place to retry: disk full"));
  intake.refuse = false;
  CHECK(SpoolSource(dir.path()).scan(intake).files == 2);
}

TEST_CASE("a file dropped again under the same name never overwrites the earlier one") {
  TempDir dir;
  RecordingIntake intake;
  const SpoolSource spool(dir.path());
  dir.write("a.jsonl", kLine + "\n");
  spool.scan(intake);
  dir.write("a.jsonl", kLine + "\n");
  spool.scan(intake);
  CHECK(std::filesystem::exists(dir.path() / "done/a.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "done/a.jsonl.1"));
}

namespace {

Mapping order_mapping() {
  Mapping m;
  m.type = EntityType::kOrder;
  m.id = "/id";
  m.observed_at = "/updated_at";
  m.fields = {{"status", {"/cancelled", "/state"}, {{"paid", "confirmed"}, {"sent", "shipped"}, {"*", "placed"}}},
              {"customer", {"/customer_id"}, {}},
              {"total", {"/amounts/total"}, {}},
              {"sku", {"/items/0/sku"}, {}}};
  return m;
}

Timestamp at(const char* text) { return *parse_rfc3339(text); }

}  // namespace

TEST_CASE("a mapping turns a foreign record into an observation, with value maps and nested pointers") {
  const nlohmann::json record = {{"id", 1001},
                                 {"updated_at", "2026-11-20T10:00:00+01:00"},
                                 {"state", "sent"},
                                 {"customer_id", 42},
                                 {"amounts", {{"total", 31.4}}},
                                 {"items", {{{"sku", "LAP-1"}}}}};
  std::string error;
  auto o = map_record(order_mapping(), record, Timestamp{}, error);
  INFO(error);
  REQUIRE(o);
  CHECK(o->ref.str() == "order/1001");
  CHECK(o->observed_at == at("2026-11-20T09:00:00Z"));
  CHECK(o->fields["status"] == "shipped");
  CHECK(o->fields["customer"] == "42");  // links are ids: text
  CHECK(o->fields["total"] == 31.4);
  CHECK(o->fields["sku"] == "LAP-1");
  nlohmann::json other = record;
  other["state"] = "weird";
  CHECK(map_record(order_mapping(), other, Timestamp{}, error)->fields["status"] == "placed");  // the "*" default
  other["cancelled"] = nullptr;  // a null is passed over for the next pointer
  CHECK(map_record(order_mapping(), other, Timestamp{}, error)->fields["status"] == "placed");
  other["cancelled"] = "sent";  // the first pointer that finds a value wins
  CHECK(map_record(order_mapping(), other, Timestamp{}, error)->fields["status"] == "shipped");
}

TEST_CASE("one record can become several observations, all or none") {
  Mapping customer;
  customer.type = EntityType::kCustomer;
  customer.id = "/customer_id";
  customer.fields = {{"email", {"/email"}, {}}};
  const nlohmann::json record = {
      {"id", 7}, {"updated_at", "2026-11-20T10:00:00Z"}, {"customer_id", 42}, {"email", "a@example.com"}};
  std::vector<Observation> out;
  std::string error;
  REQUIRE(map_records({order_mapping(), customer}, record, Timestamp{}, out, error));
  REQUIRE(out.size() == 2);
  CHECK(out[1].ref.str() == "customer/42");
  CHECK(out[1].fields["email"] == "a@example.com");
  nlohmann::json anonymous = record;
  anonymous.erase("customer_id");
  CHECK_FALSE(map_records({order_mapping(), customer}, anonymous, Timestamp{}, out, error));
  CHECK(out.size() == 2);
  CHECK(error == "customer mapping: no id at /customer_id");
}

TEST_CASE("a record the mapping cannot read says which field and why") {
  std::string error;
  CHECK_FALSE(map_record(order_mapping(), {{"updated_at", "2026-11-20T10:00:00Z"}}, Timestamp{}, error));
  CHECK(error == "no id at /id");
  CHECK_FALSE(map_record(order_mapping(), {{"id", 1}, {"updated_at", "yesterday"}}, Timestamp{}, error));
  CHECK_THAT(error, Catch::StartsWith("observed_at (/updated_at): 'yesterday' is not an RFC 3339 date-time"));
  Mapping strict = order_mapping();
  strict.fields[0].values.erase("*");
  CHECK_FALSE(
      map_record(strict, {{"id", 1}, {"updated_at", "2026-11-20T10:00:00Z"}, {"state", "weird"}}, Timestamp{}, error));
  CHECK(error == "field 'status': 'weird' is not in its value map, which has no \"*\" default");
}

TEST_CASE("the SQL source reads a shop database page by page and commits each page with its cursor") {
  TempDir dir;
  const auto file = dir.path() / "shop.db";
  {
    SQLite::Database db(file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE orders (id INTEGER, state TEXT, customer_id INTEGER, updated_at TEXT)");
    for (int i = 1; i <= 5; ++i)
      db.exec("INSERT INTO orders VALUES (" + std::to_string(i) + ", 'paid', 7, '2026-11-20T10:0" + std::to_string(i) +
              ":00Z')");
    db.exec("INSERT INTO orders VALUES (NULL, 'paid', 7, '2026-11-20T10:09:00Z')");  // no id: rejected, not stuck
  }
  SourceConfig config;
  config.name = "shop";
  config.type = "sqlite";
  config.query =
      "SELECT id, state, customer_id, updated_at FROM orders WHERE updated_at > :cursor ORDER BY updated_at LIMIT 2";
  config.cursor_column = "updated_at";
  config.mappings = {order_mapping()};
  RecordingIntake intake;
  SqlSource source(config, SqlDatabase::open_sqlite(file));
  const auto poll = source.poll(intake, Timestamp{});
  CHECK(poll.pages == 3);
  CHECK(poll.observations == 5);
  CHECK(poll.rejected == 1);
  CHECK(intake.batches.size() == 3);
  CHECK(intake.cursors["shop"] == "2026-11-20T10:09:00Z");
  // Nothing new: nothing read, nothing committed.
  CHECK(source.poll(intake, Timestamp{}).observations == 0);
  CHECK(intake.batches.size() == 3);
  // A refused commit leaves the cursor where it was.
  {
    SQLite::Database db(file.string(), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO orders VALUES (6, 'sent', 7, '2026-11-20T11:00:00Z')");
  }
  intake.refuse = true;
  CHECK_THAT(source.poll(intake, Timestamp{}).problems.at(0), Catch::Contains("not committed, will retry"));
  CHECK(intake.cursors["shop"] == "2026-11-20T10:09:00Z");
}

TEST_CASE("a row with text that is not UTF-8 or a BLOB is rejected with its reason, and the cursor moves past it") {
  TempDir dir;
  const auto file = dir.path() / "shop.db";
  {
    SQLite::Database db(file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE orders (seq INTEGER, id INTEGER, state TEXT, customer_id INTEGER, updated_at TEXT)");
    db.exec("INSERT INTO orders VALUES (1, 1, 'paid', 7, '2026-11-20T10:01:00Z')");
    db.exec("INSERT INTO orders VALUES (2, 2, CAST(X'706169ff' AS TEXT), 7, '2026-11-20T10:02:00Z')");
    db.exec("INSERT INTO orders VALUES (3, 3, X'00ff', 7, '2026-11-20T10:03:00Z')");
    db.exec("INSERT INTO orders VALUES (4, 4, 'paid', 7, '2026-11-20T10:04:00Z')");
  }
  SourceConfig config;
  config.name = "shop";
  config.type = "sqlite";
  config.query = "SELECT * FROM orders WHERE seq > :cursor ORDER BY seq LIMIT 3";
  config.cursor_column = "seq";  // an integer change counter, from the default start
  config.mappings = {order_mapping()};
  RecordingIntake intake;
  SqlSource source(config, SqlDatabase::open_sqlite(file));
  const auto poll = source.poll(intake, Timestamp{});
  CHECK(poll.observations == 2);
  CHECK(poll.rejected == 2);
  CHECK(intake.cursors["shop"] == "4");
  REQUIRE(poll.problems.size() == 2);
  CHECK_THAT(poll.problems[0], Catch::Contains("column 'state' holds text that is not UTF-8; skipped"));
  CHECK_THAT(poll.problems[1], Catch::Contains("column 'state' is a BLOB, which has no JSON value; skipped"));
  // The next poll starts after the last row and finds nothing new.
  const auto again = source.poll(intake, Timestamp{});
  CHECK(again.observations == 0);
  CHECK(again.problems.empty());
}

TEST_CASE("a broken query is reported, not thrown") {
  TempDir dir;
  const auto file = dir.path() / "shop.db";
  SQLite::Database(file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE).exec("CREATE TABLE t (x)");
  SourceConfig config;
  config.name = "shop";
  config.query = "SELECT * FROM missing WHERE x > :cursor";
  config.cursor_column = "x";
  config.mappings = {order_mapping()};
  RecordingIntake intake;
  const auto poll = SqlSource(config, SqlDatabase::open_sqlite(file)).poll(intake, Timestamp{});
  REQUIRE(poll.problems.size() == 1);
  CHECK_THAT(poll.problems[0], Catch::Contains("query failed") && Catch::Contains("no such table"));
  CHECK_THROWS_AS(SqlDatabase::open_sqlite(dir.path() / "absent.db"), SqlError);
}
