#include "sources/spool_source.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <SQLiteCpp/SQLiteCpp.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <future>
#include <map>

#include <nlohmann/json.hpp>

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
  const auto scan = SpoolSource(dir.path(), "drops").scan(intake);
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
  const auto scan = SpoolSource(dir.path(), "drops").scan(intake);
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
  const auto scan = SpoolSource(dir.path(), "drops").scan(intake);
  CHECK(scan.files == 0);
  CHECK(std::filesystem::exists(dir.path() / "a.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "b.jsonl"));
  REQUIRE(scan.problems.size() == 1);
  CHECK_THAT(scan.problems[0], Catch::Contains("not committed, left in place to retry: disk full"));
  intake.refuse = false;
  CHECK(SpoolSource(dir.path(), "drops").scan(intake).files == 2);
}

TEST_CASE("a file dropped again under the same name never overwrites the earlier one") {
  TempDir dir;
  RecordingIntake intake;
  SpoolSource spool(dir.path(), "drops");
  dir.write("a.jsonl", kLine + "\n");
  spool.scan(intake);
  dir.write("a.jsonl", kLine + "\n");
  spool.scan(intake);
  CHECK(std::filesystem::exists(dir.path() / "done/a.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "done/a.jsonl.1"));
}

namespace {

// `count` lines of observations of orders A-<first>, A-<first+1>, ...
std::string order_lines(int first, int count) {
  std::string out;
  for (int i = first; i < first + count; ++i)
    out += R"({"type":"order","id":"A-)" + std::to_string(i) +
           R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"status":"placed"}})"
           "\n";
  return out;
}

// The ids committed, in order.
std::vector<std::string> committed_ids(const RecordingIntake& intake) {
  std::vector<std::string> out;
  for (const auto& batch : intake.batches)
    for (const auto& o : batch) out.push_back(o.ref.id);
  return out;
}

std::vector<std::string> order_ids(int first, int count) {
  std::vector<std::string> out;
  for (int i = first; i < first + count; ++i) out.push_back("A-" + std::to_string(i));
  return out;
}

}  // namespace

TEST_CASE("a big spool file is taken in a bounded batch per step, each with the file's progress") {
  TempDir dir;
  const int lines = 2 * static_cast<int>(SpoolSource::kBatchLines) + 10;
  dir.write("big.jsonl", order_lines(1, lines));
  RecordingIntake intake;
  SpoolSource spool(dir.path(), "drops");
  SpoolSource::Scan scan;
  REQUIRE(spool.step(intake, scan));  // the first batch, and the loop's turn
  REQUIRE(intake.batches.size() == 1);
  CHECK(intake.batches[0].size() == SpoolSource::kBatchLines);
  CHECK(std::filesystem::exists(dir.path() / "big.jsonl"));
  const auto progress = nlohmann::json::parse(intake.cursors.at("drops"));
  CHECK(progress["file"] == "big.jsonl");
  CHECK(progress["line"] == SpoolSource::kBatchLines);
  while (spool.step(intake, scan)) {
  }
  CHECK(intake.batches.size() == 3);
  CHECK(scan.observations == lines);
  CHECK(scan.files == 1);
  CHECK(committed_ids(intake) == order_ids(1, lines));
  CHECK(std::filesystem::exists(dir.path() / "done/big.jsonl"));
}

TEST_CASE("a spool file interrupted mid-way resumes after its last committed batch: nothing lost, nothing twice") {
  TempDir dir;
  const int lines = 3 * static_cast<int>(SpoolSource::kBatchLines);
  dir.write("big.jsonl", order_lines(1, lines));
  RecordingIntake intake;
  {
    SpoolSource first(dir.path(), "drops");  // killed after one batch
    SpoolSource::Scan scan;
    REQUIRE(first.step(intake, scan));
  }
  {
    SpoolSource second(dir.path(), "drops");  // a refused batch: the store in trouble
    SpoolSource::Scan scan;
    intake.refuse = true;
    CHECK_FALSE(second.step(intake, scan));
    REQUIRE(scan.problems.size() == 1);
    CHECK_THAT(scan.problems[0], Catch::Contains("not committed, left in place to retry"));
    intake.refuse = false;
  }
  REQUIRE(intake.batches.size() == 1);
  const auto scan = SpoolSource(dir.path(), "drops").scan(intake);
  CHECK(scan.observations == lines - static_cast<int>(SpoolSource::kBatchLines));
  CHECK(committed_ids(intake) == order_ids(1, lines));
  CHECK(std::filesystem::exists(dir.path() / "done/big.jsonl"));
  // The same name dropped again is another file: read from its start.
  dir.write("big.jsonl", order_lines(1, 5));
  CHECK(SpoolSource(dir.path(), "drops").scan(intake).observations == 5);
}

TEST_CASE("malformed lines in any batch of a file, before and after a restart, are all named by line number") {
  TempDir dir;
  const int batch = static_cast<int>(SpoolSource::kBatchLines);
  const std::string bad = "{\"type\":\"order\"}\n";
  // Line 3 is bad (first batch), and line batch + 6 (second batch).
  dir.write("x.jsonl", order_lines(1, 2) + bad + order_lines(3, batch + 2) + bad + order_lines(batch + 5, 10));
  RecordingIntake intake;
  {
    SpoolSource first(dir.path(), "drops");
    SpoolSource::Scan scan;
    REQUIRE(first.step(intake, scan));
    CHECK(scan.rejected == 1);
  }
  const auto scan = SpoolSource(dir.path(), "drops").scan(intake);
  CHECK(scan.rejected == 1);  // the one of this run; the earlier one is reported again in the file
  CHECK(committed_ids(intake) == order_ids(1, batch + 14));
  CHECK(std::filesystem::exists(dir.path() / "failed/x.jsonl"));
  const std::string expected = "line 3: field 'id' is missing or not a string\nline " + std::to_string(batch + 6) +
                               ": field 'id' is missing or not a string\n";
  CHECK(slurp(dir.path() / "failed/x.jsonl.errors") == expected);
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

namespace {

// Runs one poll to its end on a loop of its own.
SqlSource::Poll run_poll(SqlSource& source, Intake& intake) {
  boost::asio::io_context io;
  std::optional<SqlSource::Poll> out;
  boost::asio::co_spawn(io, source.poll(intake, Timestamp{}), [&](std::exception_ptr failure, SqlSource::Poll poll) {
    if (failure) std::rethrow_exception(failure);
    out = std::move(poll);
  });
  io.run();
  REQUIRE(out);
  return *out;
}

}  // namespace

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
  const auto poll = run_poll(source, intake);
  CHECK(poll.pages == 3);
  CHECK(poll.observations == 5);
  CHECK(poll.rejected == 1);
  CHECK(intake.batches.size() == 3);
  CHECK(intake.cursors["shop"] == "2026-11-20T10:09:00Z");
  // Nothing new: nothing read, nothing committed.
  CHECK(run_poll(source, intake).observations == 0);
  CHECK(intake.batches.size() == 3);
  // A refused commit leaves the cursor where it was.
  {
    SQLite::Database db(file.string(), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO orders VALUES (6, 'sent', 7, '2026-11-20T11:00:00Z')");
  }
  intake.refuse = true;
  CHECK_THAT(run_poll(source, intake).problems.at(0), Catch::Contains("not committed, will retry"));
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
  const auto poll = run_poll(source, intake);
  CHECK(poll.observations == 2);
  CHECK(poll.rejected == 2);
  CHECK(intake.cursors["shop"] == "4");
  REQUIRE(poll.problems.size() == 2);
  CHECK_THAT(poll.problems[0], Catch::Contains("column 'state' holds text that is not UTF-8; skipped"));
  CHECK_THAT(poll.problems[1], Catch::Contains("column 'state' is a BLOB, which has no JSON value; skipped"));
  // The next poll starts after the last row and finds nothing new.
  const auto again = run_poll(source, intake);
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
  SqlSource source(config, SqlDatabase::open_sqlite(file));
  const auto poll = run_poll(source, intake);
  REQUIRE(poll.problems.size() == 1);
  CHECK_THAT(poll.problems[0], Catch::Contains("query failed") && Catch::Contains("no such table"));
  CHECK_THROWS_AS(SqlDatabase::open_sqlite(dir.path() / "absent.db"), SqlError);
}

TEST_CASE("a query without a LIMIT is read in pages of a bounded number of rows") {
  TempDir dir;
  const auto file = dir.path() / "shop.db";
  const int rows = 2 * static_cast<int>(SqlSource::kPageRows) + 5;
  {
    SQLite::Database db(file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE orders (seq INTEGER PRIMARY KEY, state TEXT)");
    db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(rows) +
            ") INSERT INTO orders SELECT i, 'paid' FROM n");
  }
  SourceConfig config;
  config.name = "shop";
  config.query = "SELECT seq AS id, state FROM orders WHERE seq > :cursor ORDER BY seq";
  config.cursor_column = "id";
  config.mappings = {order_mapping()};
  config.mappings[0].observed_at.clear();
  RecordingIntake intake;
  SqlSource source(config, SqlDatabase::open_sqlite(file));
  const auto poll = run_poll(source, intake);
  CHECK(poll.observations == rows);
  REQUIRE(intake.batches.size() == 3);
  CHECK(intake.batches[0].size() == SqlSource::kPageRows);
  CHECK(intake.cursors["shop"] == std::to_string(rows));
}

namespace {

// A database whose query waits until the test opens the gate, as a slow
// query or one waiting for a shop's writer would.
class GatedDatabase final : public SqlDatabase {
 public:
  std::promise<void> started;
  std::promise<void> gate;

  std::vector<nlohmann::json> rows(const std::string&, const std::string& cursor, std::size_t) override {
    if (!cursor.empty()) return {};
    started.set_value();
    // Without a worker thread the loop could never open the gate: fail, not hang.
    if (gate.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready)
      throw SqlError("the gate was never opened: the query held the loop");
    return {{{"id", 1}, {"state", "paid"}}};
  }
  void interrupt() override {}
};

}  // namespace

TEST_CASE("the operator's query runs off the loop: the loop goes on while it waits, then the page commits") {
  auto database = std::make_unique<GatedDatabase>();
  GatedDatabase& gated = *database;
  auto started = gated.started.get_future();
  SourceConfig config;
  config.name = "shop";
  config.query = "SELECT * FROM orders WHERE seq > :cursor";
  config.cursor_column = "id";
  config.mappings = {order_mapping()};
  config.mappings[0].observed_at.clear();
  RecordingIntake intake;
  SqlSource source(config, std::move(database));
  boost::asio::io_context io;
  std::vector<std::string> order;
  std::optional<SqlSource::Poll> poll;
  boost::asio::co_spawn(io, source.poll(intake, Timestamp{}), [&](std::exception_ptr failure, SqlSource::Poll p) {
    if (failure) std::rethrow_exception(failure);
    order.push_back("poll done");
    poll = std::move(p);
  });
  // Another task of the loop (a push, a timer): it sees the query running,
  // does its work, and lets the query finish.
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        boost::asio::steady_timer tick(io);
        while (started.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
          tick.expires_after(std::chrono::milliseconds(1));
          co_await tick.async_wait(boost::asio::use_awaitable);
        }
        order.push_back("loop served while the query ran");
        gated.gate.set_value();
      },
      [](std::exception_ptr failure) {
        if (failure) std::rethrow_exception(failure);
      });
  io.run();
  REQUIRE(poll);
  CHECK(poll->problems.empty());
  CHECK(poll->observations == 1);
  CHECK(order == std::vector<std::string>{"loop served while the query ran", "poll done"});
  CHECK(intake.cursors["shop"] == "1");
}

TEST_CASE("a query that waits for a shop's writer holds only its source, and reads once the writer is done") {
  TempDir dir;
  const auto file = dir.path() / "shop.db";
  SQLite::Database writer(file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  writer.exec("CREATE TABLE orders (seq INTEGER PRIMARY KEY, state TEXT)");
  writer.exec("INSERT INTO orders VALUES (1, 'paid')");
  SourceConfig config;
  config.name = "shop";
  config.query = "SELECT seq AS id, state FROM orders WHERE seq > :cursor ORDER BY seq";
  config.cursor_column = "id";
  config.mappings = {order_mapping()};
  config.mappings[0].observed_at.clear();
  RecordingIntake intake;
  SqlSource source(config, SqlDatabase::open_sqlite(file));
  writer.exec("BEGIN EXCLUSIVE");  // the shop's writer: readers wait (busy timeout)
  writer.exec("INSERT INTO orders VALUES (2, 'paid')");
  boost::asio::io_context io;
  std::optional<SqlSource::Poll> poll;
  boost::asio::co_spawn(io, source.poll(intake, Timestamp{}), [&](std::exception_ptr failure, SqlSource::Poll p) {
    if (failure) std::rethrow_exception(failure);
    poll = std::move(p);
  });
  // The loop commits the writer's transaction while the query waits for it.
  boost::asio::steady_timer later(io, std::chrono::milliseconds(200));
  bool released = false;
  later.async_wait([&](const boost::system::error_code&) {
    released = !poll.has_value();
    writer.exec("COMMIT");
  });
  io.run();
  CHECK(released);
  REQUIRE(poll);
  CHECK(poll->problems.empty());
  CHECK(poll->observations == 2);
}
