// The real `tactd run`, started as a process against a spool folder in a
// temporary directory, stopped by its own PID.
#include <catch2/catch.hpp>

#include <SQLiteCpp/SQLiteCpp.h>

#include "support/daemon.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::Daemon;
using tactd::test::drop;
using tactd::test::eventually;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

// A configuration with the shipped rules and templates and a spool source.
std::filesystem::path write_config(const TempDir& dir) {
  std::filesystem::create_directories(dir.path() / "spool");
  return dir.write("tactd.toml", "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                                     "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                                     "\"\nstate = \"state.db\"\n[locale]\ntime_zone = \"Europe/Amsterdam\"\n"
                                     "[[source]]\nname = \"drops\"\ntype = \"spool\"\npath = \"spool\"\n"
                                     "interval = \"1s\"\n");
}

const std::string kObservations =
    R"({"type":"customer","id":"c-1","observed_at":"2026-11-20T09:00:00Z","fields":{"name":"Mia","email":"m@example.com"}}
{"type":"order","id":"A-1","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-1","status":"cancelled","total":12}}
)";

// -1 while the daemon has not yet created its database.
int outbox_rows(const TempDir& dir) {
  try {
    SQLite::Database db((dir.path() / "state.db").string());
    return db.execAndGet("SELECT COUNT(*) FROM outbox").getInt();
  } catch (const SQLite::Exception&) {
    return -1;
  }
}

}  // namespace

TEST_CASE("tactd run commits a spool file and moves it to done/, then stops cleanly on SIGTERM") {
  TempDir dir;
  Daemon daemon(write_config(dir), dir.path() / "log");
  drop(dir.path() / "spool", "a.jsonl", kObservations);
  REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/done/a.jsonl"); }));
  CHECK(daemon.stop() == 0);
  CHECK(outbox_rows(dir) == 1);
  SQLite::Database db((dir.path() / "state.db").string());
  CHECK(db.execAndGet("SELECT rule FROM outbox").getString() == "order-cancelled");
  CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
  const std::string log = slurp(dir.path() / "log");
  CHECK_THAT(log,
             Contains("outbox: queued kind=apology rule=order-cancelled customer=c-1 entity=order/A-1 channel=email"));
  CHECK_THAT(log, Contains("stopped"));
}

TEST_CASE("a stale observation is logged and changes nothing, and the state is readable by its owner only") {
  TempDir dir;
  Daemon daemon(write_config(dir), dir.path() / "log");
  drop(dir.path() / "spool", "a.jsonl", kObservations);
  REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/done/a.jsonl"); }));
  // The shop's feed serves a page from before the cancellation.
  drop(
      dir.path() / "spool", "b.jsonl",
      R"({"type":"order","id":"A-1","observed_at":"2026-11-20T09:30:00Z","fields":{"customer":"c-1","status":"placed"}})"
      "\n");
  REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/done/b.jsonl"); }));
  CHECK(daemon.stop() == 0);
  CHECK_THAT(slurp(dir.path() / "log"), Contains("source: stale observation ignored source=drops entity=order/A-1 "
                                                 "observed_at=2026-11-20T09:30:00Z known=2026-11-20T10:00:00Z"));
  SQLite::Database db((dir.path() / "state.db").string());
  CHECK(db.execAndGet("SELECT json_extract(fields, '$.status') FROM entities WHERE id = 'A-1'").getString() ==
        "cancelled");
  using std::filesystem::perms;
  CHECK((std::filesystem::status(dir.path() / "state.db").permissions() & (perms::group_all | perms::others_all)) ==
        perms::none);
}

TEST_CASE("a spool file with malformed lines goes to failed/ with the reasons, and its good lines count") {
  TempDir dir;
  Daemon daemon(write_config(dir), dir.path() / "log");
  drop(dir.path() / "spool", "b.jsonl", kObservations + "{\"type\":\"order\"}\nnot json\n");
  REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/failed/b.jsonl.errors"); }));
  CHECK(eventually([&] { return std::filesystem::exists(dir.path() / "spool/failed/b.jsonl"); }));
  const std::string errors = slurp(dir.path() / "spool/failed/b.jsonl.errors");
  CHECK_THAT(errors, Contains("line 3: field 'id' is missing or not a string"));
  CHECK_THAT(errors, Contains("line 4: malformed JSON at column 2"));
  CHECK(daemon.stop() == 0);
  CHECK(outbox_rows(dir) == 1);
}

TEST_CASE(
    "a spool line of 75,000 nested arrays or a number out of range is rejected, and the daemon and the good lines go "
    "on") {
  TempDir dir;
  Daemon daemon(write_config(dir), dir.path() / "log");
  const std::string deep = std::string(75000, '[') + std::string(75000, ']');
  drop(dir.path() / "spool", "hostile.jsonl",
       R"({"type":"order","id":"D-1","observed_at":"2026-11-20T10:00:00Z","fields":{"x":)" + deep + "}}\n" +
           R"({"type":"order","id":"D-2","observed_at":"2026-11-20T10:00:00Z","fields":{"total":1e400}})" + "\n" +
           kObservations);
  REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/failed/hostile.jsonl.errors"); }));
  const std::string errors = slurp(dir.path() / "spool/failed/hostile.jsonl.errors");
  CHECK_THAT(errors, Contains("line 1: JSON nested deeper than 64 arrays and objects"));
  CHECK_THAT(errors, Contains("line 2: JSON number out of range"));
  drop(dir.path() / "spool", "later.jsonl", kObservations);  // the daemon still reads its spool
  REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/done/later.jsonl"); }));
  CHECK(daemon.stop() == 0);
  CHECK(outbox_rows(dir) == 1);  // the good lines went through
}

TEST_CASE("after a restart, data seen before produces no new notifications, and timers are still there") {
  TempDir dir;
  const auto config = write_config(dir);
  const std::string order_with_promise =
      R"({"type":"order","id":"L-1","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-1","status":"shipped","promised_by":"2099-01-01T12:00:00Z"}})";
  {
    Daemon daemon(config, dir.path() / "log");
    drop(dir.path() / "spool", "a.jsonl", kObservations + order_with_promise + "\n");
    REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/done/a.jsonl"); }));
    CHECK(daemon.stop() == 0);
  }
  CHECK(outbox_rows(dir) == 1);
  Daemon daemon(config, dir.path() / "log");
  drop(dir.path() / "spool", "a.jsonl", kObservations + order_with_promise + "\n");  // the same data again
  REQUIRE(eventually([&] { return std::filesystem::exists(dir.path() / "spool/done/a.jsonl.1"); }));
  CHECK(daemon.stop() == 0);
  CHECK(outbox_rows(dir) == 1);
  SQLite::Database db((dir.path() / "state.db").string());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM timers WHERE entity = 'order/L-1' AND fired = 0").getInt() == 2);
}

TEST_CASE("tactd run refuses a source folder that does not exist") {
  TempDir dir;
  const auto config = write_config(dir);
  std::filesystem::remove(dir.path() / "spool");
  const std::string command = std::string("'") + TACTD_BINARY + "' run --config '" + config.string() + "' 2>'" +
                              (dir.path() / "err").string() + "'";
  const int raw = std::system(command.c_str());
  CHECK(WEXITSTATUS(raw) == 2);
  CHECK_THAT(slurp(dir.path() / "err"), Contains("source 'drops': ") && Contains("is not a folder"));
}

TEST_CASE("tactd run polls a shop's SQLite database by cursor and resumes from it after a restart") {
  TempDir dir;
  const auto shop = dir.path() / "shop.db";
  {
    SQLite::Database db(shop.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE customers (id TEXT, email TEXT, changed TEXT)");
    db.exec("CREATE TABLE orders (id TEXT, customer TEXT, state TEXT, changed TEXT)");
    db.exec("INSERT INTO customers VALUES ('c-1', 'm@example.com', '2026-11-20T09:00:00Z')");
    db.exec("INSERT INTO orders VALUES ('A-1', 'c-1', 'geannuleerd', '2026-11-20T10:00:00Z')");
  }
  const std::string source = R"(
[[source]]
name = "customers"
type = "sqlite"
path = "shop.db"
interval = "1s"
query = "SELECT id, email, changed FROM customers WHERE changed > :cursor ORDER BY changed"
cursor_column = "changed"
[source.mapping]
type = "customer"
id = "/id"
observed_at = "/changed"
[source.mapping.fields]
email = "/email"

[[source]]
name = "orders"
type = "sqlite"
path = "shop.db"
interval = "1s"
query = "SELECT id, customer, state, changed FROM orders WHERE changed > :cursor ORDER BY changed LIMIT 100"
cursor_column = "changed"
[source.mapping]
type = "order"
id = "/id"
observed_at = "/changed"
[source.mapping.fields]
customer = "/customer"
status = "/state"
[source.mapping.values.status]
geannuleerd = "cancelled"
"*" = "placed"
)";
  const auto config =
      dir.write("tactd.toml", "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                                  "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                                  "\"\nstate = \"state.db\"\n" + source);
  auto cursor_of = [&](const char* name) {
    SQLite::Database db((dir.path() / "state.db").string());
    SQLite::Statement q(db, "SELECT cursor FROM source_cursors WHERE source = ?");
    q.bind(1, name);
    return q.executeStep() ? q.getColumn(0).getString() : std::string();
  };
  {
    Daemon daemon(config, dir.path() / "log");
    REQUIRE(eventually([&] { return outbox_rows(dir) == 1; }));
    CHECK(daemon.stop() == 0);
  }
  CHECK(cursor_of("orders") == "2026-11-20T10:00:00Z");
  {
    SQLite::Database db(shop.string(), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO orders VALUES ('A-2', 'c-1', 'geannuleerd', '2026-11-20T11:00:00Z')");
  }
  Daemon daemon(config, dir.path() / "log");
  REQUIRE(eventually([&] { return outbox_rows(dir) == 2; }));
  CHECK(daemon.stop() == 0);
  CHECK(outbox_rows(dir) == 2);  // A-1 was not read again
  CHECK(cursor_of("orders") == "2026-11-20T11:00:00Z");
}

TEST_CASE("an SQL row that is not UTF-8 or holds a BLOB is skipped with its reason, and the rows after it go through") {
  TempDir dir;
  const auto shop = dir.path() / "shop.db";
  {
    SQLite::Database db(shop.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE changes (seq INTEGER, id TEXT, customer TEXT, email TEXT, state TEXT)");
    db.exec("INSERT INTO changes VALUES (1, 'c-1', NULL, 'm@example.com', NULL)");
    db.exec("INSERT INTO changes VALUES (2, 'B-1', 'c-1', NULL, CAST(X'67656ff6' AS TEXT))");
    db.exec("INSERT INTO changes VALUES (3, 'B-2', 'c-1', NULL, X'00ff')");
    db.exec("INSERT INTO changes VALUES (4, 'A-1', 'c-1', NULL, 'geannuleerd')");
  }
  // An integer change counter, from the default start; customers and orders from one table.
  const std::string source = R"(
[[source]]
name = "customers"
type = "sqlite"
path = "shop.db"
interval = "1s"
query = "SELECT seq, id, email FROM changes WHERE seq > :cursor AND customer IS NULL ORDER BY seq"
cursor_column = "seq"
[source.mapping]
type = "customer"
id = "/id"
[source.mapping.fields]
email = "/email"

[[source]]
name = "orders"
type = "sqlite"
path = "shop.db"
interval = "1s"
query = "SELECT seq, id, customer, state FROM changes WHERE seq > :cursor AND customer IS NOT NULL ORDER BY seq LIMIT 2"
cursor_column = "seq"
[source.mapping]
type = "order"
id = "/id"
[source.mapping.fields]
customer = "/customer"
status = "/state"
[source.mapping.values.status]
geannuleerd = "cancelled"
"*" = "placed"
)";
  const auto config =
      dir.write("tactd.toml", "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                                  "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                                  "\"\nstate = \"state.db\"\n" + source);
  Daemon daemon(config, dir.path() / "log");
  REQUIRE(eventually([&] { return outbox_rows(dir) == 1; }));  // A-1's apology, after the two bad rows
  CHECK(eventually([&] {
    const std::string log = slurp(dir.path() / "log");
    return log.find("column 'state' holds text that is not UTF-8; skipped") != std::string::npos &&
           log.find("column 'state' is a BLOB, which has no JSON value; skipped") != std::string::npos;
  }));
  {
    SQLite::Database db(shop.string(), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO changes VALUES (5, 'A-2', 'c-1', NULL, 'geannuleerd')");
  }
  REQUIRE(eventually([&] { return outbox_rows(dir) == 2; }));  // the source still runs
  CHECK(daemon.stop() == 0);
}
