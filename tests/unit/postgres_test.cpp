#include "postgres/connection.h"

#include <catch2/catch.hpp>

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <vector>

#include "postgres/sync_connection.h"

#include "support/postgres.h"

using namespace tactd;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// Runs `work` on `io` until it ends (or `limit` passes), rethrowing what it
// threw: a failed REQUIRE inside the coroutine fails the test.
void run(asio::io_context& io, asio::awaitable<void> work, std::chrono::seconds limit = 30s) {
  bool done = false;
  std::exception_ptr failed;
  asio::co_spawn(io, std::move(work), [&](std::exception_ptr e) {
    failed = e;
    done = true;
  });
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < until) io.run_one_for(100ms);
  if (failed) std::rethrow_exception(failed);
  REQUIRE(done);
}

// Lets the loop run until `ready()` holds, checking every 10 ms, at most `limit`.
asio::awaitable<bool> eventually(std::function<bool()> ready, std::chrono::milliseconds limit = 10s) {
  asio::steady_timer tick(co_await asio::this_coro::executor);
  for (auto waited = 0ms; !ready(); waited += 10ms) {
    if (waited >= limit) co_return false;
    tick.expires_after(10ms);
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return true;
}

pg::ConnectionOptions options_for(const test::PgDatabase& db) {
  pg::ConnectionOptions options;
  options.conninfo = db.conninfo();
  options.reconnect_min = 10ms;
  options.reconnect_max = 200ms;
  return options;
}

std::string describe(const pg::Result& result) {
  return result.error ? std::string(pg::to_string(result.error->kind)) + " " + result.error->sqlstate + ": " +
                            result.error->message
                      : "ok";
}

}  // namespace

TEST_CASE("a statement runs with bound parameters and gives typed rows") {
  test::PgDatabase db;
  asio::io_context io;
  auto conn = pg::Connection::open(io, options_for(db));
  run(io, [&]() -> asio::awaitable<void> {
    auto r = co_await conn->query(
        "SELECT $1::int8 + 1 AS next, $2::text AS name, $3::bool, NULL::text, 1.5::float8, "
        "12.50::numeric",
        pg::Params(std::int64_t{41}, "Trattoria", true));
    INFO(describe(r));
    REQUIRE(r.ok());
    REQUIRE(r.rows.size() == 1);
    CHECK(r.columns[0] == "next");
    CHECK(r.rows[0].integer(0) == 42);
    CHECK(r.rows[0].text(1) == "Trattoria");
    CHECK(r.rows[0].boolean(2));
    CHECK(r.rows[0].is_null(3));
    CHECK(r.rows[0].real(4) == 1.5);
    CHECK(r.rows[0].text(5) == "12.50");  // numeric stays text: no precision lost

    // A parameter is data, never SQL.
    const std::string hostile = "x'); DROP TABLE notes; --";
    {
      auto r1 = co_await conn->query("CREATE TABLE notes (body text)");
      INFO(describe(r1));
      REQUIRE(r1.ok());
    }
    auto inserted = co_await conn->query("INSERT INTO notes VALUES ($1), ($2)", pg::Params(hostile, std::nullopt));
    INFO(describe(inserted));
    CHECK(inserted.affected == 2);
    auto back = co_await conn->query("SELECT body FROM notes ORDER BY body NULLS LAST");
    REQUIRE(back.rows.size() == 2);
    CHECK(back.rows[0].text(0) == hostile);
    CHECK(back.rows[1].is_null(0));
  }());
}

TEST_CASE("a second notification with the same idempotency key is a unique violation, not worth retrying") {
  test::PgDatabase db;
  asio::io_context io;
  auto conn = pg::Connection::open(io, options_for(db));
  run(io, [&]() -> asio::awaitable<void> {
    {
      auto r2 = co_await conn->query("CREATE TABLE outbox (idempotency_key text PRIMARY KEY, body text NOT NULL)");
      INFO(describe(r2));
      REQUIRE(r2.ok());
    }
    const char* insert = "INSERT INTO outbox VALUES ($1, $2)";
    {
      auto r3 = co_await conn->query(insert, pg::Params("apology/A-1001/1", "sorry"));
      INFO(describe(r3));
      REQUIRE(r3.ok());
    }
    auto again = co_await conn->query(insert, pg::Params("apology/A-1001/1", "sorry"));
    REQUIRE(again.error);
    CHECK(again.error->kind == pg::ErrorKind::unique_violation);
    CHECK(again.error->sqlstate == "23505");
    CHECK_FALSE(again.error->retryable());
    CHECK_THAT(again.error->message, Catch::Contains("outbox_pkey"));

    auto null_body = co_await conn->query(insert, pg::Params("apology/A-1002/1", std::nullopt));
    REQUIRE(null_body.error);
    CHECK(null_body.error->kind == pg::ErrorKind::constraint_violation);
    CHECK(null_body.error->sqlstate == "23502");
    CHECK_FALSE(null_body.error->retryable());

    auto typo = co_await conn->query("SELEKT 1");
    REQUIRE(typo.error);
    CHECK(typo.error->kind == pg::ErrorKind::syntax);
    CHECK(typo.error->sqlstate == "42601");
    CHECK_FALSE(typo.error->retryable());

    // The connection is still good after each error.
    {
      auto r4 = co_await conn->query("SELECT 1");
      INFO(describe(r4));
      CHECK(r4.ok());
    }
  }());
}

TEST_CASE("two serializable transactions that each read what the other writes: one fails, retryably") {
  test::PgDatabase db;
  asio::io_context io;
  auto first = pg::Connection::open(io, options_for(db));
  auto second = pg::Connection::open(io, options_for(db));
  run(io, [&]() -> asio::awaitable<void> {
    {
      auto r5 = co_await first->query("CREATE TABLE shifts (doctor text, on_call bool)");
      INFO(describe(r5));
      REQUIRE(r5.ok());
    }
    {
      auto r6 = co_await first->query("INSERT INTO shifts VALUES ('alice', true), ('bob', true)");
      INFO(describe(r6));
      REQUIRE(r6.ok());
    }

    // Write skew: each sees two on call and takes one off; together they leave none.
    auto a = co_await first->begin(pg::Isolation::serializable);
    auto b = co_await second->begin(pg::Isolation::serializable);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    {
      auto r7 = co_await a.query("SELECT count(*) FROM shifts WHERE on_call");
      INFO(describe(r7));
      CHECK(r7.rows[0].integer(0) == 2);
    }
    {
      auto r8 = co_await b.query("SELECT count(*) FROM shifts WHERE on_call");
      INFO(describe(r8));
      CHECK(r8.rows[0].integer(0) == 2);
    }
    {
      auto r9 = co_await a.query("UPDATE shifts SET on_call = false WHERE doctor = $1", pg::Params("alice"));
      INFO(describe(r9));
      CHECK(r9.ok());
    }
    auto b_update = co_await b.query("UPDATE shifts SET on_call = false WHERE doctor = $1", pg::Params("bob"));
    auto a_commit = co_await a.commit();
    INFO(describe(a_commit));
    CHECK(a_commit.ok());
    pg::Result b_commit = b_update;
    if (b_update.ok()) b_commit = co_await b.commit();
    INFO(describe(b_commit));
    REQUIRE(b_commit.error);
    CHECK(b_commit.error->kind == pg::ErrorKind::serialization_failure);
    CHECK(b_commit.error->sqlstate == "40001");
    CHECK(b_commit.error->retryable());
    if (!b_update.ok()) {
      auto rolled_back = co_await b.rollback();
      CHECK(rolled_back.ok());
    }

    // Nothing of the failed one is stored; the connection serves the next statement.
    {
      auto r10 = co_await second->query("SELECT count(*) FROM shifts WHERE on_call");
      INFO(describe(r10));
      CHECK(r10.rows[0].integer(0) == 1);
    }
  }());
}

TEST_CASE("statements outside a transaction wait for it, and an abandoned transaction rolls back") {
  test::PgDatabase db;
  asio::io_context io;
  auto conn = pg::Connection::open(io, options_for(db));
  run(io, [&]() -> asio::awaitable<void> {
    {
      auto r11 = co_await conn->query("CREATE TABLE events (id int)");
      INFO(describe(r11));
      REQUIRE(r11.ok());
    }
    std::vector<std::string> order;
    {
      auto txn = co_await conn->begin();
      REQUIRE(txn.ok());
      // Asked for while the transaction holds the connection: runs after COMMIT, and sees its row.
      std::int64_t seen = -1;
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            auto r = co_await conn->query("SELECT count(*) FROM events");
            seen = r.rows.at(0).integer(0);
            order.push_back("outside");
          },
          [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
          });
      {
        auto r12 = co_await txn.query("INSERT INTO events VALUES (1)");
        INFO(describe(r12));
        CHECK(r12.ok());
      }
      order.push_back("inside");
      {
        auto r13 = co_await txn.commit();
        INFO(describe(r13));
        CHECK(r13.ok());
      }
      {
        const bool happened = co_await eventually([&] { return seen >= 0; });
        CHECK(happened);
      }
      CHECK(seen == 1);
    }
    CHECK(order == std::vector<std::string>{"inside", "outside"});
    {
      auto txn = co_await conn->begin();
      {
        auto r14 = co_await txn.query("INSERT INTO events VALUES (2)");
        INFO(describe(r14));
        CHECK(r14.ok());
      }
    }  // dropped without commit
    {
      auto r15 = co_await conn->query("SELECT count(*) FROM events");
      INFO(describe(r15));
      CHECK(r15.rows[0].integer(0) == 1);
    }
  }());
}

TEST_CASE("many coroutines share one connection: each statement runs once and transactions never interleave") {
  test::PgDatabase db;
  asio::io_context io;
  auto conn = pg::Connection::open(io, options_for(db));
  constexpr int kWriters = 40;
  int finished = 0;
  std::vector<std::string> problems;
  run(io, [&]() -> asio::awaitable<void> {
    auto created = co_await conn->query("CREATE TABLE ledger (writer int, step int)");
    REQUIRE(created.ok());
    for (int writer = 0; writer < kWriters; ++writer) {
      asio::co_spawn(
          io,
          [&, writer]() -> asio::awaitable<void> {
            if (writer % 2 == 0) {  // a plain insert
              auto r = co_await conn->query("INSERT INTO ledger VALUES ($1, 0)", pg::Params(writer));
              if (!r.ok()) problems.push_back(describe(r));
            } else {  // a transaction of two inserts that must see only its own rows in between
              auto txn = co_await conn->begin(pg::Isolation::serializable);
              if (!txn.ok()) problems.push_back(txn.error()->message);
              for (int step = 0; step < 2 && txn.ok(); ++step) {
                auto r = co_await txn.query("INSERT INTO ledger VALUES ($1, $2)", pg::Params(writer, step));
                if (!r.ok()) problems.push_back(describe(r));
              }
              auto mine = co_await txn.query("SELECT count(*) FROM ledger WHERE writer = $1", pg::Params(writer));
              if (!mine.ok() || mine.rows.at(0).integer(0) != 2) problems.push_back("writer " + std::to_string(writer));
              auto committed = co_await txn.commit();
              if (!committed.ok()) problems.push_back(describe(committed));
            }
            ++finished;
          },
          [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
          });
    }
    const bool all = co_await eventually([&] { return finished == kWriters; });
    CHECK(all);
    CHECK(problems.empty());
    auto total = co_await conn->query("SELECT count(*), count(DISTINCT (writer, step)) FROM ledger");
    REQUIRE(total.ok());
    CHECK(total.rows[0].integer(0) == kWriters / 2 + kWriters);  // 20 single rows, 20 transactions of two
    CHECK(total.rows[0].integer(1) == total.rows[0].integer(0));
  }());
}

TEST_CASE("a NOTIFY reaches the handler of the connection that listens") {
  test::PgDatabase db;
  std::vector<pg::Notification> received;
  asio::io_context io;
  auto listener_options = options_for(db);
  listener_options.on_notification = [&](const pg::Notification& n) { received.push_back(n); };
  auto listener = pg::Connection::open(io, listener_options);
  auto sender = pg::Connection::open(io, options_for(db));
  run(io, [&]() -> asio::awaitable<void> {
    auto listened = co_await listener->listen("outbox_due");
    INFO(describe(listened));
    REQUIRE(listened.ok());
    {
      auto r16 = co_await sender->query("SELECT pg_notify($1, $2)", pg::Params("outbox_due", "email"));
      INFO(describe(r16));
      REQUIRE(r16.ok());
    }
    // Idle, the listener is woken by the server alone.
    {
      const bool happened = co_await eventually([&] { return !received.empty(); });
      CHECK(happened);
    }
    REQUIRE(received.size() == 1);
    CHECK(received[0].channel == "outbox_due");
    CHECK(received[0].payload == "email");
    CHECK(received[0].sender_pid == sender->backend_pid());

    auto bad = co_await listener->listen("x\"; DROP TABLE y; --");
    REQUIRE(bad.error);
    CHECK_THAT(bad.error->message, Catch::Contains("is not a channel name"));
  }());
}

TEST_CASE("a connection the server terminates is reported, made again, and listens again") {
  test::PgDatabase db;
  std::vector<pg::ConnectionEvent> events;
  std::vector<pg::Notification> received;
  asio::io_context io;
  auto options = options_for(db);
  options.on_event = [&](const pg::ConnectionEvent& e) { events.push_back(e); };
  options.on_notification = [&](const pg::Notification& n) { received.push_back(n); };
  auto conn = pg::Connection::open(io, options);
  auto admin = pg::Connection::open(io, options_for(db));
  run(io, [&]() -> asio::awaitable<void> {
    {
      auto r17 = co_await conn->listen("wake");
      INFO(describe(r17));
      REQUIRE(r17.ok());
    }
    const int first_pid = conn->backend_pid();
    REQUIRE(first_pid != 0);

    // Idle when killed.
    {
      auto r18 = co_await admin->query("SELECT pg_terminate_backend($1)", pg::Params(first_pid));
      INFO(describe(r18));
      REQUIRE(r18.ok());
    }
    {
      const bool happened = co_await eventually([&] { return events.size() >= 3; });  // up, lost, up
      CHECK(happened);
    }
    REQUIRE(events.size() >= 3);
    CHECK(events[0].up);
    CHECK_FALSE(events[1].up);
    CHECK(events.back().up);
    auto after = co_await conn->query("SELECT pg_backend_pid()");
    INFO(describe(after));
    REQUIRE(after.ok());
    const auto second_pid = after.rows[0].integer(0);
    CHECK(second_pid != first_pid);
    {
      auto r19 = co_await admin->query("SELECT pg_notify('wake', 'again')");
      INFO(describe(r19));
      REQUIRE(r19.ok());
    }
    {
      const bool happened = co_await eventually([&] { return !received.empty(); });
      CHECK(happened);
    }

    // Busy when killed: the statement in flight fails as a lost connection, worth retrying.
    const auto busy_pid = second_pid;
    bool killed = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await eventually([&] { return false; }, 200ms);  // the sleep below has started
          auto r = co_await admin->query("SELECT pg_terminate_backend($1)", pg::Params(busy_pid));
          killed = r.ok();
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    auto cut = co_await conn->query("SELECT pg_sleep(10)");
    {  // the lost connection may be noticed before the admin's answer arrives
      const bool answered = co_await eventually([&] { return killed; });
      CHECK(answered);
    }
    REQUIRE(cut.error);
    INFO(describe(cut));
    CHECK(cut.error->kind == pg::ErrorKind::connection);
    CHECK(cut.error->retryable());
    {
      const bool happened = co_await eventually([&] { return conn->connected(); });
      CHECK(happened);
    }
    {
      auto r20 = co_await conn->query("SELECT 1");
      INFO(describe(r20));
      CHECK(r20.ok());
    }
  }());
}

TEST_CASE("a long statement does not hold up the loop") {
  test::PgDatabase db;
  asio::io_context io;
  auto conn = pg::Connection::open(io, options_for(db));
  run(io, [&]() -> asio::awaitable<void> {
    auto connected = co_await conn->query("SELECT 1");
    REQUIRE(connected.ok());
    int ticks = 0;
    bool sleeping = true;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          asio::steady_timer tick(io);
          while (sleeping) {
            tick.expires_after(20ms);
            co_await tick.async_wait(asio::use_awaitable);
            ++ticks;
          }
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    const auto start = std::chrono::steady_clock::now();
    auto slept = co_await conn->query("SELECT pg_sleep(0.5)");
    sleeping = false;
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(slept.ok());
    CHECK(took >= 500ms);
    // 25 ticks of 20 ms fit in 0.5 s; a loaded machine may lose some, a blocked loop would give none.
    INFO(ticks << " ticks in " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(ticks >= 10);
  }());
}

TEST_CASE("a server that is not there fails the waiting statements as retryable, and is tried again") {
  std::vector<pg::ConnectionEvent> events;
  asio::io_context io;
  pg::ConnectionOptions options;
  options.conninfo = "host=127.0.0.1 port=1 user=tactd dbname=none";  // nothing listens on port 1
  options.reconnect_min = 10ms;
  options.on_event = [&](const pg::ConnectionEvent& e) { events.push_back(e); };
  auto conn = pg::Connection::open(io, options);
  run(io, [&]() -> asio::awaitable<void> {
    auto r = co_await conn->query("SELECT 1");
    REQUIRE(r.error);
    INFO(describe(r));
    CHECK(r.error->kind == pg::ErrorKind::connection);
    CHECK(r.error->retryable());
    CHECK_THAT(r.error->message, Catch::Contains("127.0.0.1"));
    {
      const bool happened = co_await eventually([&] { return events.size() >= 2; });
      CHECK(happened);
    }
    CHECK_FALSE(events.back().up);
    CHECK(events.back().attempt >= 2);
    CHECK_FALSE(conn->connected());
  }());
}

TEST_CASE("the blocking connection for command-line verbs binds and classifies the same way") {
  test::PgDatabase db;
  pg::SyncConnection conn(db.conninfo());
  REQUIRE_FALSE(conn.error());
  REQUIRE(conn.query("CREATE TABLE keys (k text PRIMARY KEY)").ok());
  CHECK(conn.query("INSERT INTO keys VALUES ($1)", pg::Params("a")).affected == 1);
  auto again = conn.query("INSERT INTO keys VALUES ($1)", pg::Params("a"));
  REQUIRE(again.error);
  CHECK(again.error->kind == pg::ErrorKind::unique_violation);
  CHECK(conn.query("SELECT k FROM keys").rows.at(0).text(0) == "a");

  pg::SyncConnection nowhere("host=127.0.0.1 port=1 user=tactd dbname=none connect_timeout=5");
  REQUIRE(nowhere.error());
  CHECK(nowhere.error()->retryable());
  CHECK_FALSE(nowhere.query("SELECT 1").ok());
}

TEST_CASE("SQLSTATEs are classified by whether retrying the transaction can help") {
  CHECK(pg::classify_sqlstate("40001") == pg::ErrorKind::serialization_failure);
  CHECK(pg::classify_sqlstate("40P01") == pg::ErrorKind::deadlock);
  CHECK(pg::classify_sqlstate("08006") == pg::ErrorKind::connection);
  CHECK(pg::classify_sqlstate("57P01") == pg::ErrorKind::connection);
  CHECK(pg::classify_sqlstate("23505") == pg::ErrorKind::unique_violation);
  CHECK(pg::classify_sqlstate("23503") == pg::ErrorKind::constraint_violation);
  CHECK(pg::classify_sqlstate("42P01") == pg::ErrorKind::syntax);
  CHECK(pg::classify_sqlstate("22P02") == pg::ErrorKind::other);
  CHECK(pg::classify_sqlstate("23505", true) == pg::ErrorKind::connection);
  CHECK(pg::Error{pg::ErrorKind::deadlock, "40P01", ""}.retryable());
  CHECK_FALSE(pg::Error{pg::ErrorKind::other, "22P02", ""}.retryable());
}
