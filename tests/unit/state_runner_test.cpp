#include "store/state_runner.h"

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "postgres/sync_connection.h"
#include "store/pg_store.h"
#include "store/store.h"
#include "support/postgres.h"

using namespace tactd;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// Runs the coroutines on `io` until all have ended (or `limit` passes),
// rethrowing the first exception: a failed REQUIRE inside one fails the test.
void run(asio::io_context& io, std::vector<asio::awaitable<void>> work, std::chrono::seconds limit = 30s) {
  std::size_t done = 0;
  std::exception_ptr failed;
  const std::size_t all = work.size();
  for (auto& w : work)
    asio::co_spawn(io, std::move(w), [&](std::exception_ptr e) {
      if (e && !failed) failed = e;
      ++done;
    });
  const auto until = std::chrono::steady_clock::now() + limit;
  while (done < all && std::chrono::steady_clock::now() < until) io.run_one_for(100ms);
  if (failed) std::rethrow_exception(failed);
  REQUIRE(done == all);
}

Entity entity(const std::string& id, int n) {
  return Entity{EntityRef{EntityType::kOrder, id}, *parse_rfc3339("2026-11-20T10:00:00Z"), {{"n", n}}, std::nullopt};
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds wait) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(wait);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

TEST_CASE("on SQLite the work runs at once, on the caller's stack") {
  const auto store = Store::open_temporary();
  const StateRunner state(store->fibers());
  REQUIRE(state.direct());
  asio::io_context io;
  std::vector<asio::awaitable<void>> work;
  work.push_back([](Store& s, StateRunner runner) -> asio::awaitable<void> {
    const auto put = [&] {
      s.put_entity(entity("A", 1));
      return s.entity(EntityRef{EntityType::kOrder, "A"})->fields.at("n").get<int>();
    };
    const int n = co_await runner.run(put);  // never co_await inside CHECK: it would run twice
    CHECK(n == 1);
  }(*store, state));
  run(io, std::move(work));
}

TEST_CASE("on PostgreSQL a store call waits on a fiber while the loop goes on") {
  test::PgDatabase db;
  asio::io_context io;
  auto store = open_postgres_store(db.conninfo(), io);
  const StateRunner state(store->fibers());
  REQUIRE_FALSE(state.direct());
  // Another session holds the table: the store's read waits for it on the
  // server. Only the loop can let it go (a timer below), so the read ends
  // only if its wait left the loop free.
  pg::SyncConnection holder(db.conninfo());
  REQUIRE(holder.query("BEGIN").ok());
  REQUIRE(holder.query("LOCK TABLE entities IN ACCESS EXCLUSIVE MODE").ok());
  bool released = false;
  std::vector<asio::awaitable<void>> work;
  work.push_back([](Store& s, StateRunner runner, bool& let_go) -> asio::awaitable<void> {
    const auto read = [&] { return s.entity(EntityRef{EntityType::kOrder, "A"}); };
    const auto found = co_await runner.run(read);
    CHECK_FALSE(found);
    CHECK(let_go);  // it came back only after the loop let the lock go
  }(*store, state, released));
  work.push_back([](pg::SyncConnection& h, bool& let_go) -> asio::awaitable<void> {
    co_await sleep_for(300ms);
    let_go = true;
    REQUIRE(h.query("COMMIT").ok());
  }(holder, released));
  run(io, std::move(work));
}

TEST_CASE("on PostgreSQL a store call on the loop outside the runner fails loudly, naming the call") {
  test::PgDatabase db;
  asio::io_context io;
  auto store = open_postgres_store(db.conninfo(), io);
  try {
    store->pending_timers();
    FAIL("no exception");
  } catch (const std::logic_error& e) {
    CHECK(std::string(e.what()).find("count the pending timers") != std::string::npos);
  }
}

TEST_CASE("on PostgreSQL the work of two runners never interleaves, and comes in the order given") {
  test::PgDatabase db;
  asio::io_context io;
  auto store = open_postgres_store(db.conninfo(), io);
  const StateRunner state(store->fibers());
  std::vector<std::string> events;
  std::vector<asio::awaitable<void>> work;
  for (const char* name : {"first", "second", "third"})
    work.push_back(
        [](Store& s, StateRunner runner, std::vector<std::string>& log, std::string who) -> asio::awaitable<void> {
          const auto transact = [&] {
            log.push_back(who + " begins");
            auto tx = s.begin();
            for (int i = 0; i < 5; ++i) {
              const auto stored = tx->entity(EntityRef{EntityType::kOrder, "A"});
              Entity next = entity("A", stored ? stored->fields.at("n").get<int>() + 1 : 1);
              next.version = stored ? stored->version : 0;
              tx->put_entity(next);
            }
            tx->commit();
            log.push_back(who + " ends");
          };
          co_await runner.run(transact);
        }(*store, state, events, name));
  run(io, std::move(work));
  CHECK(events == std::vector<std::string>{"first begins", "first ends", "second begins", "second ends", "third begins",
                                           "third ends"});
  std::vector<asio::awaitable<void>> check;
  check.push_back([](Store& s, StateRunner runner) -> asio::awaitable<void> {
    const auto read = [&] { return s.entity(EntityRef{EntityType::kOrder, "A"})->fields.at("n").get<int>(); };
    const int n = co_await runner.run(read);
    CHECK(n == 15);
  }(*store, state));
  run(io, std::move(check));
}

TEST_CASE("on PostgreSQL a lost connection fails calls as retryable until it is made again") {
  test::PgDatabase db;
  asio::io_context io;
  auto store = open_postgres_store(db.conninfo(), io);
  const StateRunner state(store->fibers());
  pg::SyncConnection admin(db.conninfo());
  std::vector<asio::awaitable<void>> work;
  work.push_back([](Store& s, StateRunner runner, pg::SyncConnection& a, std::string name) -> asio::awaitable<void> {
    const auto count = [&] { return s.pending_timers(); };
    const std::size_t none = co_await runner.run(count);  // connected
    CHECK(none == 0);
    const auto killed =
        a.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                pg::Params(name));
    REQUIRE(killed.ok());
    REQUIRE(killed.rows.size() == 1);
    // Connected again with backoff (100 ms, doubling): within seconds. A
    // call meanwhile fails, retryably.
    bool again = false;
    for (int i = 0; i < 50 && !again; ++i) {
      try {
        again = co_await runner.run(count) == 0;
      } catch (const StoreError& e) {
        CHECK(e.retryable);
      }
      if (!again) co_await sleep_for(100ms);
    }
    CHECK(again);
    // Prepared statements are prepared again on the new connection; a
    // transaction works as before.
    const auto put = [&] {
      auto tx = s.begin();
      tx->put_entity(entity("B", 7));
      tx->commit();
      return s.entity(EntityRef{EntityType::kOrder, "B"})->fields.at("n").get<int>();
    };
    const int n = co_await runner.run(put);
    CHECK(n == 7);
  }(*store, state, admin, db.name()));
  run(io, std::move(work));
}

TEST_CASE("on PostgreSQL a store destroyed with work suspended unwinds it and drops its waiters") {
  test::PgDatabase db;
  asio::io_context io;
  auto store = open_postgres_store(db.conninfo(), io);
  const StateRunner state(store->fibers());
  pg::SyncConnection holder(db.conninfo());
  REQUIRE(holder.query("BEGIN").ok());
  REQUIRE(holder.query("LOCK TABLE entities IN ACCESS EXCLUSIVE MODE").ok());
  bool unwound = false;
  bool answered = false;
  struct Mark {
    bool& flag;
    ~Mark() { flag = true; }
  };
  asio::co_spawn(
      io,
      [](Store& s, StateRunner runner, bool& unwound_flag, bool& answered_flag) -> asio::awaitable<void> {
        const auto read = [&] {
          Mark mark{unwound_flag};
          auto tx = s.begin();
          return tx->entity(EntityRef{EntityType::kOrder, "A"});
        };
        co_await runner.run(read);
        answered_flag = true;
      }(*store, state, unwound, answered),
      [](std::exception_ptr) {});
  for (int i = 0; i < 20; ++i) io.run_one_for(50ms);  // the read now waits for the lock
  REQUIRE_FALSE(unwound);
  store.reset();
  CHECK(unwound);
  CHECK_FALSE(answered);
  REQUIRE(holder.query("ROLLBACK").ok());
}

TEST_CASE("on PostgreSQL a watching store hears of the outbox entries and shared intake other processes commit") {
  test::PgDatabase db;
  asio::io_context io;
  auto store = open_postgres_store(db.conninfo(), io);
  std::vector<Store::Change> heard;
  store->watch([&](Store::Change change) { heard.push_back(change); });
  auto other = open_postgres_store(db.conninfo());  // another replica, or an operator's tactd outbox
  // Runs the loop until `change` is heard (or 10 s pass); what was heard
  // before it is left in `heard`.
  const auto hear = [&](Store::Change change) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::find(heard.begin(), heard.end(), change) == heard.end() && std::chrono::steady_clock::now() < until)
      io.run_one_for(100ms);
    return std::find(heard.begin(), heard.end(), change) != heard.end();
  };
  // The listener connects in the background: a NOTIFY before its LISTEN is
  // not delivered. Knock until it answers.
  pg::SyncConnection knock(db.conninfo());
  for (int i = 0; i < 100 && heard.empty(); ++i) {
    REQUIRE(knock.query("SELECT pg_notify('tactd_intake', '')").ok());
    io.run_one_for(100ms);
  }
  REQUIRE_FALSE(heard.empty());
  const auto t0 = *parse_rfc3339("2026-11-20T10:00:00Z");
  Notification n;
  n.idempotency_key = "k1";
  n.at = t0;
  n.rule = "r";
  n.kind = Kind::kApology;
  n.customer = "c-1";
  n.entity = EntityRef{EntityType::kOrder, "A"};
  n.channel = Channel::kSms;
  n.to = "+31600000000";
  n.body = "Sorry";
  n.locale = "nl";
  n.time_zone = "Europe/Amsterdam";

  SECTION("a new outbox entry, once per commit however many it adds") {
    heard.clear();
    {
      auto tx = other->begin();
      REQUIRE(tx->enqueue(n));
      n.idempotency_key = "k2";
      REQUIRE(tx->enqueue(n));
      tx->commit();
    }
    REQUIRE(hear(Store::Change::kOutbox));
    // A commit that adds nothing (the key is known) tells nothing: the
    // intake after it is heard, and no second outbox change before it.
    REQUIRE_FALSE(other->enqueue(n));
    other->put_intake(5, Observation{EntityRef{EntityType::kOrder, "A"}, t0, {{"customer", "c-1"}}, false}, t0);
    REQUIRE(hear(Store::Change::kIntake));
    CHECK(std::count(heard.begin(), heard.end(), Store::Change::kOutbox) == 1);
  }
  SECTION("an entry an operator makes pending again") {
    REQUIRE(other->enqueue(n));
    const long long id = other->last_enqueued();
    REQUIRE(hear(Store::Change::kOutbox));
    other->record_failure(id, t0, "the provider refused it", std::nullopt);
    heard.clear();
    REQUIRE(other->retry(id, t0 + 1h));
    REQUIRE(hear(Store::Change::kOutbox));
  }
  SECTION("an entry added in a transaction rolled back tells nothing") {
    heard.clear();
    auto tx = other->begin();
    REQUIRE(tx->enqueue(n));
    tx.reset();  // rolled back: nothing was added
    other->put_intake(5, Observation{EntityRef{EntityType::kOrder, "A"}, t0, {{"customer", "c-1"}}, false}, t0);
    REQUIRE(hear(Store::Change::kIntake));
    CHECK(std::count(heard.begin(), heard.end(), Store::Change::kOutbox) == 0);
  }
}
