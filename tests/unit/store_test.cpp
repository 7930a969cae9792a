#include "store/store.h"

#include <catch2/catch.hpp>

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "postgres/sync_connection.h"
#include "store/pg_store.h"
#include "support/postgres.h"
#include "support/temp_dir.h"

using namespace tactd;
using tactd::test::TempDir;
using namespace std::chrono_literals;

namespace {

// The schema version a new database gets: the number of migrations.
constexpr int kLatest = 24;

Timestamp at(const char* text) { return *parse_rfc3339(text); }

Entity entity(EntityType type, const char* id, nlohmann::json fields) {
  return Entity{EntityRef{type, id}, at("2026-11-20T10:00:00Z"), std::move(fields), std::nullopt};
}

// Stores `e` over what is stored of it, as a writer that read it first
// (put_entity() is a compare-and-set on the version read).
void put_over(Store& store, Entity e) {
  const auto stored = store.entity(e.ref);
  e.version = stored ? stored->version : 0;
  store.put_entity(e);
}

Notification notification(const char* key, const char* customer, Timestamp when, const char* rule = "r") {
  Notification n;
  n.idempotency_key = key;
  n.at = when;
  n.rule = rule;
  n.kind = Kind::kApology;
  n.customer = customer;
  n.entity = EntityRef{EntityType::kOrder, "A"};
  n.channel = Channel::kSms;
  n.to = "+31600000000";
  n.body = "Sorry — het spijt ons";
  n.locale = "nl";
  n.time_zone = "Europe/Amsterdam";
  return n;
}

enum class Backend { kSqlite, kPostgres };

// A fresh store of `backend`, as the test's only user: a temporary SQLite
// file, or a PostgreSQL database of its own on the CTest run's server
// (support/postgres.h; no server fails the test). Open more stores on the
// same state with open_again().
class FreshStore {
 public:
  explicit FreshStore(Backend backend) : backend_(backend) {
    if (backend == Backend::kPostgres) {
      db_.emplace();
      store_ = open_postgres_store(db_->conninfo());
    } else {
      store_ = Store::open_temporary();
    }
  }
  Backend backend() const { return backend_; }
  Store* operator->() const { return store_.get(); }
  Store& operator*() const { return *store_; }
  // Another connection to the same PostgreSQL database (a second replica);
  // only for kPostgres.
  std::unique_ptr<Store> open_again() const { return open_postgres_store(db_->conninfo()); }
  const std::string& conninfo() const { return db_->conninfo(); }

 private:
  Backend backend_;
  std::optional<test::PgDatabase> db_;  // declared before store_: dropped after it is closed
  std::unique_ptr<Store> store_;
};

const char* name(Backend backend) { return backend == Backend::kSqlite ? "SQLite" : "PostgreSQL"; }

// The backends each case runs on: both, or only the one the environment
// variable TACTD_STORE_TEST_BACKEND names ("sqlite" or "postgresql"), to
// time or debug one.
std::vector<Backend> backends() {
  const char* only = std::getenv("TACTD_STORE_TEST_BACKEND");
  if (only && std::string(only) == "sqlite") return {Backend::kSqlite};
  if (only && std::string(only) == "postgresql") return {Backend::kPostgres};
  return {Backend::kSqlite, Backend::kPostgres};
}

// SQLite's plan for `query`: its steps ("SEARCH outbox USING INDEX ..."), a line each.
std::string query_plan(SQLite::Database& db, const std::string& query) {
  SQLite::Statement plan(db, "EXPLAIN QUERY PLAN " + query);
  std::string steps;
  while (plan.executeStep()) steps += plan.getColumn(3).getString() + "\n";
  return steps;
}

}  // namespace

// Each case below that opens `FreshStore store(GENERATE(...))` runs once per backend.
#define EACH_BACKEND()                                      \
  const Backend backend = GENERATE(from_range(backends())); \
  INFO("backend: " << name(backend));                       \
  FreshStore store(backend)

TEST_CASE("a new database is migrated, and reopening keeps data without migrating again") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  {
    auto store = Store::open(path);
    CHECK(store->schema_version() == kLatest);
    store->put_entity(entity(EntityType::kCustomer, "c-1", {{"name", "Anna"}}));
  }
  auto store = Store::open(path);
  CHECK(store->schema_version() == kLatest);
  REQUIRE(store->entity(EntityRef{EntityType::kCustomer, "c-1"}));
  SQLite::Database db(path.string());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM schema_migrations").getInt() == kLatest);
  CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
}

TEST_CASE("a commit is synced through power loss unless normal sync is asked for") {
  TempDir dir;
  CHECK(Store::open(dir.path() / "full.db")->sync() == Sync::kFull);
  CHECK(Store::open(dir.path() / "normal.db", Sync::kNormal)->sync() == Sync::kNormal);
  CHECK(Store::open_temporary()->sync() == Sync::kNormal);
}

TEST_CASE("a database at an older schema version gets only the missing migrations") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  {
    auto store = Store::open(path);
    store->put_entity(entity(EntityType::kCustomer, "c-1", {{"name", "Anna"}}));
    store->put_entity(entity(EntityType::kOrder, "A", {{"customer", "c-1"}, {"status", "delivered"}}));
  }
  {  // wind the file back to version 1, as an older tactd left it
    SQLite::Database db(path.string(), SQLite::OPEN_READWRITE);
    db.exec(
        "DROP TRIGGER pending_timers_insert; DROP TRIGGER pending_timers_update; DROP TRIGGER pending_timers_delete;");
    db.exec("DROP TABLE pending_timer_count;");  // 24
    db.exec("DROP INDEX outbox_pending;");       // 21, then 20 and before
    db.exec("DROP TABLE replicas; DROP TABLE shard_leases; DROP TABLE source_leases; DROP TABLE intake;");
    db.exec("DROP INDEX outbox_claimable; ALTER TABLE outbox DROP COLUMN lease_until;");
    db.exec("DROP TABLE not_made;");
    db.exec("DROP INDEX entities_customer_phone_key;");  // 23
    db.exec("DROP INDEX entities_customer_email;");
    db.exec(
        "DROP INDEX outbox_action_due; ALTER TABLE outbox DROP COLUMN action; ALTER TABLE outbox DROP COLUMN "
        "action_state;");
    db.exec("ALTER TABLE outbox DROP COLUMN action_answer; ALTER TABLE outbox DROP COLUMN action_attempts;");
    db.exec("ALTER TABLE outbox DROP COLUMN action_next_at; ALTER TABLE outbox DROP COLUMN action_detail;");
    db.exec("ALTER TABLE entities DROP COLUMN version;");
    db.exec("DROP TABLE replies; DROP TABLE opt_outs; DROP TABLE pauses; DROP INDEX outbox_message_ref;");
    db.exec("DROP INDEX outbox_recipient_key; ALTER TABLE outbox DROP COLUMN message_ref;");
    db.exec("ALTER TABLE outbox DROP COLUMN recipient_key;");
    db.exec("DROP TRIGGER child_counts_added; DROP TRIGGER child_counts_moved; DROP TRIGGER child_counts_removed;");
    db.exec("DROP TABLE child_counts; ALTER TABLE entities DROP COLUMN status;");
    db.exec("DROP TABLE timers; DROP INDEX outbox_entity; DROP TABLE source_cursors;");
    db.exec("DROP TABLE delivery_attempts; ALTER TABLE outbox DROP COLUMN next_attempt_at;");
    db.exec("ALTER TABLE outbox DROP COLUMN last_error;");
    db.exec("DROP TABLE outbox_decisions; ALTER TABLE outbox DROP COLUMN event; DROP TABLE waiting_intents;");
    db.exec("ALTER TABLE entities DROP COLUMN first_seen_at;");
    db.exec("DROP INDEX outbox_sending; ALTER TABLE outbox DROP COLUMN sending_since;");
    db.exec("DELETE FROM schema_migrations WHERE version >= 2");
  }
  auto store = Store::open(path);
  CHECK(store->schema_version() == kLatest);
  const auto anna = store->entity(EntityRef{EntityType::kCustomer, "c-1"});
  REQUIRE(anna);
  CHECK(anna->first_seen == anna->observed_at);  // the best that is known of an entity stored before
  CHECK(store->count_children(EntityRef{EntityType::kCustomer, "c-1"}, EntityType::kOrder, "delivered") == 1);
  store->schedule_timer(Timer{"r", EntityRef{EntityType::kOrder, "A"}, at("2026-11-20T11:00:00Z")});
  SQLite::Database db(path.string());
  SQLite::Statement q(db, "SELECT version, description, applied_at FROM schema_migrations ORDER BY version");
  for (int version = 1; version <= kLatest; ++version) {
    REQUIRE(q.executeStep());
    CHECK(q.getColumn(0).getInt() == version);
    CHECK_FALSE(q.getColumn(1).getString().empty());
    CHECK_FALSE(q.getColumn(2).getString().empty());
  }
  CHECK_FALSE(q.executeStep());
}

TEST_CASE("a database from a newer tactd is refused with a clear error") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  Store::open(path);
  {
    SQLite::Database db(path.string(), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO schema_migrations (version, description) VALUES (99, 'future')");
  }
  CHECK_THROWS_WITH(Store::open(path), Catch::Contains("has schema version 99, newer than this tactd knows (" +
                                                       std::to_string(kLatest) + ")"));
}

TEST_CASE("a new database and its -wal and -shm files are readable by their owner only") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  auto store = Store::open(path);
  store->put_entity(entity(EntityType::kCustomer, "c-1", {{"name", "Anna"}, {"email", "anna@example.nl"}}));
  using std::filesystem::perms;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    INFO("state.db" << suffix);
    const auto file = std::filesystem::path(path.string() + suffix);
    REQUIRE(std::filesystem::exists(file));
    const perms mode = std::filesystem::status(file).permissions();
    CHECK((mode & (perms::group_all | perms::others_all)) == perms::none);
    CHECK((mode & perms::owner_read) != perms::none);
  }
}

TEST_CASE("an existing database keeps the mode its operator gave it") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  Store::open(path);
  using std::filesystem::perms;
  std::filesystem::permissions(path, perms::owner_read | perms::owner_write | perms::group_read);
  Store::open(path);
  CHECK(std::filesystem::status(path).permissions() == (perms::owner_read | perms::owner_write | perms::group_read));
}

TEST_CASE("an unopenable database path is a StoreError") {
  TempDir dir;
  CHECK_THROWS_AS(Store::open(dir.path() / "missing-folder" / "state.db"), StoreError);
}

TEST_CASE("entities round-trip with nested fields, lists and unicode") {
  EACH_BACKEND();
  const nlohmann::json fields = {{"name", "Zoë Ünal"},
                                 {"situations", {"payment_difficulty"}},
                                 {"address", {{"city", "Utrecht"}}},
                                 {"total", 31.4}};
  store->put_entity(entity(EntityType::kCustomer, "c-1", fields));
  auto back = store->entity(EntityRef{EntityType::kCustomer, "c-1"});
  REQUIRE(back);
  CHECK(back->fields == fields);
  CHECK(back->observed_at == at("2026-11-20T10:00:00Z"));
  CHECK_FALSE(store->entity(EntityRef{EntityType::kCustomer, "nobody"}));
  put_over(*store, entity(EntityType::kCustomer, "c-1", {{"name", "Zoë"}}));
  CHECK(store->entity(EntityRef{EntityType::kCustomer, "c-1"})->fields == nlohmann::json{{"name", "Zoë"}});
}

TEST_CASE("children are found through their parent: an order's latest shipment, a customer's delivered orders") {
  EACH_BACKEND();
  auto observed = [](Entity e, const char* when) {
    e.observed_at = at(when);
    return e;
  };
  store->put_entity(entity(EntityType::kOrder, "B", {{"customer", "c-1"}, {"status", "delivered"}}));
  store->put_entity(entity(EntityType::kOrder, "A", {{"customer", "c-1"}, {"status", "delivered"}}));
  store->put_entity(entity(EntityType::kOrder, "D", {{"customer", "c-1"}, {"status", "placed"}}));
  store->put_entity(entity(EntityType::kOrder, "C", {{"customer", "c-2"}, {"status", "delivered"}}));
  store->put_entity(observed(entity(EntityType::kShipment, "S2", {{"order", "A"}}), "2026-11-21T10:00:00Z"));
  store->put_entity(observed(entity(EntityType::kShipment, "S1", {{"order", "A"}}), "2026-11-22T10:00:00Z"));
  store->put_entity(observed(entity(EntityType::kShipment, "S3", {{"order", "B"}}), "2026-11-23T10:00:00Z"));
  const EntityRef customer{EntityType::kCustomer, "c-1"};
  CHECK(store->count_children(customer, EntityType::kOrder, "delivered") == 2);
  CHECK(store->count_children(customer, EntityType::kOrder, "placed") == 1);
  CHECK(store->count_children(customer, EntityType::kShipment, "delivered") == 0);
  CHECK(store->count_children(EntityRef{EntityType::kCustomer, "nobody"}, EntityType::kOrder, "delivered") == 0);
  // Counts follow a child that changes status, moves to another parent or is
  // stored again unchanged.
  put_over(*store, entity(EntityType::kOrder, "D", {{"customer", "c-1"}, {"status", "delivered"}}));
  put_over(*store, entity(EntityType::kOrder, "D", {{"customer", "c-1"}, {"status", "delivered"}}));
  put_over(*store, entity(EntityType::kOrder, "C", {{"customer", "c-1"}, {"status", "delivered"}}));
  put_over(*store, entity(EntityType::kOrder, "B", {{"customer", "c-1"}, {"status", 3}}));
  CHECK(store->count_children(customer, EntityType::kOrder, "delivered") == 3);
  CHECK(store->count_children(customer, EntityType::kOrder, "placed") == 0);
  CHECK(store->count_children(EntityRef{EntityType::kCustomer, "c-2"}, EntityType::kOrder, "delivered") == 0);
  const auto shipment = store->latest_child(EntityRef{EntityType::kOrder, "A"}, EntityType::kShipment);
  REQUIRE(shipment);
  CHECK(shipment->ref.str() == "shipment/S1");
  CHECK(shipment->fields == nlohmann::json{{"order", "A"}});
  CHECK_FALSE(store->latest_child(EntityRef{EntityType::kOrder, "D"}, EntityType::kShipment));
}

TEST_CASE("the entity reads the pipeline makes for every observation keep their prepared statements") {
  // SQLite prepares a kept statement again when a value bound to it may
  // change its plan (a type tested against the partial indexes on
  // customers): that cost more than the query itself (issue 12).
  auto store = Store::open_temporary();
  store->put_entity(entity(EntityType::kCustomer, "c-1", {{"email", "a@example.com"}}));
  store->put_entity(entity(EntityType::kOrder, "A", {{"customer", "c-1"}}));
  store->put_entity(entity(EntityType::kShipment, "S1", {{"order", "A"}}));
  for (int round = 0; round < 3; ++round) {
    for (const auto& [parent, type] : {std::pair{EntityRef{EntityType::kOrder, "A"}, EntityType::kShipment},
                                       std::pair{EntityRef{EntityType::kCustomer, "c-1"}, EntityType::kOrder},
                                       std::pair{EntityRef{EntityType::kCustomer, "c-1"}, EntityType::kCustomer}})
      (void)store->latest_child(parent, type);
    for (const EntityType type : {EntityType::kCustomer, EntityType::kOrder, EntityType::kShipment})
      CHECK(store->entities(type, "", 10).size() == 1);
    (void)store->entity(EntityRef{EntityType::kCustomer, "c-1"});
    (void)store->entity(EntityRef{EntityType::kOrder, "A"});
    (void)store->count_children(EntityRef{EntityType::kCustomer, "c-1"}, EntityType::kOrder, "delivered");
  }
  CHECK(store->statements_prepared_again() == 0);
}

TEST_CASE("an entity observed again unchanged keeps its snapshot and moves its time") {
  EACH_BACKEND();
  auto shipment = [](const char* id, const char* when) {
    Entity e = entity(EntityType::kShipment, id, {{"order", "A"}, {"eta", "2026-11-25"}});
    e.observed_at = at(when);
    return e;
  };
  store->put_entity(shipment("S1", "2026-11-21T10:00:00Z"));
  store->put_entity(shipment("S2", "2026-11-22T10:00:00Z"));
  const EntityRef order{EntityType::kOrder, "A"};
  CHECK(store->latest_child(order, EntityType::kShipment)->ref.id == "S2");

  store->touch_entity(*store->entity(EntityRef{EntityType::kShipment, "S1"}), at("2026-11-23T10:00:00Z"));
  const auto s1 = store->entity(EntityRef{EntityType::kShipment, "S1"});
  REQUIRE(s1);
  CHECK(s1->observed_at == at("2026-11-23T10:00:00Z"));
  CHECK(s1->fields == nlohmann::json{{"order", "A"}, {"eta", "2026-11-25"}});
  CHECK(s1->first_seen == at("2026-11-21T10:00:00Z"));
  CHECK(store->latest_child(order, EntityType::kShipment)->ref.id == "S1");
  CHECK(s1->version == 1);  // only its time moved
  // Touching an entity never stored is refused and stores nothing.
  CHECK_THROWS_AS(store->touch_entity(shipment("S9", "2026-11-21T10:00:00Z"), at("2026-11-23T10:00:00Z")), StoreError);
  CHECK_FALSE(store->entity(EntityRef{EntityType::kShipment, "S9"}));
}

TEST_CASE("a snapshot is written back only over the version it was read at: no writer loses another's update") {
  EACH_BACKEND();
  const EntityRef ref{EntityType::kOrder, "A"};
  store->put_entity(entity(EntityType::kOrder, "A", {{"status", "placed"}}));
  const Entity read_by_one = *store->entity(ref);
  const Entity read_by_other = *store->entity(ref);
  CHECK(read_by_one.version == 1);

  Entity shipped = read_by_one;
  shipped.fields["status"] = "shipped";
  store->put_entity(shipped);
  CHECK(store->entity(ref)->version == 2);

  // The other writer built on version 1: its write and its touch are refused.
  Entity cancelled = read_by_other;
  cancelled.fields["status"] = "cancelled";
  CHECK_THROWS_WITH(store->put_entity(cancelled),
                    Catch::Contains("another writer stored it since it was read at version 1"));
  CHECK_THROWS_AS(store->touch_entity(read_by_other, at("2026-11-23T10:00:00Z")), StoreError);
  CHECK(store->entity(ref)->field("status") == "shipped");
  CHECK(store->entity(ref)->version == 2);

  // Two writers that both saw it absent: the second insert is refused.
  CHECK_THROWS_WITH(store->put_entity(entity(EntityType::kOrder, "A", {{"status", "placed"}})),
                    Catch::Contains("as new"));
  // From a fresh read it goes through.
  Entity again = *store->entity(ref);
  again.fields["status"] = "delivered";
  store->put_entity(again);
  CHECK(store->entity(ref)->version == 3);
}

TEST_CASE("a transaction rolls back unless committed") {
  EACH_BACKEND();
  {
    auto tx = store->begin();
    tx->put_entity(entity(EntityType::kOrder, "A", {}));
    CHECK(tx->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z"))));
  }
  CHECK_FALSE(store->entity(EntityRef{EntityType::kOrder, "A"}));
  CHECK(store->outbox().empty());
  {
    auto tx = store->begin();
    tx->put_entity(entity(EntityType::kOrder, "A", {}));
    tx->commit();
  }
  CHECK(store->entity(EntityRef{EntityType::kOrder, "A"}));
}

TEST_CASE("transactions do not nest, and a new one can begin once the old one is gone") {
  EACH_BACKEND();
  {
    auto tx = store->begin();
    CHECK_THROWS_WITH(store->begin(), Catch::Contains("already open"));
    tx->put_entity(entity(EntityType::kOrder, "A", {}));
    tx->commit();
  }
  auto tx = store->begin();
  CHECK(tx->entity(EntityRef{EntityType::kOrder, "A"}));
}

TEST_CASE("calls through a transaction are committed with it, and its reads see its writes") {
  EACH_BACKEND();
  const EntityRef a{EntityType::kOrder, "A"};
  {
    auto tx = store->begin();
    tx->put_entity(entity(EntityType::kOrder, "A", {{"status", "paid"}}));
    REQUIRE(tx->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z"))));
    tx->schedule_timer(Timer{"heads-up", a, at("2026-11-21T10:00:00Z")});
    tx->set_cursor("shop", "page-2");
    // Read through it, its writes are there before the commit.
    REQUIRE(tx->entity(a));
    CHECK(tx->entity(a)->field("status") == "paid");
    CHECK(tx->has_notification("k1"));
    CHECK(tx->pending_timers() == 1);
    CHECK(tx->cursor("shop") == "page-2");
    tx->commit();
  }
  CHECK(store->entity(a));
  CHECK(store->has_notification("k1"));
  CHECK(store->pending_timers() == 1);
  CHECK(store->cursor("shop") == "page-2");
}

TEST_CASE("an entity read again within a transaction is what it last wrote of it, and nothing of a rollback stays") {
  // The SQLite store keeps what a transaction read (the pipeline reads an
  // observation's parent and customer several times): each read must still
  // be the database's row.
  EACH_BACKEND();
  const EntityRef a{EntityType::kOrder, "A"}, b{EntityType::kOrder, "B"};
  store->put_entity(entity(EntityType::kOrder, "A", {{"status", "paid"}}));
  {
    auto tx = store->begin();
    auto read = tx->entity(a);
    REQUIRE(read);
    CHECK_FALSE(tx->entity(b));
    read->fields["status"] = "cancelled";
    tx->put_entity(*read);
    CHECK(tx->entity(a)->field("status") == "cancelled");
    CHECK(tx->entity(a)->version == read->version + 1);
    tx->touch_entity(*tx->entity(a), at("2026-11-21T10:00:00Z"));
    CHECK(tx->entity(a)->observed_at == at("2026-11-21T10:00:00Z"));
    tx->put_entity(entity(EntityType::kOrder, "B", {{"status", "placed"}}));
    CHECK(tx->entity(b));
  }  // rolled back
  {
    auto tx = store->begin();
    REQUIRE(tx->entity(a));
    CHECK(tx->entity(a)->field("status") == "paid");
    CHECK(tx->entity(a)->observed_at == at("2026-11-20T10:00:00Z"));
    CHECK_FALSE(tx->entity(b));
  }
  CHECK(store->entity(a)->field("status") == "paid");
}

TEST_CASE("calls through a transaction are rolled back with it") {
  EACH_BACKEND();
  store->set_cursor("shop", "page-1");
  {
    auto tx = store->begin();
    tx->put_entity(entity(EntityType::kOrder, "A", {}));
    REQUIRE(tx->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z"))));
    tx->schedule_timer(Timer{"heads-up", EntityRef{EntityType::kOrder, "A"}, at("2026-11-21T10:00:00Z")});
    tx->set_cursor("shop", "page-2");
  }  // not committed
  CHECK_FALSE(store->entity(EntityRef{EntityType::kOrder, "A"}));
  CHECK_FALSE(store->has_notification("k1"));
  CHECK(store->pending_timers() == 0);
  CHECK(store->cursor("shop") == "page-1");
}

TEST_CASE("a call on the store while a transaction is open is refused, naming it, and changes nothing") {
  EACH_BACKEND();
  {
    auto tx = store->begin();
    tx->put_entity(entity(EntityType::kOrder, "A", {}));
    CHECK_THROWS_AS(store->put_entity(entity(EntityType::kOrder, "B", {})), std::logic_error);
    CHECK_THROWS_WITH(store->put_entity(entity(EntityType::kOrder, "B", {})),
                      Catch::Contains("store call 'put_entity'") &&
                          Catch::Contains("made outside the open transaction: call it through the Transaction"));
    CHECK_THROWS_WITH(store->entity(EntityRef{EntityType::kOrder, "A"}), Catch::Contains("store call 'entity'"));
    CHECK_THROWS_WITH(store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z"))),
                      Catch::Contains("store call 'enqueue'"));
    // The store's own, no role's: answered all the same.
    CHECK_NOTHROW(store->data_version());
    // The transaction goes on, and has only its own write.
    CHECK(tx->entity(EntityRef{EntityType::kOrder, "A"}));
    CHECK_FALSE(tx->entity(EntityRef{EntityType::kOrder, "B"}));
    tx->commit();
  }
  CHECK(store->entity(EntityRef{EntityType::kOrder, "A"}));
  CHECK_FALSE(store->entity(EntityRef{EntityType::kOrder, "B"}));
  CHECK_FALSE(store->has_notification("k1"));
}

TEST_CASE("once a transaction has ended, the store takes calls again and the transaction none") {
  EACH_BACKEND();
  SECTION("committed") {
    auto tx = store->begin();
    tx->put_entity(entity(EntityType::kOrder, "A", {}));
    tx->commit();
    // Still alive, but ended: the store runs its calls in their own transactions.
    store->put_entity(entity(EntityType::kOrder, "B", {}));
    CHECK(store->entity(EntityRef{EntityType::kOrder, "B"}));
    CHECK_THROWS_WITH(tx->entity(EntityRef{EntityType::kOrder, "A"}),
                      Catch::Contains("store call 'entity' made through a transaction that has ended"));
    CHECK_THROWS_AS(tx->commit(), std::logic_error);
  }
  SECTION("rolled back") {
    {
      auto tx = store->begin();
      tx->put_entity(entity(EntityType::kOrder, "A", {}));
    }
    store->put_entity(entity(EntityType::kOrder, "B", {}));
    CHECK_FALSE(store->entity(EntityRef{EntityType::kOrder, "A"}));
    CHECK(store->entity(EntityRef{EntityType::kOrder, "B"}));
    auto again = store->begin();  // and a new one begins
    CHECK(again->entity(EntityRef{EntityType::kOrder, "B"}));
  }
}

TEST_CASE("a transaction waits for another process's write instead of failing, and sees it") {
  // An operator's `tactd outbox drop` or a backup writing while the daemon
  // commits: the busy timeout must apply, and the daemon's transaction must
  // not go on from a snapshot older than what was committed meanwhile.
  TempDir dir;
  auto store = Store::open(dir.path() / "state.db");
  store->put_entity(entity(EntityType::kOrder, "A", {{"status", "placed"}}));
  SQLite::Database other((dir.path() / "state.db").string(), SQLite::OPEN_READWRITE);
  other.exec("BEGIN IMMEDIATE");
  other.exec("UPDATE entities SET fields = '{\"status\":\"cancelled\"}'");
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{200});  // the other process, still writing
    other.exec("COMMIT");
  });
  {
    auto tx = store->begin();
    CHECK(tx->entity(EntityRef{EntityType::kOrder, "A"})->field("status") == "cancelled");
    tx->put_entity(entity(EntityType::kOrder, "B", {}));
    tx->commit();
  }
  writer.join();
  CHECK(store->entity(EntityRef{EntityType::kOrder, "B"}));
}

TEST_CASE("an idempotency key is enqueued once, a duplicate changes nothing") {
  EACH_BACKEND();
  CHECK(store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z"))));
  Notification again = notification("k1", "c-1", at("2026-11-20T11:00:00Z"));
  again.body = "different";
  CHECK_FALSE(store->enqueue(again));
  const auto entries = store->outbox();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].notification.body == "Sorry — het spijt ons");
  CHECK(entries[0].status == OutboxStatus::kPending);
  CHECK(store->has_notification("k1"));
  CHECK_FALSE(store->has_notification("k2"));
}

TEST_CASE("notifications are found by customer and time, and by rule for cooldowns") {
  EACH_BACKEND();
  store->enqueue(notification("k1", "c-1", at("2026-11-20T08:00:00Z"), "a"));
  store->enqueue(notification("k2", "c-1", at("2026-11-20T09:00:00Z"), "b"));
  store->enqueue(notification("k3", "c-2", at("2026-11-20T09:30:00Z"), "a"));
  store->enqueue(notification("k4", "c-1", at("2026-11-20T10:00:00Z"), "a"));
  const auto since = store->notifications_since("c-1", at("2026-11-20T09:00:00Z"));
  REQUIRE(since.size() == 2);
  CHECK(since[0].idempotency_key == "k2");
  CHECK(since[1].idempotency_key == "k4");
  CHECK(since[1].subject == std::nullopt);
  CHECK(since[1].time_zone == "Europe/Amsterdam");
  auto last = store->last_notification("a", "c-1");
  REQUIRE(last);
  CHECK(last->idempotency_key == "k4");
  CHECK_FALSE(store->last_notification("z", "c-1"));
}

TEST_CASE("a delivered notification becomes contact history") {
  EACH_BACKEND();
  Notification n = notification("k1", "c-1", at("2026-11-20T10:00:00Z"));
  n.channel = Channel::kEmail;
  n.subject = "Sorry";
  store->enqueue(n);
  store->enqueue(notification("k2", "c-1", at("2026-11-20T10:00:00Z")));
  const long long id = store->outbox(OutboxStatus::kPending).front().id;
  store->mark_delivered(id, at("2026-11-20T10:00:05Z"));
  CHECK(store->outbox(OutboxStatus::kPending).size() == 1);
  const auto delivered = store->outbox(OutboxStatus::kDelivered);
  REQUIRE(delivered.size() == 1);
  CHECK(delivered[0].attempts == 1);
  CHECK(delivered[0].notification.subject == "Sorry");
  const auto contacts = store->contacts("c-1");
  REQUIRE(contacts.size() == 1);
  CHECK(contacts[0].at == at("2026-11-20T10:00:05Z"));
  CHECK(contacts[0].channel == Channel::kEmail);
  CHECK(contacts[0].idempotency_key == "k1");
  CHECK_THROWS_AS(store->mark_delivered(999, at("2026-11-20T10:00:05Z")), StoreError);
}

TEST_CASE("due notifications can be asked for one channel, the earliest few") {
  EACH_BACKEND();
  for (int i = 0; i < 5; ++i) {
    Notification n =
        notification(("k" + std::to_string(i)).c_str(), "c-1", at("2026-11-20T10:00:00Z") + std::chrono::minutes{i});
    if (i % 2 == 1) n.channel = Channel::kEmail;
    store->enqueue(n);
  }
  const Timestamp later = at("2026-11-20T11:00:00Z");
  CHECK(store->due_notifications(later).size() == 5);
  const auto sms = store->due_notifications(later, Channel::kSms, 2);
  REQUIRE(sms.size() == 2);
  CHECK(sms[0].notification.idempotency_key == "k0");
  CHECK(sms[1].notification.idempotency_key == "k2");
  const auto email = store->due_notifications(later, Channel::kEmail);
  REQUIRE(email.size() == 2);
  CHECK(email[1].notification.idempotency_key == "k3");
}

TEST_CASE("failed attempts are recorded, a retry waits for its time, and the last goes to the dead letter") {
  EACH_BACKEND();
  store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z")));
  const long long id = store->outbox().front().id;
  store->record_failure(id, at("2026-11-20T10:00:01Z"), "503: busy", at("2026-11-20T10:00:30Z"));
  CHECK(store->due_notifications(at("2026-11-20T10:00:29Z")).empty());
  CHECK(store->next_notification() == at("2026-11-20T10:00:30Z"));
  const auto due = store->due_notifications(at("2026-11-20T10:00:30Z"));
  REQUIRE(due.size() == 1);
  CHECK(due[0].attempts == 1);
  CHECK(due[0].next_attempt == at("2026-11-20T10:00:30Z"));
  CHECK(due[0].last_error == "503: busy");
  CHECK(due[0].notification.at == at("2026-11-20T10:00:00Z"));  // the due time stays, for caps and history

  store->record_failure(id, at("2026-11-20T10:00:31Z"), "400: invalid number", std::nullopt);
  CHECK(store->outbox(OutboxStatus::kDead).size() == 1);
  CHECK(store->due_notifications(at("2026-11-21T00:00:00Z")).empty());
  const auto attempts = store->attempts(id);
  REQUIRE(attempts.size() == 2);
  CHECK(attempts[0].number == 1);
  CHECK(attempts[0].outcome == "retry");
  CHECK(attempts[1].outcome == "dead");
  CHECK(attempts[1].detail == "400: invalid number");

  // The operator sends it again; it is delivered on the third attempt.
  CHECK(store->retry(id, at("2026-11-20T11:00:00Z")));
  CHECK(store->due_notifications(at("2026-11-20T11:00:00Z")).size() == 1);
  store->mark_delivered(id, at("2026-11-20T11:00:01Z"), "202: queued");
  CHECK(store->outbox_entry(id)->status == OutboxStatus::kDelivered);
  CHECK(store->attempts(id).back().number == 3);
  CHECK_FALSE(store->retry(id, at("2026-11-20T12:00:00Z")));  // delivered stays delivered
  CHECK_FALSE(store->outbox_entry(999));
  CHECK_THROWS_AS(store->record_failure(999, at("2026-11-20T10:00:00Z"), "x", std::nullopt), StoreError);
}

TEST_CASE("delivery inside an open transaction commits or rolls back with it") {
  EACH_BACKEND();
  store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z")));
  const long long id = store->outbox().front().id;
  {
    auto tx = store->begin();
    tx->mark_delivered(id, at("2026-11-20T10:00:05Z"));
    CHECK(tx->contacts("c-1").size() == 1);
  }
  CHECK(store->outbox(OutboxStatus::kPending).size() == 1);
  CHECK(store->contacts("c-1").empty());
  {
    auto tx = store->begin();
    tx->mark_delivered(id, at("2026-11-20T10:00:05Z"));
    tx->commit();
  }
  CHECK(store->outbox(OutboxStatus::kDelivered).size() == 1);
  CHECK(store->contacts("c-1").size() == 1);
}

TEST_CASE("dropped notifications count for nothing, and kinds about an entity come oldest first") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  auto store = Store::open(path);
  Notification thanks = notification("k1", "c-1", at("2026-11-20T08:00:00Z"), "a");
  thanks.kind = Kind::kThankYou;
  store->enqueue(thanks);
  store->enqueue(notification("k2", "c-1", at("2026-11-20T09:00:00Z"), "a"));
  Notification dropped = notification("k3", "c-1", at("2026-11-20T10:00:00Z"), "a");
  dropped.kind = Kind::kFollowUp;
  store->enqueue(dropped);
  SQLite::Database(path.string(), SQLite::OPEN_READWRITE)
      .exec("UPDATE outbox SET status = 'dropped' WHERE idempotency_key = 'k3'");

  CHECK(store->notifications_since("c-1", at("2026-11-20T00:00:00Z")).size() == 2);
  CHECK(store->last_notification("a", "c-1")->idempotency_key == "k2");
  CHECK(store->kinds_about(EntityRef{EntityType::kOrder, "A"}) == std::vector{Kind::kThankYou, Kind::kApology});
  CHECK(store->kinds_about(EntityRef{EntityType::kOrder, "other"}).empty());
  CHECK(store->outbox(OutboxStatus::kDropped).size() == 1);
  CHECK(store->outbox().size() == 3);
  CHECK(store->has_notification("k3"));  // a dropped key still blocks a duplicate
  CHECK_FALSE(store->enqueue(dropped));
}

TEST_CASE("an outbox row the code cannot read is set aside with its reason, and the rows around it go on") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  auto store = Store::open(path);
  store->enqueue(notification("k1", "c-1", at("2026-11-20T08:00:00Z")));
  store->enqueue(notification("k2", "c-1", at("2026-11-20T08:01:00Z")));
  store->enqueue(notification("k3", "c-1", at("2026-11-20T08:02:00Z")));
  {
    SQLite::Database db(path.string(), SQLite::OPEN_READWRITE);
    db.exec("UPDATE outbox SET kind = 'pep_talk' WHERE idempotency_key = 'k2'");
    db.exec("UPDATE outbox SET event = '{not json' WHERE idempotency_key = 'k3'");
  }
  const auto due = store->due_notifications(at("2026-11-20T09:00:00Z"), Channel::kSms);
  REQUIRE(due.size() == 1);  // the delivery of the channel goes on with the readable one
  CHECK(due[0].notification.idempotency_key == "k1");
  CHECK(store->notifications_since("c-1", at("2026-11-20T00:00:00Z")).size() == 1);

  const auto all = store->outbox();  // `tactd outbox list` too
  REQUIRE(all.size() == 3);
  CHECK(all[1].status == OutboxStatus::kDead);
  CHECK(all[1].unreadable == "unknown message kind 'pep_talk' in the database");
  CHECK(all[1].last_error == "unreadable, set aside: unknown message kind 'pep_talk' in the database");
  CHECK_THAT(all[2].unreadable, Catch::StartsWith("its event is not JSON: "));
  REQUIRE(store->outbox_entry(all[1].id));
  CHECK(store->outbox_entry(all[1].id)->status == OutboxStatus::kDead);
  CHECK(store->outbox(OutboxStatus::kPending).size() == 1);
  CHECK(store->outbox(OutboxStatus::kDead).size() == 2);
}

TEST_CASE("contact history is kept oldest first") {
  EACH_BACKEND();
  const EntityRef order{EntityType::kOrder, "A"};
  store->record_contact(Contact{"c-1", at("2026-11-20T12:00:00Z"), Kind::kThankYou, "t", order, Channel::kSms, "k2"});
  store->record_contact(Contact{"c-1", at("2026-11-20T10:00:00Z"), Kind::kApology, "a", order, Channel::kEmail, "k1"});
  store->record_contact(Contact{"c-2", at("2026-11-20T11:00:00Z"), Kind::kApology, "a", order, Channel::kEmail, "k3"});
  const auto contacts = store->contacts("c-1");
  REQUIRE(contacts.size() == 2);
  CHECK(contacts[0].kind == Kind::kApology);
  CHECK(contacts[1].kind == Kind::kThankYou);
}

TEST_CASE("a temporary store removes its files when it is destroyed") {
  TempDir dir;
  const char* old_tmpdir = std::getenv("TMPDIR");
  const std::string saved = old_tmpdir ? old_tmpdir : "";
  setenv("TMPDIR", dir.path().c_str(), 1);
  {
    auto store = Store::open_temporary();
    store->put_entity(entity(EntityType::kOrder, "A", {}));
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), {}) == 1);
  }
  old_tmpdir ? setenv("TMPDIR", saved.c_str(), 1) : unsetenv("TMPDIR");
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("timers fire in due order, each schedule at most once, and move when rescheduled") {
  EACH_BACKEND();
  const EntityRef a{EntityType::kOrder, "A"};
  const EntityRef b{EntityType::kOrder, "B"};
  store->schedule_timer(Timer{"heads-up", a, at("2026-11-20T11:30:00Z")});
  store->schedule_timer(Timer{"heads-up", b, at("2026-11-20T11:00:00Z")});
  CHECK(store->next_timer() == at("2026-11-20T11:00:00Z"));
  CHECK(store->due_timers(at("2026-11-20T10:59:59Z"), 10).empty());
  auto due = store->due_timers(at("2026-11-20T12:00:00Z"), 10);
  REQUIRE(due.size() == 2);
  CHECK(due[0].entity == b);
  CHECK(due[1].entity == a);
  CHECK(store->due_timers(at("2026-11-20T12:00:00Z"), 1).size() == 1);

  CHECK(store->mark_timer_fired(due[0]));
  CHECK_FALSE(store->mark_timer_fired(due[0]));  // a compare-and-set: fired once, by one caller
  store->schedule_timer(Timer{"heads-up", b, at("2026-11-20T11:00:00Z")});  // same schedule: stays fired
  CHECK(store->due_timers(at("2026-11-20T12:00:00Z"), 10).size() == 1);
  store->schedule_timer(Timer{"heads-up", b, at("2026-11-20T11:45:00Z")});  // moved: fires again
  CHECK(store->due_timers(at("2026-11-20T12:00:00Z"), 10).size() == 2);

  store->cancel_timer("heads-up", a);
  due = store->due_timers(at("2026-11-20T12:00:00Z"), 10);
  REQUIRE(due.size() == 1);
  CHECK(due[0].due == at("2026-11-20T11:45:00Z"));
  // Read, then set again by someone else before it fired: the stale read fires nothing.
  store->schedule_timer(Timer{"heads-up", b, at("2026-11-20T11:50:00Z")});
  CHECK_FALSE(store->mark_timer_fired(due[0]));
  CHECK(store->next_timer() == at("2026-11-20T11:50:00Z"));
  CHECK(store->mark_timer_fired(Timer{"heads-up", b, at("2026-11-20T11:50:00Z")}));
  CHECK_FALSE(store->next_timer());
}

TEST_CASE("timers survive reopening the database") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  Store::open(path)->schedule_timer(Timer{"r", EntityRef{EntityType::kOrder, "A"}, at("2026-11-20T11:00:00Z")});
  CHECK(Store::open(path)->next_timer() == at("2026-11-20T11:00:00Z"));
}

TEST_CASE("deferred notifications become due at their time") {
  EACH_BACKEND();
  store->enqueue(notification("k1", "c-1", at("2026-11-21T08:00:00Z")));
  store->enqueue(notification("k2", "c-1", at("2026-11-20T22:00:00Z")));
  CHECK(store->next_notification() == at("2026-11-20T22:00:00Z"));
  CHECK(store->due_notifications(at("2026-11-20T21:59:59Z")).empty());
  const auto due = store->due_notifications(at("2026-11-21T08:00:00Z"));
  REQUIRE(due.size() == 2);
  CHECK(due[0].notification.idempotency_key == "k2");
}

TEST_CASE("a source cursor is kept, replaced, and rolled back with its transaction") {
  EACH_BACKEND();
  CHECK_FALSE(store->cursor("shop"));
  store->set_cursor("shop", "2026-11-20T10:00:00Z");
  store->set_cursor("shop", "2026-11-20T11:00:00Z");
  CHECK(store->cursor("shop") == "2026-11-20T11:00:00Z");
  {
    auto tx = store->begin();
    tx->set_cursor("shop", "2026-11-20T12:00:00Z");
  }  // not committed
  CHECK(store->cursor("shop") == "2026-11-20T11:00:00Z");
  CHECK_FALSE(store->cursor("other"));
}

TEST_CASE("an entity's first sighting is kept when it is stored again") {
  EACH_BACKEND();
  Entity anna = entity(EntityType::kCustomer, "c-1", {{"name", "Anna"}});
  anna.first_seen = at("2026-11-20T09:00:00Z");
  store->put_entity(anna);
  anna.observed_at = at("2026-11-21T10:00:00Z");
  anna.first_seen = at("2026-11-21T10:00:00Z");
  put_over(*store, anna);
  const auto stored = store->entity(anna.ref);
  REQUIRE(stored);
  CHECK(stored->observed_at == at("2026-11-21T10:00:00Z"));
  CHECK(stored->first_seen == at("2026-11-20T09:00:00Z"));
  store->put_entity(entity(EntityType::kOrder, "A", {{"customer", "c-1"}}));  // no first sighting given
  const auto order = store->latest_child(anna.ref, EntityType::kOrder);
  REQUIRE(order);
  CHECK(order->first_seen == order->observed_at);
  CHECK(store->entities(EntityType::kCustomer, "", 10).at(0).first_seen == at("2026-11-20T09:00:00Z"));
}

TEST_CASE("the latest notification time of a customer counts what is pending or delivered, not dead letters") {
  EACH_BACKEND();
  store->enqueue(notification("k1", "c-1", at("2026-11-20T08:00:00Z")));
  store->enqueue(notification("k2", "c-1", at("2026-11-21T08:00:00Z")));
  const auto pending = store->outbox(OutboxStatus::kPending);
  store->mark_delivered(pending[0].id, at("2026-11-20T08:00:05Z"));
  CHECK(store->latest_notification_at("c-1") == at("2026-11-21T08:00:00Z"));
  store->record_failure(pending[1].id, at("2026-11-21T08:00:05Z"), "550 no such user", std::nullopt);
  CHECK(store->latest_notification_at("c-1") == at("2026-11-20T08:00:00Z"));
}

TEST_CASE("the latest notification time of a customer ignores dropped ones") {
  EACH_BACKEND();
  CHECK_FALSE(store->latest_notification_at("c-1"));
  store->enqueue(notification("k1", "c-1", at("2026-11-20T08:00:00Z")));
  store->enqueue(notification("k2", "c-1", at("2026-11-21T08:00:00Z")));
  store->enqueue(notification("k3", "c-2", at("2026-11-22T08:00:00Z")));
  CHECK(store->latest_notification_at("c-1") == at("2026-11-21T08:00:00Z"));
  const auto pending = store->outbox(OutboxStatus::kPending);
  REQUIRE(store->drop(pending[1].id));
  CHECK(store->latest_notification_at("c-1") == at("2026-11-20T08:00:00Z"));
}

TEST_CASE("all entities of a type can be read page by page") {
  EACH_BACKEND();
  for (const char* id : {"c-3", "c-1", "c-2"}) store->put_entity(entity(EntityType::kCustomer, id, {{"name", id}}));
  store->put_entity(entity(EntityType::kOrder, "A", {{"customer", "c-1"}}));
  const auto first = store->entities(EntityType::kCustomer, "", 2);
  REQUIRE(first.size() == 2);
  CHECK(first[0].ref.id == "c-1");
  CHECK(first[1].ref.id == "c-2");
  CHECK(first[1].fields["name"] == "c-2");
  const auto rest = store->entities(EntityType::kCustomer, first.back().ref.id, 2);
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].ref.id == "c-3");
  CHECK(store->entities(EntityType::kCustomer, "c-3", 2).empty());
}

TEST_CASE("a removed rule's timers are cancelled and counted, other rules' stay") {
  EACH_BACKEND();
  store->schedule_timer(Timer{"gone", EntityRef{EntityType::kOrder, "A"}, at("2026-11-20T11:00:00Z")});
  store->schedule_timer(Timer{"gone", EntityRef{EntityType::kOrder, "B"}, at("2026-11-20T09:00:00Z")});
  store->mark_timer_fired(Timer{"gone", EntityRef{EntityType::kOrder, "B"}, at("2026-11-20T09:00:00Z")});
  store->schedule_timer(Timer{"kept", EntityRef{EntityType::kOrder, "A"}, at("2026-11-20T12:00:00Z")});
  CHECK(store->pending_timers() == 2);
  const CancelledTimers cancelled = store->cancel_timers("gone", 100);
  CHECK(cancelled.removed == 2);  // the fired one too
  CHECK(cancelled.unfired == 1);
  CHECK(store->pending_timers() == 1);
  CHECK(store->next_timer() == at("2026-11-20T12:00:00Z"));
  CHECK(store->cancel_timers("gone", 100).removed == 0);
}

TEST_CASE("a rule's timers are cancelled a batch at a time, fired and unfired, and only that rule's") {
  EACH_BACKEND();
  // 25 timers of "gone" (every fifth fired) and 3 of "kept"; batches of 10.
  for (int i = 0; i < 25; ++i) {
    const Timer timer{"gone", EntityRef{EntityType::kOrder, "A" + std::to_string(100 + i)},
                      at("2026-11-20T09:00:00Z") + std::chrono::minutes(i)};
    store->schedule_timer(timer);
    if (i % 5 == 0) REQUIRE(store->mark_timer_fired(timer));
  }
  for (int i = 0; i < 3; ++i)
    store->schedule_timer(
        Timer{"kept", EntityRef{EntityType::kOrder, "A" + std::to_string(100 + i)}, at("2026-11-21T09:00:00Z")});
  REQUIRE(store->pending_timers() == 20 + 3);
  std::vector<std::size_t> removed;
  std::size_t unfired = 0;
  for (;;) {
    const CancelledTimers batch = store->cancel_timers("gone", 10);
    removed.push_back(batch.removed);
    unfired += batch.unfired;
    if (batch.removed < 10) break;
    REQUIRE(removed.size() < 10);  // no endless loop should the limit be ignored
  }
  CHECK(removed == std::vector<std::size_t>{10, 10, 5});
  CHECK(unfired == 20);
  CHECK(store->pending_timers() == 3);
  CHECK(store->next_timer() == at("2026-11-21T09:00:00Z"));
  CHECK(store->due_timers(at("2026-11-22T00:00:00Z"), 10).size() == 3);
}

TEST_CASE("the outbox depth counts pending entries and finds the oldest already due") {
  EACH_BACKEND();
  CHECK(store->outbox_depth(at("2026-11-20T12:00:00Z")).pending == 0);
  CHECK_FALSE(store->outbox_depth(at("2026-11-20T12:00:00Z")).oldest_due);
  store->enqueue(notification("k1", "c-1", at("2026-11-20T11:00:00Z")));
  store->enqueue(notification("k2", "c-1", at("2026-11-20T10:00:00Z")));
  store->enqueue(notification("k3", "c-1", at("2026-11-21T08:00:00Z")));  // waits for the morning
  store->enqueue(notification("k4", "c-1", at("2026-11-20T09:00:00Z")));
  store->drop(store->outbox(OutboxStatus::kPending).back().id);
  const auto depth = store->outbox_depth(at("2026-11-20T12:00:00Z"));
  CHECK(depth.pending == 3);
  CHECK(depth.oldest_due == at("2026-11-20T10:00:00Z"));

  // An entry due earlier but waiting for its retry waits from its retry time.
  store->enqueue(notification("k5", "c-1", at("2026-11-20T08:00:00Z")));
  const long long retried = store->outbox(OutboxStatus::kPending).back().id;
  store->record_failure(retried, at("2026-11-20T08:00:01Z"), "503", at("2026-11-20T11:30:00Z"));
  CHECK(store->outbox_depth(at("2026-11-20T12:00:00Z")).oldest_due == at("2026-11-20T10:00:00Z"));
  CHECK(store->outbox_depth(at("2026-11-20T12:00:00Z")).pending == 4);
  CHECK_FALSE(store->outbox_depth(at("2026-11-20T09:59:00Z")).oldest_due);  // nothing due yet then
}

namespace {

// The counts behind the gauges and the console against the entries
// themselves, after each kind of change an entry or a timer goes through.
void check_counts(Store& store) {
  const auto counts = store.outbox_counts();
  for (const OutboxStatus status : {OutboxStatus::kPending, OutboxStatus::kDelivered, OutboxStatus::kDead,
                                    OutboxStatus::kDropped, OutboxStatus::kOvertaken, OutboxStatus::kUnknown}) {
    INFO("status " << to_string(status));
    const std::size_t entries = store.outbox(status).size();
    CHECK((counts.contains(status) ? counts.at(status) : 0) == entries);
  }
  const auto depth = store.outbox_depth(at("2026-11-20T12:00:00Z"));
  CHECK(depth.pending == store.outbox(OutboxStatus::kPending).size());
  CHECK(depth.unknown == store.outbox(OutboxStatus::kUnknown).size());
  CHECK(store.pending_timers() == store.due_timers(at("2100-01-01T00:00:00Z"), 1000).size());
}

}  // namespace

TEST_CASE("the outbox's counts by status and the count of pending timers follow every change") {
  EACH_BACKEND();
  check_counts(*store);
  for (const char* key : {"k1", "k2", "k3", "k4", "k5", "k6"})
    REQUIRE(store->enqueue(notification(key, "c-1", at("2026-11-20T10:00:00Z"))));
  CHECK_FALSE(store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z"))));  // already there
  check_counts(*store);
  const auto ids = [&] {
    std::vector<long long> out;
    for (const auto& entry : store->outbox()) out.push_back(entry.id);
    return out;
  }();
  REQUIRE(ids.size() == 6);
  const Timestamp now = at("2026-11-20T10:01:00Z");
  REQUIRE(store->claim_due_notifications(Channel::kSms, 1, now, std::chrono::minutes{1}).size() == 1);
  store->mark_delivered(ids[0], now);
  store->record_failure(ids[1], now, "503", now + std::chrono::minutes{5});  // stays pending
  store->record_failure(ids[2], now, "550", std::nullopt);                   // dead
  check_counts(*store);
  CHECK(store->retry(ids[2], now));  // pending again
  CHECK(store->drop(ids[3]));
  CHECK(store->mark_overtaken(ids[4], now, "the order was delivered after all"));
  check_counts(*store);
  store->claim({ids[5]}, now);
  CHECK(store->settle_interrupted(ids[5], now, false, "cut off"));  // unknown
  check_counts(*store);
  CHECK(store->resolve_delivered(ids[5], now, "the provider's log has it"));
  check_counts(*store);

  const EntityRef a{EntityType::kOrder, "A"};
  const EntityRef b{EntityType::kOrder, "B"};
  store->schedule_timer(Timer{"late", a, at("2026-11-20T11:00:00Z")});
  store->schedule_timer(Timer{"late", b, at("2026-11-20T11:00:00Z")});
  store->schedule_timer(Timer{"silence", a, at("2026-11-21T11:00:00Z")});
  store->schedule_timer(Timer{"late", a, at("2026-11-20T11:30:00Z")});  // moved: still one
  check_counts(*store);
  CHECK(store->mark_timer_fired(Timer{"late", a, at("2026-11-20T11:30:00Z")}));
  check_counts(*store);
  store->schedule_timer(Timer{"late", a, at("2026-11-20T11:30:00Z")});  // the same time: stays fired
  check_counts(*store);
  store->schedule_timer(Timer{"late", a, at("2026-11-20T12:30:00Z")});  // a new time: pending again
  check_counts(*store);
  store->cancel_timer("late", b);
  CHECK(store->mark_timer_fired(Timer{"late", a, at("2026-11-20T12:30:00Z")}));
  store->cancel_timer("late", a);  // a fired one
  check_counts(*store);
  CHECK(store->cancel_timers("silence", 100).unfired == 1);
  check_counts(*store);
  CHECK(store->pending_timers() == 0);
}

TEST_CASE("the pending timers of a state kept before they were counted by triggers are counted from its rows") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  {
    auto store = Store::open(path);
    store->schedule_timer(Timer{"late", EntityRef{EntityType::kOrder, "A"}, at("2026-11-20T11:00:00Z")});
    store->schedule_timer(Timer{"late", EntityRef{EntityType::kOrder, "B"}, at("2026-11-20T11:00:00Z")});
    store->schedule_timer(Timer{"late", EntityRef{EntityType::kOrder, "C"}, at("2026-11-20T11:00:00Z")});
    store->mark_timer_fired(Timer{"late", EntityRef{EntityType::kOrder, "B"}, at("2026-11-20T11:00:00Z")});
  }
  {  // as tactd left it before step 24
    SQLite::Database db(path.string(), SQLite::OPEN_READWRITE);
    db.exec(
        "DROP TRIGGER pending_timers_insert; DROP TRIGGER pending_timers_update; DROP TRIGGER pending_timers_delete;");
    db.exec("DROP TABLE pending_timer_count; DELETE FROM schema_migrations WHERE version = 24;");
  }
  auto store = Store::open(path);
  CHECK(store->pending_timers() == 2);
  store->cancel_timer("late", EntityRef{EntityType::kOrder, "A"});
  CHECK(store->pending_timers() == 1);
}

TEST_CASE("an overtaken entry is not sent, counts for nothing, and keeps its reason with every decision") {
  EACH_BACKEND();
  Notification n = notification("k1", "c-1", at("2026-11-21T08:00:00Z"));
  n.event = {{"field", "status"}, {"old", "placed"}, {"new", "cancelled"}};
  REQUIRE(store->enqueue(n, "waits until 2026-11-21T08:00:00Z (quiet_hours)"));
  const long long id = store->outbox().front().id;
  CHECK(store->outbox_entry(id)->notification.event == n.event);

  Notification fresh = n;
  fresh.body = "Hoi Anne";
  fresh.to = "+31699999999";
  store->update_message(id, fresh);
  store->record_decision(id, at("2026-11-21T08:00:00Z"), "re-rendered", "with the data known at release");
  CHECK(store->outbox_entry(id)->notification.body == "Hoi Anne");
  CHECK(store->outbox_entry(id)->notification.to == "+31699999999");

  CHECK(store->mark_overtaken(id, at("2026-11-21T08:00:00Z"), "the customer opted out"));
  CHECK_FALSE(store->mark_overtaken(id, at("2026-11-21T08:00:00Z"), "again"));  // only pending ones
  const auto entry = store->outbox_entry(id);
  CHECK(entry->status == OutboxStatus::kOvertaken);
  CHECK(entry->last_error == "the customer opted out");
  CHECK(store->due_notifications(at("2026-11-22T00:00:00Z")).empty());
  CHECK(store->kinds_about(n.entity).empty());
  CHECK_FALSE(store->latest_notification_at("c-1"));
  CHECK(store->notifications_since("c-1", at("2026-11-20T00:00:00Z")).empty());

  const auto decisions = store->decisions(id);
  REQUIRE(decisions.size() == 3);
  CHECK(decisions[0].decision == "queued");
  CHECK(decisions[0].reason == "waits until 2026-11-21T08:00:00Z (quiet_hours)");
  CHECK(decisions[1].decision == "re-rendered");
  CHECK(decisions[2].decision == "overtaken");
  CHECK(decisions[2].reason == "the customer opted out");
}

TEST_CASE("an intent waits for linked data, keeps its deadline when it waits for something else, and expires") {
  EACH_BACKEND();
  const EntityRef order{EntityType::kOrder, "A-1"};
  const EntityRef customer{EntityType::kCustomer, "c-1"};
  WaitingIntent w{0,
                  "order-cancelled",
                  order,
                  "status=\"cancelled\"@2026-11-20T16:30:00Z",
                  {{"field", "status"}},
                  customer,
                  at("2026-11-20T16:30:00Z"),
                  at("2026-11-20T17:30:00Z"),
                  "customer/c-1 has not been observed yet"};
  store->add_waiting(w);
  REQUIRE(store->waiting_for(customer).size() == 1);
  CHECK(store->waiting_for(customer)[0].event == nlohmann::json{{"field", "status"}});
  CHECK(store->next_waiting_expiry() == at("2026-11-20T17:30:00Z"));

  w.until = at("2026-11-20T23:00:00Z");  // the same firing again: what it waits for changes, not until when
  w.reason = "no channel can reach customer 'c-1'";
  store->add_waiting(w);
  const auto waiting = store->waiting_for(customer);
  REQUIRE(waiting.size() == 1);
  CHECK(waiting[0].reason == "no channel can reach customer 'c-1'");
  CHECK(waiting[0].until == at("2026-11-20T17:30:00Z"));

  CHECK(store->expired_waiting(at("2026-11-20T17:29:59Z"), 10).empty());
  REQUIRE(store->expired_waiting(at("2026-11-20T17:30:00Z"), 10).size() == 1);
  store->remove_waiting(waiting[0].id);
  CHECK(store->waiting_for(customer).empty());
  CHECK_FALSE(store->next_waiting_expiry());
}

TEST_CASE("a claimed entry is not due, and its verdict ends the claim") {
  EACH_BACKEND();
  store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z")));
  store->enqueue(notification("k2", "c-1", at("2026-11-20T10:00:00Z")));
  const auto due = store->due_notifications(at("2026-11-20T11:00:00Z"));
  REQUIRE(due.size() == 2);
  store->claim({due[0].id, due[1].id}, at("2026-11-20T10:00:01Z"));
  CHECK(store->due_notifications(at("2026-11-20T11:00:00Z")).empty());
  CHECK_FALSE(store->next_notification());
  CHECK(store->outbox_depth(at("2026-11-20T11:00:00Z")).pending == 2);  // still on their way
  CHECK(store->outbox_entry(due[0].id)->sending_since == at("2026-11-20T10:00:01Z"));

  store->mark_delivered(due[0].id, at("2026-11-20T10:00:02Z"));
  store->record_failure(due[1].id, at("2026-11-20T10:00:02Z"), "HTTP 503", at("2026-11-20T10:00:10Z"));
  CHECK(store->interrupted().empty());
  CHECK_FALSE(store->outbox_entry(due[0].id)->sending_since);
  REQUIRE(store->due_notifications(at("2026-11-20T11:00:00Z")).size() == 1);
}

TEST_CASE("due notifications are claimed per channel in one call, earliest first, until their lease ends") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  auto store = Store::open(path);
  const Timestamp t = at("2026-11-20T10:00:00Z");
  store->enqueue(notification("k3", "c-3", t + 2s));
  store->enqueue(notification("k1", "c-1", t));
  const long long k1 = store->last_enqueued();
  store->enqueue(notification("k2", "c-2", t + 1s));
  store->enqueue(notification("later", "c-4", t + 1h));
  const long long later = store->last_enqueued();
  Notification mail = notification("mail", "c-5", t);
  mail.channel = Channel::kEmail;
  mail.to = "c5@example.com";
  store->enqueue(mail);
  Notification voucher = notification("voucher", "c-6", t);
  voucher.action = "voucher";  // not due until its action is taken
  store->enqueue(voucher);

  const Timestamp now = t + 10s;
  auto claimed = store->claim_due_notifications(Channel::kSms, 2, now, 5min);
  REQUIRE(claimed.size() == 2);
  CHECK(claimed[0].notification.idempotency_key == "k1");
  CHECK(claimed[1].notification.idempotency_key == "k2");
  CHECK(claimed[0].sending_since == now);
  CHECK(claimed[0].notification.body == "Sorry — het spijt ons");
  claimed = store->claim_due_notifications(Channel::kSms, 10, now, 5min);
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].notification.idempotency_key == "k3");
  CHECK(store->claim_due_notifications(Channel::kSms, 10, now, 5min).empty());
  CHECK(store->claim_due_notifications(Channel::kSms, 0, now, 5min).empty());
  CHECK(store->due_notifications(now, Channel::kSms).empty());  // claimed: not due
  REQUIRE(store->claim_due_notifications(Channel::kEmail, 10, now, 5min).size() == 1);

  // A verdict ends a claim for good; a lease that ends frees the others.
  store->mark_delivered(k1, now + 1s);
  CHECK(store->claim_due_notifications(Channel::kSms, 10, now + 5min - 1ms, 5min).empty());
  claimed = store->claim_due_notifications(Channel::kSms, 10, now + 5min, 5min);
  REQUIRE(claimed.size() == 2);
  CHECK(claimed[0].notification.idempotency_key == "k2");
  CHECK(claimed[1].notification.idempotency_key == "k3");
  CHECK(claimed[0].sending_since == now + 5min);
  CHECK(store->interrupted().size() == 3);  // k2, k3 and the mail: what a restart settles

  // A claim without a lease (claim()) holds until its verdict.
  store->claim({later}, t + 1h);
  CHECK(store->claim_due_notifications(Channel::kSms, 10, t + 1000h, 5min).size() == 2);  // k2, k3 again

  // The claim is one range of an index, whatever the backlog of other channels.
  SQLite::Database db(path.string());
  const std::string steps = query_plan(
      db,
      "SELECT id FROM outbox WHERE channel = 'sms' AND status = 'pending' AND (action_state IS NULL OR action_state "
      "!= 'pending') AND max(COALESCE(next_attempt_at, due_at), COALESCE(lease_until, 0)) <= 0 ORDER BY "
      "max(COALESCE(next_attempt_at, due_at), COALESCE(lease_until, 0)), id LIMIT 5");
  CHECK(steps.find("USING INDEX outbox_claimable") != std::string::npos);
  CHECK(steps.find("TEMP B-TREE") == std::string::npos);
}

TEST_CASE("the search by phone number reads the index of numbers without separators") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  auto store = Store::open(path);
  store->put_entity(entity(EntityType::kCustomer, "c-1", {{"phone", "+31 6 1111 1111"}}));
  CHECK(store->customers_by_contact("+31611111111", 10) == std::vector<std::string>{"c-1"});
  SQLite::Database db(path.string());
  CHECK_FALSE(db.execAndGet("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'entities_customer_phone'").getInt());
  const std::string steps =
      query_plan(db,
                 "SELECT id FROM entities WHERE type = 'customer' AND "
                 "replace(replace(replace(replace(replace(replace(replace(json_extract(fields, '$.phone'), "
                 "' ', ''), '-', ''), '+', ''), '(', ''), ')', ''), '.', ''), '/', '') = '31611111111'");
  CHECK(steps.find("USING INDEX entities_customer_phone_key") != std::string::npos);
  CHECK(phone_key("+31 (6) 1234-56.78/9") == "316123456789");
}

TEST_CASE("the pending entries have an index of their own, which a delivered entry leaves") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  auto store = Store::open(path);
  const Timestamp t = at("2026-11-20T10:00:00Z");
  store->enqueue(notification("k1", "c-1", t));
  store->enqueue(notification("k2", "c-2", t + 1h));
  const auto claimed = store->claim_due_notifications(Channel::kSms, 1, t, 5min);
  REQUIRE(claimed.size() == 1);
  store->mark_delivered(claimed[0].id, t, "HTTP 200");
  CHECK(store->next_notification() == t + 1h);
  CHECK(store->outbox_depth(t + 2h).pending == 1);

  SQLite::Database db(path.string());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM outbox INDEXED BY outbox_pending WHERE status = 'pending'").getInt() == 1);
  CHECK_FALSE(db.execAndGet("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'outbox_due'").getInt());
  // Each query that asks for pending entries in due order reads that index, not all of one status.
  for (const char* query :
       {"SELECT MIN(COALESCE(next_attempt_at, due_at)) FROM outbox WHERE status = 'pending' AND sending_since IS NULL "
        "AND (action_state IS NULL OR action_state != 'pending')",
        "SELECT id FROM outbox WHERE status = 'pending' AND sending_since IS NULL AND COALESCE(next_attempt_at, "
        "due_at) <= 0 AND (action_state IS NULL OR action_state != 'pending') ORDER BY COALESCE(next_attempt_at, "
        "due_at), id LIMIT 5",
        "SELECT COUNT(*), MIN(CASE WHEN COALESCE(next_attempt_at, due_at) <= 0 THEN due_at END) FROM outbox "
        "WHERE status = 'pending'"}) {
    INFO(query);
    const std::string steps = query_plan(db, query);
    CHECK(steps.find("USING INDEX outbox_pending") != std::string::npos);
    CHECK(steps.find("TEMP B-TREE") == std::string::npos);
  }
  // And those that ask for due actions read the index of pending actions, not every pending entry.
  for (const char* query :
       {"SELECT MIN(COALESCE(action_next_at, due_at)) FROM outbox WHERE status = 'pending' AND action_state = "
        "'pending'",
        "SELECT id FROM outbox WHERE status = 'pending' AND action_state = 'pending' AND COALESCE(action_next_at, "
        "due_at) <= 0 ORDER BY COALESCE(action_next_at, due_at), id LIMIT 5"}) {
    INFO(query);
    const std::string steps = query_plan(db, query);
    CHECK(steps.find("USING INDEX outbox_action_due") != std::string::npos);
    CHECK(steps.find("TEMP B-TREE") == std::string::npos);
  }
}

TEST_CASE("an entry overtaken or held back while claimed is no longer claimed") {
  auto store = Store::open_temporary();
  const Timestamp t = at("2026-11-20T10:00:00Z");
  store->enqueue(notification("k1", "c-1", t));
  store->enqueue(notification("k2", "c-2", t));
  const auto claimed = store->claim_due_notifications(Channel::kSms, 2, t, 5min);
  REQUIRE(claimed.size() == 2);
  CHECK(store->mark_overtaken(claimed[0].id, t, "the order was delivered"));
  CHECK(store->postpone(claimed[1].id, t, t + 1h, "paused"));
  CHECK(store->interrupted().empty());  // nothing for a restart to settle
  CHECK(store->claim_due_notifications(Channel::kSms, 2, t + 1h - 1ms, 5min).empty());
  REQUIRE(store->claim_due_notifications(Channel::kSms, 2, t + 1h, 5min).size() == 1);
}

TEST_CASE("an entry dropped during its send is no longer claimed once its verdict is in") {
  EACH_BACKEND();
  const Timestamp t = at("2026-11-20T10:00:00Z");
  store->enqueue(notification("k1", "c-1", t));
  store->enqueue(notification("k2", "c-2", t));
  const auto claimed = store->claim_due_notifications(Channel::kSms, 2, t, 5min);
  REQUIRE(claimed.size() == 2);
  REQUIRE(store->drop(claimed[0].id));  // an operator, while the requests are out
  REQUIRE(store->drop(claimed[1].id));
  store->record_failure(claimed[0].id, t + 1s, "HTTP 503", t + 1min);
  store->record_failure(claimed[1].id, t + 1s, "HTTP 400", std::nullopt);
  // A restart has nothing to settle: no second, "interrupted" attempt.
  CHECK(store->interrupted().empty());
  for (const auto& entry : claimed) {
    CHECK(store->outbox_entry(entry.id)->status == OutboxStatus::kDropped);
    CHECK(store->attempts(entry.id).size() == 1);
  }
}

TEST_CASE("a send cut off is retried with its key, or held as an unknown outcome an operator resolves") {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  long long retried = 0;
  long long held = 0;
  {
    auto store = Store::open(path);
    store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z")));
    store->enqueue(notification("k2", "c-2", at("2026-11-20T10:00:00Z")));
    const auto due = store->due_notifications(at("2026-11-20T11:00:00Z"));
    retried = due[0].id;
    held = due[1].id;
    store->claim({retried, held}, at("2026-11-20T10:00:01Z"));
  }  // the process dies here, mid-send
  auto store = Store::open(path);
  const auto cut = store->interrupted();
  REQUIRE(cut.size() == 2);
  CHECK(store->settle_interrupted(retried, at("2026-11-20T10:05:00Z"), true, "cut off; sent again"));
  CHECK(store->settle_interrupted(held, at("2026-11-20T10:05:00Z"), false, "cut off; unknown"));
  CHECK_FALSE(store->settle_interrupted(held, at("2026-11-20T10:05:00Z"), false, "again"));
  CHECK(store->interrupted().empty());

  const auto due = store->due_notifications(at("2026-11-20T10:05:00Z"));
  REQUIRE(due.size() == 1);
  CHECK(due[0].notification.idempotency_key == "k1");
  CHECK(due[0].attempts == 1);
  const auto attempts = store->attempts(retried);
  REQUIRE(attempts.size() == 1);
  CHECK(attempts[0].outcome == "interrupted");

  auto entry = store->outbox_entry(held);
  CHECK(entry->status == OutboxStatus::kUnknown);
  CHECK(entry->last_error == "cut off; unknown");
  CHECK(store->outbox(OutboxStatus::kUnknown).size() == 1);
  CHECK(store->outbox_depth(at("2026-11-20T10:05:00Z")).unknown == 1);
  CHECK(store->latest_notification_at("c-2"));  // it may have reached them: it counts for caps and silences

  // Resolved as delivered: contact history, once.
  CHECK_FALSE(store->resolve_delivered(retried, at("2026-11-20T11:00:00Z"), "no"));  // not unknown
  CHECK(store->resolve_delivered(held, at("2026-11-20T11:00:00Z"), "an operator: the provider delivered it"));
  CHECK(store->outbox_entry(held)->status == OutboxStatus::kDelivered);
  REQUIRE(store->contacts("c-2").size() == 1);
  CHECK(store->decisions(held).back().decision == "resolved");
  CHECK_FALSE(store->resolve_delivered(held, at("2026-11-20T11:00:00Z"), "twice"));
}

TEST_CASE("an unknown outcome can be retried or dropped") {
  EACH_BACKEND();
  store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z")));
  store->enqueue(notification("k2", "c-1", at("2026-11-20T10:00:00Z")));
  const auto due = store->due_notifications(at("2026-11-20T11:00:00Z"));
  store->claim({due[0].id, due[1].id}, at("2026-11-20T10:00:01Z"));
  store->settle_interrupted(due[0].id, at("2026-11-20T10:05:00Z"), false, "unknown");
  store->settle_interrupted(due[1].id, at("2026-11-20T10:05:00Z"), false, "unknown");
  CHECK(store->retry(due[0].id, at("2026-11-20T12:00:00Z")));
  CHECK(store->drop(due[1].id));
  CHECK(store->outbox_entry(due[0].id)->status == OutboxStatus::kPending);
  CHECK(store->outbox_entry(due[1].id)->status == OutboxStatus::kDropped);
  CHECK(store->due_notifications(at("2026-11-20T12:00:00Z")).size() == 1);
}

TEST_CASE("the latest message to an address is found by its digits, an email by the local part of its Message-ID") {
  EACH_BACKEND();
  Notification sms = notification("k-sms", "c-1", at("2026-11-20T10:00:00Z"));
  sms.to = "+31 6 0000 0000";
  REQUIRE(store->enqueue(sms));
  Notification email = notification("k-email", "c-1", at("2026-11-20T11:00:00Z"));
  email.channel = Channel::kEmail;
  email.to = "Anna@Example.nl";
  email.subject = "Sorry";
  REQUIRE(store->enqueue(email));
  CHECK(store->latest_notification_to(Channel::kSms, address_key(Channel::kSms, "31600000000"))->idempotency_key ==
        "k-sms");
  CHECK_FALSE(store->latest_notification_to(Channel::kEmail, address_key(Channel::kSms, "31600000000")));
  CHECK(store->latest_notification_to(Channel::kEmail, "anna@example.nl")->idempotency_key == "k-email");
  // channels/mime.cpp: the first 32 hex digits of SHA-256 of the key.
  REQUIRE(store->notification_by_message_ref("d9a8dd4489a3ceed011519a26b0b9aeb"));
  CHECK(store->notification_by_message_ref("d9a8dd4489a3ceed011519a26b0b9aeb")->idempotency_key == "k-email");
  CHECK_FALSE(store->notification_by_message_ref("00000000000000000000000000000000"));
  const auto dropped = store->outbox().back();
  store->drop(dropped.id);
  CHECK_FALSE(store->latest_notification_to(Channel::kEmail, "anna@example.nl"));
}

TEST_CASE("opt-outs are found by customer or address, and a pause only grows and ends at its time") {
  EACH_BACKEND();
  const Timestamp now = at("2026-11-20T10:00:00Z");
  CHECK(store->add_opt_out(OptOut{"c-1", Channel::kSms, "31600000000", now, 0}));
  CHECK_FALSE(store->add_opt_out(OptOut{"c-1", Channel::kSms, "31611111111", now, 0}));  // already out
  CHECK(store->opt_out("c-1", Channel::kSms, ""));
  CHECK(store->opt_out("", Channel::kSms, "31600000000"));
  CHECK(store->opt_out("c-2", Channel::kSms, "31600000000"));  // the number stopped, whoever has it now
  CHECK_FALSE(store->opt_out("c-1", Channel::kEmail, "anna@example.nl"));
  CHECK_FALSE(store->opt_out("", Channel::kSms, ""));

  const EntityRef order{EntityType::kOrder, "A"};
  store->pause(order, now + std::chrono::hours{48}, "replied");
  store->pause(order, now + std::chrono::hours{1}, "an earlier end changes nothing");
  REQUIRE(store->paused(order, now));
  CHECK(store->paused(order, now)->until == now + std::chrono::hours{48});
  CHECK(store->paused(order, now)->reason == "replied");
  CHECK_FALSE(store->paused(order, now + std::chrono::hours{48}));
  CHECK_FALSE(store->paused(EntityRef{EntityType::kOrder, "B"}, now));
}

TEST_CASE("a customer's history is read newest first and bounded: entities, outbox, replies, opt-outs") {
  EACH_BACKEND();
  auto observed = [](Entity e, const char* when) {
    e.observed_at = at(when);
    return e;
  };
  store->put_entity(observed(entity(EntityType::kCustomer, "c-1", {{"name", "Mia"}}), "2026-11-20T09:00:00Z"));
  store->put_entity(observed(entity(EntityType::kOrder, "A", {{"customer", "c-1"}}), "2026-11-20T10:00:00Z"));
  store->put_entity(observed(entity(EntityType::kShipment, "S1", {{"order", "A"}}), "2026-11-20T12:00:00Z"));
  store->put_entity(observed(entity(EntityType::kSubscription, "P", {{"customer", "c-1"}}), "2026-11-20T11:00:00Z"));
  store->put_entity(observed(entity(EntityType::kOrder, "B", {{"customer", "c-2"}}), "2026-11-20T13:00:00Z"));
  store->put_entity(observed(entity(EntityType::kShipment, "S2", {{"order", "B"}}), "2026-11-20T14:00:00Z"));
  std::vector<std::string> refs;
  for (const auto& e : store->customer_entities("c-1", 10)) refs.push_back(e.ref.str());
  CHECK(refs == std::vector<std::string>{"shipment/S1", "subscription/P", "order/A", "customer/c-1"});
  CHECK(store->customer_entities("c-1", 2).size() == 2);
  CHECK(store->customer_entities("nobody", 10).empty());

  REQUIRE(store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z"))));
  REQUIRE(store->enqueue(notification("k2", "c-1", at("2026-11-20T11:00:00Z"))));
  REQUIRE(store->enqueue(notification("k3", "c-2", at("2026-11-20T12:00:00Z"))));
  REQUIRE(store->drop(1));
  const auto outbox = store->customer_outbox("c-1", 10);
  REQUIRE(outbox.size() == 2);
  CHECK(outbox[0].notification.idempotency_key == "k2");
  CHECK(outbox[1].status == OutboxStatus::kDropped);  // every status
  CHECK(store->customer_outbox("c-1", 1).size() == 1);

  Reply reply;
  reply.at = at("2026-11-20T10:05:00Z");
  reply.provider = "json";
  reply.from = "+31600000000";
  reply.text = "STOP";
  reply.stop = true;
  reply.customer = "c-1";
  const long long first = store->add_reply(reply);
  reply.at = at("2026-11-20T10:06:00Z");
  reply.text = "sorry, I meant: thanks";
  reply.stop = false;
  const long long second = store->add_reply(reply);
  const auto replies = store->customer_replies("c-1", 10);
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].id == second);
  CHECK(store->customer_replies("c-1", 1).size() == 1);
  CHECK(store->customer_replies("c-2", 10).empty());

  REQUIRE(store->add_opt_out(OptOut{"c-1", Channel::kSms, "31600000000", at("2026-11-20T10:05:00Z"), first}));
  REQUIRE(store->add_opt_out(OptOut{"", Channel::kEmail, "x@example.com", at("2026-11-20T10:05:00Z"), 0}));
  const auto opt_outs = store->customer_opt_outs("c-1");
  REQUIRE(opt_outs.size() == 1);
  CHECK(opt_outs[0].channel == Channel::kSms);
  CHECK(opt_outs[0].reply_id == first);
  CHECK(store->customer_opt_outs("").empty());  // an address without a customer belongs to no one

  // A START ends the opt-outs in force of the customer and of the address.
  CHECK_FALSE(store->end_opt_out("c-1", Channel::kEmail, "", at("2026-11-21T10:00:00Z"), 7));  // none in force
  CHECK(store->end_opt_out("c-1", Channel::kSms, "31600000000", at("2026-11-21T10:00:00Z"), 7));
  CHECK_FALSE(store->opt_out("c-1", Channel::kSms, ""));
  CHECK_FALSE(store->end_opt_out("c-1", Channel::kSms, "31600000000", at("2026-11-21T10:01:00Z"), 8));
  const auto history = store->customer_opt_outs("c-1");
  REQUIRE(history.size() == 1);
  CHECK(history[0].ended_at == at("2026-11-21T10:00:00Z"));
  CHECK(history[0].ended_by_reply == 7);
  CHECK(store->opt_out("", Channel::kEmail, "x@example.com"));  // another channel's stays
  // Opting out again is a new opt-out.
  CHECK(store->add_opt_out(OptOut{"c-1", Channel::kSms, "31600000000", at("2026-11-22T10:00:00Z"), second}));
  CHECK(store->customer_opt_outs("c-1").size() == 2);
  CHECK(store->opt_out("c-1", Channel::kSms, "")->at == at("2026-11-22T10:00:00Z"));
}

TEST_CASE("messages not made are kept per customer and counted per rule, and the old ones go") {
  EACH_BACKEND();
  const Timestamp t = at("2026-11-20T10:00:00Z");
  const EntityRef order{EntityType::kOrder, "A-1"};
  store->record_not_made(NotMade{t, "late", "c-1", order, "cooldown", "sent 2 h ago"});
  store->record_not_made(NotMade{t + 1min, "late", "c-1", order, "cooldown", "sent 2 h ago"});
  store->record_not_made(NotMade{t + 2min, "late", "c-2", order, "opt_out", "opted out"});
  store->record_not_made(NotMade{t + 3min, "welcome", "", order, "no_customer", "names no customer"});

  const auto mine = store->customer_not_made("c-1", 10);
  REQUIRE(mine.size() == 2);
  CHECK(mine[0].at == t + 1min);  // the newest first
  CHECK(mine[0].rule == "late");
  CHECK(mine[0].customer == "c-1");
  CHECK(mine[0].entity == order);
  CHECK(mine[0].code == "cooldown");
  CHECK(mine[0].reason == "sent 2 h ago");
  CHECK(store->customer_not_made("c-1", 1).size() == 1);
  CHECK(store->customer_not_made("", 10).empty());  // no customer: on no one's timeline

  const auto counts = store->not_made_counts(t + 1min);
  REQUIRE(counts.size() == 3);
  CHECK((counts[0].rule == "late" && counts[0].code == "cooldown" && counts[0].count == 1));
  CHECK((counts[1].rule == "late" && counts[1].code == "opt_out" && counts[1].count == 1));
  CHECK((counts[2].rule == "welcome" && counts[2].code == "no_customer" && counts[2].count == 1));

  // Past the retention each new record takes two old ones with it.
  const Timestamp later = t + OutboxStore::kNotMadeRetention + 3min + 1ms;
  store->record_not_made(NotMade{later, "late", "c-1", order, "cooldown", "again"});
  CHECK(store->customer_not_made("c-1", 10).size() == 1);  // the first two are gone
  CHECK(store->customer_not_made("c-2", 10).size() == 1);  // the next record takes it
  store->record_not_made(NotMade{later, "late", "c-1", order, "cooldown", "again"});
  CHECK(store->customer_not_made("c-2", 10).empty());
  CHECK(store->not_made_counts(t).size() == 1);
}

TEST_CASE("an entry whose action is pending is not due for delivery until its answer is stored with it") {
  EACH_BACKEND();
  const Timestamp t = at("2026-11-20T10:00:00Z");
  Notification voucher = notification("k-action", "c1", t);
  voucher.action = "voucher";
  REQUIRE(store->enqueue(voucher));
  const long long id = store->last_enqueued();
  REQUIRE(store->enqueue(notification("k-plain", "c1", t)));
  // Only the plain one may be sent; the other waits for its action.
  auto due = store->due_notifications(t + 1min);
  REQUIRE(due.size() == 1);
  CHECK(due[0].notification.idempotency_key == "k-plain");
  auto actions = store->due_actions(t + 1min, 10);
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].id == id);
  CHECK(actions[0].action_state == ActionState::kPending);
  CHECK(store->next_action() == t);
  CHECK(store->due_actions(t - 1min, 10).empty());

  // A retry waits until its time, and stays out of delivery.
  CHECK(store->record_action(id, t + 1s, ActionState::kPending, nullptr, t + 1min, "voucher: HTTP 503"));
  CHECK(store->due_actions(t + 30s, 10).empty());
  CHECK(store->due_actions(t + 1min, 10).size() == 1);
  CHECK(store->due_notifications(t + 2min).size() == 1);
  // A pause holds the action back with its message.
  CHECK(store->postpone(id, t + 1min, t + 90s, "the customer replied"));
  CHECK(store->due_actions(t + 89s, 10).empty());
  CHECK(store->next_action() == t + 90s);
  CHECK(store->due_actions(t + 90s, 10).size() == 1);

  CHECK(store->record_action(id, t + 1min, ActionState::kDone, {{"code", "SORRY-1"}}, std::nullopt,
                             "voucher: HTTP 201, answered code"));
  CHECK_FALSE(store->record_action(id, t + 1min, ActionState::kFailed, nullptr, std::nullopt, "twice"));
  CHECK(store->due_actions(t + 2min, 10).empty());
  CHECK_FALSE(store->next_action());
  due = store->due_notifications(t + 2min);
  REQUIRE(due.size() == 2);
  const auto entry = store->outbox_entry(id);
  REQUIRE(entry);
  CHECK(entry->notification.action == "voucher");
  CHECK(entry->notification.action_answer == nlohmann::json{{"code", "SORRY-1"}});
  CHECK(entry->action_state == ActionState::kDone);
  CHECK(entry->action_attempts == 2);
  CHECK(entry->action_detail == "voucher: HTTP 201, answered code");
  const auto decisions = store->decisions(id);
  REQUIRE(decisions.size() == 4);  // queued, an action decision per attempt, held back between them
  CHECK(decisions[1].decision == "action");
  CHECK(decisions[2].decision == "held back");
  CHECK(decisions[3].reason == "voucher: HTTP 201, answered code");
}

TEST_CASE("the console's reads: a customer by contact detail, the outbox by status, and the last day's activity") {
  EACH_BACKEND();
  store->put_entity(entity(EntityType::kCustomer, "c-1", {{"email", "Mia@Example.com"}, {"phone", "+31611111111"}}));
  store->put_entity(entity(EntityType::kCustomer, "c-2", {{"email", "noah@example.com"}}));
  store->put_entity(entity(EntityType::kOrder, "A", {{"customer", "c-1"}, {"email", "mia@example.com"}}));
  CHECK(store->customers_by_contact("mia@example.com", 10) == std::vector<std::string>{"c-1"});
  CHECK(store->customers_by_contact("+31611111111", 10) == std::vector<std::string>{"c-1"});
  CHECK(store->customers_by_contact("+31699999999", 10).empty());
  // A phone number as an operator types it, or as a source stored it, with separators.
  store->put_entity(entity(EntityType::kCustomer, "c-3", {{"phone", "(06) 1234-5678"}}));
  CHECK(store->customers_by_contact("+31 6 1111 1111", 10) == std::vector<std::string>{"c-1"});
  CHECK(store->customers_by_contact("31-611-111-111", 10) == std::vector<std::string>{"c-1"});
  CHECK(store->customers_by_contact("0612345678", 10) == std::vector<std::string>{"c-3"});
  CHECK(store->customers_by_contact("06/12.34.56.78", 10) == std::vector<std::string>{"c-3"});
  CHECK(store->customers_by_contact("+31 6 1111 111", 10).empty());  // a digit short
  CHECK(store->customers_by_contact("+ ()", 10).empty());            // no digits: matches no phone

  REQUIRE(store->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z"), "late")));
  REQUIRE(store->enqueue(notification("k2", "c-1", at("2026-11-20T11:00:00Z"), "late")));
  REQUIRE(store->enqueue(notification("k3", "c-2", at("2026-11-20T12:00:00Z"), "thanks")));
  REQUIRE(store->enqueue(notification("k4", "c-2", at("2026-11-18T12:00:00Z"), "thanks")));  // before the window
  REQUIRE(store->drop(1));
  store->record_failure(3, at("2026-11-20T12:00:01Z"), "550 no such number", std::nullopt);
  REQUIRE(store->postpone(2, at("2026-11-20T11:00:00Z"), at("2026-11-20T13:00:00Z"), "the customer wrote"));

  const auto counts = store->outbox_counts();
  CHECK(counts.at(OutboxStatus::kPending) == 2);
  CHECK(counts.at(OutboxStatus::kDropped) == 1);
  CHECK(counts.at(OutboxStatus::kDead) == 1);
  CHECK_FALSE(counts.contains(OutboxStatus::kDelivered));

  const auto pending = store->latest_outbox(OutboxStatus::kPending, 10);
  REQUIRE(pending.size() == 2);
  CHECK(pending[0].notification.idempotency_key == "k4");  // newest id first
  CHECK(store->latest_outbox(OutboxStatus::kPending, 1).size() == 1);
  CHECK(store->latest_outbox(OutboxStatus::kDead, 10).at(0).last_error == "550 no such number");

  const auto activity = store->outbox_activity(at("2026-11-19T12:00:00Z"), 100);
  REQUIRE(activity.size() == 3);
  CHECK(activity[0].id == 3);
  CHECK(activity[0].rule == "thanks");
  CHECK(activity[0].status == OutboxStatus::kDead);
  CHECK(activity[2].status == OutboxStatus::kDropped);
  CHECK(store->outbox_activity(at("2026-11-19T12:00:00Z"), 1).size() == 0);  // only the newest row is looked at

  const auto decisions = store->decisions_since(at("2026-11-20T10:30:00Z"), 100);
  REQUIRE_FALSE(decisions.empty());
  CHECK(decisions[0].rule == "late");
  CHECK(decisions[0].decision == "held back");
  CHECK(decisions[0].reason == "the customer wrote");
}

// --- PostgreSQL: several stores (replicas) on one database at once ---

TEST_CASE("two PostgreSQL stores on one database: a lost update is refused, and retried from a fresh read") {
  FreshStore one(Backend::kPostgres);
  const auto other = one.open_again();
  const EntityRef ref{EntityType::kCustomer, "c-1"};
  one->put_entity(entity(EntityType::kCustomer, "c-1", {{"n", 0}}));
  Entity read_by_one = *one->entity(ref);
  Entity read_by_other = *other->entity(ref);
  read_by_one.fields["n"] = 1;
  one->put_entity(read_by_one);
  read_by_other.fields["n"] = 2;
  CHECK_THROWS_WITH(other->put_entity(read_by_other), Catch::Contains("another writer stored it since it was read"));
  CHECK(one->entity(ref)->fields["n"] == 1);

  // Four writers, each its own connection, add one 25 times each, every
  // write a compare-and-set retried from a fresh read: no increment is lost.
  std::vector<std::thread> writers;
  std::atomic<int> conflicts{0};
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&] {
      auto store = one.open_again();
      for (int i = 0; i < 25; ++i) {
        for (;;) {
          Entity e = *store->entity(ref);
          e.fields["n"] = e.fields["n"].get<int>() + 1;
          try {
            store->put_entity(e);
            break;
          } catch (const StoreError&) {
            ++conflicts;
          }
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  CHECK(one->entity(ref)->fields["n"] == 101);
}

TEST_CASE("two PostgreSQL stores enqueue one idempotency key at once: one row, one true") {
  FreshStore one(Backend::kPostgres);
  for (int round = 0; round < 10; ++round) {
    std::atomic<int> added{0};
    std::vector<std::thread> replicas;
    for (int r = 0; r < 3; ++r) {
      replicas.emplace_back([&, round] {
        auto store = one.open_again();
        const std::string key = "k" + std::to_string(round);
        if (store->enqueue(notification(key.c_str(), "c-1", at("2026-11-20T10:00:00Z")))) ++added;
      });
    }
    for (auto& t : replicas) t.join();
    CHECK(added == 1);
  }
  CHECK(one->outbox().size() == 10);
  for (const auto& entry : one->outbox()) CHECK(one->decisions(entry.id).size() == 1);
}

TEST_CASE("PostgreSQL claimers never get the same entry, and an ended lease makes an entry due again") {
  FreshStore one(Backend::kPostgres);
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i);
    one->enqueue(notification(key.c_str(), "c-1", at("2026-11-20T10:00:00Z") + std::chrono::seconds(i)));
  }
  const Timestamp now = at("2026-11-20T11:00:00Z");
  std::mutex mutex;
  std::vector<long long> claimed;
  std::vector<std::thread> claimers;
  for (int c = 0; c < 4; ++c) {
    claimers.emplace_back([&] {
      auto store = one.open_again();
      for (;;) {
        const auto batch = store->claim_due_notifications(Channel::kSms, 7, now, 30s);
        if (batch.empty()) return;
        const std::lock_guard lock(mutex);
        for (const auto& entry : batch) claimed.push_back(entry.id);
      }
    });
  }
  for (auto& t : claimers) t.join();
  std::sort(claimed.begin(), claimed.end());
  CHECK(claimed.size() == 200);
  CHECK(std::adjacent_find(claimed.begin(), claimed.end()) == claimed.end());

  CHECK(one->claim_due_notifications(Channel::kSms, 10, now + 29s, 30s).empty());     // the leases hold
  const auto again = one->claim_due_notifications(Channel::kSms, 3, now + 30s, 30s);  // and then end
  REQUIRE(again.size() == 3);
  CHECK(again[0].notification.idempotency_key == "k0");
  CHECK(again[2].notification.idempotency_key == "k2");
  one->mark_delivered(again[0].id, now + 31s);
  CHECK_FALSE(one->outbox_entry(again[0].id)->sending_since);
}

TEST_CASE("a PostgreSQL timer fired by several replicas at once fires once") {
  FreshStore one(Backend::kPostgres);
  const Timer timer{"r", EntityRef{EntityType::kOrder, "A"}, at("2026-11-20T10:00:00Z")};
  for (int round = 0; round < 5; ++round) {
    one->schedule_timer(Timer{timer.rule, timer.entity, timer.due + std::chrono::minutes(round)});
    const Timer due = one->due_timers(at("2026-11-21T00:00:00Z"), 1).at(0);
    std::atomic<int> fired{0};
    std::vector<std::thread> replicas;
    for (int r = 0; r < 3; ++r)
      replicas.emplace_back([&] {
        if (one.open_again()->mark_timer_fired(due)) ++fired;
      });
    for (auto& t : replicas) t.join();
    CHECK(fired == 1);
  }
}

TEST_CASE("PostgreSQL stores migrating one new database at once take turns: both open, one schema") {
  test::PgDatabase db;
  std::vector<std::thread> replicas;
  std::atomic<int> opened{0};
  for (int r = 0; r < 3; ++r)
    replicas.emplace_back([&] {
      if (open_postgres_store(db.conninfo())->schema_version() == kLatest) ++opened;
    });
  for (auto& t : replicas) t.join();
  CHECK(opened == 3);
  pg::SyncConnection check(db.conninfo());
  CHECK(check.query("SELECT COUNT(*) FROM schema_migrations").rows.at(0).integer(0) == kLatest);
}

TEST_CASE("a PostgreSQL store sees other sessions' commits in its data version, not its own") {
  FreshStore one(Backend::kPostgres);
  const auto other = one.open_again();
  const long long start = one->data_version();
  one->enqueue(notification("k1", "c-1", at("2026-11-20T10:00:00Z")));
  CHECK(one->data_version() == start);
  other->drop(one->last_enqueued());
  CHECK(one->data_version() != start);
}

TEST_CASE("a lost PostgreSQL connection is a StoreError that says retrying can help, and no password shows") {
  FreshStore one(Backend::kPostgres);
  pg::SyncConnection admin(one.conninfo());
  REQUIRE(admin
              .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND pid <> pg_backend_pid()")
              .ok());
  try {
    one->entity(EntityRef{EntityType::kCustomer, "c-1"});
    FAIL("no error on a lost connection");
  } catch (const StoreError& e) {
    CHECK(e.retryable);
  }
  try {
    open_postgres_store("host=127.0.0.1 port=1 dbname=none user=nobody password=hunter2 connect_timeout=5");
    FAIL("no error without a server");
  } catch (const StoreError& e) {
    CHECK(e.retryable);
    CHECK_THAT(e.what(), !Catch::Contains("hunter2"));
  }
}

TEST_CASE("a PostgreSQL URL takes the password apart from the configuration, and logs show it masked") {
  CHECK(masked_conninfo("postgresql://tactd:s3cret@db.example:5432/tactd?sslmode=require") ==
        "postgresql://tactd:***@db.example:5432/tactd?sslmode=require");
  CHECK(masked_conninfo("host=db user=tactd password=s3cret dbname=tactd") ==
        "host=db user=tactd password=*** dbname=tactd");
  CHECK(masked_conninfo("postgres://db/tactd?password=s3cret&sslmode=require") ==
        "postgres://db/tactd?password=***&sslmode=require");
  CHECK(masked_conninfo("postgresql://db.example/tactd") == "postgresql://db.example/tactd");
  CHECK(postgres_conninfo("postgresql://tactd@db/t", "p@ss w:rd") ==
        "postgresql://tactd@db/t?password=p%40ss%20w%3Ard");
  CHECK(postgres_conninfo("postgresql://db/t?sslmode=require", "x") == "postgresql://db/t?sslmode=require&password=x");
  CHECK(postgres_conninfo("postgresql://db/t", "") == "postgresql://db/t");
  CHECK(masked_conninfo(postgres_conninfo("postgresql://db/t", "p@ss")) == "postgresql://db/t?password=***");
}

// --- the replicas' shards, leases and shared intake (ClusterStore) ---

TEST_CASE("a customer's shard is FNV-1a of the id modulo 256, the same in every process") {
  CHECK(shard_of("") == 2166136261u % 256);
  // FNV-1a("a") = 0xe40c292c
  CHECK(shard_of("a") == 0x2c);
  CHECK(shard_of("c-1") == shard_of(std::string("c-") + "1"));
  for (const char* id : {"c-1", "C-2", "customer-with-a-long-id-0001", "Ünïcode"}) {
    CHECK(shard_of(id) >= 0);
    CHECK(shard_of(id) < kShards);
  }
}

TEST_CASE("replicas give heartbeats, and the silent ones stop counting and are forgotten") {
  EACH_BACKEND();
  const Timestamp t0 = at("2026-11-20T10:00:00Z");
  store->heartbeat("a", t0);
  store->heartbeat("b", t0 + 10s);
  CHECK(store->live_replicas(t0, t0 - 1h) == 2);
  CHECK(store->live_replicas(t0 + 5s, t0 - 1h) == 1);
  store->heartbeat("a", t0 + 20s);
  CHECK(store->live_replicas(t0 + 5s, t0 - 1h) == 2);
  CHECK(store->live_replicas(t0 + 15s, t0 + 15s) == 1);  // b forgotten
  CHECK(store->live_replicas(t0, t0) == 1);
  store->leave("a");
  CHECK(store->live_replicas(t0, t0) == 0);
}

TEST_CASE("a shard lease is taken only when free, ended or already one's own, and renewed by its owner") {
  EACH_BACKEND();
  const Timestamp t0 = at("2026-11-20T10:00:00Z");
  CHECK(store->take_shard(7, "a", t0, t0 + 15s));
  CHECK_FALSE(store->take_shard(7, "b", t0 + 1s, t0 + 16s));
  CHECK(store->take_shard(7, "a", t0 + 1s, t0 + 16s));  // one's own: renewed
  CHECK(store->take_shard(9, "a", t0, t0 + 15s));
  CHECK(store->take_shard(3, "b", t0, t0 + 15s));
  CHECK(store->renew_shards("a", t0 + 20s) == std::vector<int>{7, 9});
  auto leases = store->shard_leases();
  REQUIRE(leases.size() == 3);
  CHECK(leases[0].shard == 3);
  CHECK(leases[0].owner == "b");
  CHECK(leases[1].shard == 7);
  CHECK(leases[1].until == t0 + 20s);
  // a stops renewing: its lease ends and b takes the shard; a's renewal no
  // longer names it.
  CHECK_FALSE(store->take_shard(7, "b", t0 + 19s, t0 + 34s));
  CHECK(store->take_shard(7, "b", t0 + 20s, t0 + 35s));
  CHECK(store->renew_shards("a", t0 + 40s) == std::vector<int>{9});
  // Released shards are free at once, to anyone.
  const std::vector<int> nine{9};
  store->release_shards("b", nine);  // not b's: nothing
  CHECK_FALSE(store->take_shard(9, "b", t0 + 21s, t0 + 36s));
  store->release_shards("a", nine);
  CHECK(store->take_shard(9, "b", t0 + 21s, t0 + 36s));
  store->release_shards("b", {});
  CHECK(store->renew_shards("b", t0 + 50s).empty());
  CHECK(store->take_shard(3, "c", t0 + 22s, t0 + 37s));
}

TEST_CASE("several shards are taken in one call, each only when free, ended or one's own") {
  EACH_BACKEND();
  const Timestamp t0 = at("2026-11-20T10:00:00Z");
  CHECK(store->take_shard(2, "b", t0, t0 + 15s));
  CHECK(store->take_shard(4, "b", t0, t0 + 5s));
  const std::vector<int> wanted{1, 2, 3, 4};
  CHECK(store->take_shards(wanted, "a", t0 + 6s, t0 + 21s) == std::vector<int>{1, 3, 4});
  CHECK(store->renew_shards("b", t0 + 30s) == std::vector<int>{2});
  CHECK(store->take_shards(wanted, "a", t0 + 7s, t0 + 22s) == std::vector<int>{1, 3, 4});
}

TEST_CASE("a replica that leaves gives up its shards and sources") {
  EACH_BACKEND();
  const Timestamp t0 = at("2026-11-20T10:00:00Z");
  store->heartbeat("a", t0);
  CHECK(store->take_shard(1, "a", t0, t0 + 15s));
  CHECK(store->take_source("orders", "a", t0, t0 + 15s));
  store->leave("a");
  CHECK(store->take_shard(1, "b", t0 + 1s, t0 + 16s));
  CHECK(store->take_source("orders", "b", t0 + 1s, t0 + 16s));
}

TEST_CASE("a source lease is held by one replica at a time") {
  EACH_BACKEND();
  const Timestamp t0 = at("2026-11-20T10:00:00Z");
  CHECK(store->take_source("orders", "a", t0, t0 + 15s));
  CHECK_FALSE(store->take_source("orders", "b", t0 + 5s, t0 + 20s));
  CHECK(store->take_source("orders", "a", t0 + 5s, t0 + 20s));
  CHECK(store->take_source("shipments", "b", t0 + 5s, t0 + 20s));
  CHECK(store->take_source("orders", "b", t0 + 20s, t0 + 35s));  // a's lease ended
  CHECK_FALSE(store->take_source("orders", "a", t0 + 21s, t0 + 36s));
  store->release_source("b", "orders");
  CHECK(store->take_source("orders", "a", t0 + 22s, t0 + 37s));
  CHECK(store->take_source("shipments", "b", t0 + 22s, t0 + 37s));
  CHECK_FALSE(store->take_source("shipments", "a", t0 + 23s, t0 + 38s));
  store->release_source("b", "");
  CHECK(store->take_source("shipments", "a", t0 + 23s, t0 + 38s));
}

TEST_CASE("the shared intake gives a shard's observations in order and forgets them with the applying commit") {
  EACH_BACKEND();
  const Timestamp t0 = at("2026-11-20T10:00:00Z");
  const auto observation = [&](const char* id, const char* status) {
    return Observation{EntityRef{EntityType::kOrder, id}, t0, {{"customer", "c-1"}, {"status", status}}, false};
  };
  store->put_intake(5, observation("A", "paid"), t0);
  store->put_intake(6, observation("B", "paid"), t0);
  store->put_intake(5, observation("A", "shipped"), t0 + 1s);
  CHECK(store->intake_size() == 3);
  CHECK(store->intake_shards() == std::vector<int>{5, 6});
  const std::vector<int> five{5};
  {
    auto tx = store->begin();
    const auto got = tx->claim_intake(five, 10);
    REQUIRE(got.size() == 2);
    CHECK(got[0].observation.fields["status"] == "paid");
    CHECK(got[1].observation.fields["status"] == "shipped");
    CHECK(got[1].observation.partial == std::optional<bool>(false));
    CHECK(got[0].id < got[1].id);
    CHECK(got[0].shard == 5);
    CHECK(got[1].received_at == t0 + 1s);
    // Not committed: the entries stay.
  }
  CHECK(store->intake_size() == 3);
  {
    auto tx = store->begin();
    const auto got = tx->claim_intake(five, 1);
    REQUIRE(got.size() == 1);
    const std::vector<long long> ids{got[0].id};
    tx->delete_intake(ids);
    tx->commit();
  }
  CHECK(store->intake_size() == 2);
  const std::vector<int> both{5, 6};
  const auto rest = store->claim_intake(both, 10);
  REQUIRE(rest.size() == 2);
  CHECK(rest[0].observation.ref.id == "B");
  CHECK(rest[1].observation.fields["status"] == "shipped");
  store->delete_intake(std::vector<long long>{rest[0].id});
  CHECK(store->intake_shards() == std::vector<int>{5});
  store->delete_intake(std::vector<long long>{rest[1].id});
  CHECK(store->intake_shards().empty());
}

TEST_CASE("PostgreSQL replicas taking one free shard at once: exactly one gets it") {
  FreshStore one(Backend::kPostgres);
  const Timestamp t0 = at("2026-11-20T10:00:00Z");
  for (int shard = 0; shard < 5; ++shard) {
    std::atomic<int> took{0};
    std::vector<std::thread> replicas;
    for (int r = 0; r < 3; ++r)
      replicas.emplace_back([&, r] {
        if (one.open_again()->take_shard(shard, "r" + std::to_string(r), t0, t0 + 15s)) ++took;
      });
    for (auto& t : replicas) t.join();
    CHECK(took == 1);
  }
}

TEST_CASE("PostgreSQL consumers of the shared intake get disjoint entries and do not wait for each other") {
  FreshStore one(Backend::kPostgres);
  const Timestamp t0 = at("2026-11-20T10:00:00Z");
  for (int i = 0; i < 4; ++i)
    one->put_intake(
        1, Observation{EntityRef{EntityType::kOrder, "A" + std::to_string(i)}, t0, {{"status", "paid"}}, std::nullopt},
        t0);
  const auto other = one.open_again();
  const std::vector<int> shard{1};
  auto tx = one->begin();
  std::vector<std::string> unreadable;
  const auto first = tx->claim_intake(shard, 2, &unreadable);
  CHECK(unreadable.empty());
  auto other_tx = other->begin();
  const auto second = other_tx->claim_intake(shard, 10);  // would block without SKIP LOCKED
  REQUIRE(first.size() == 2);
  REQUIRE(second.size() == 2);
  CHECK(second[0].id > first[1].id);
}
