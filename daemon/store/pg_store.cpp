#include "store/pg_store.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "postgres/connection.h"
#include "postgres/sync_connection.h"
#include "store/migrations.h"
#include "store/row_codec.h"
#include "store/state_runner.h"

namespace tactd {
namespace {

using namespace store_rows;
using pg::Params;
using pg::Row;

std::int64_t ms(Timestamp t) { return static_cast<std::int64_t>(millis(t)); }
std::optional<std::int64_t> ms(std::optional<Timestamp> t) {
  if (!t) return std::nullopt;
  return ms(*t);
}
std::string text(std::string_view s) { return std::string(s); }

// An array literal of PostgreSQL ('{1,2,3}') for `= ANY($n::int[])`.
std::string int_array(std::span<const int> values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + std::to_string(values[i]);
  return out + "}";
}

// A LIMIT: NULL is none (OutboxStore::kNoLimit, or more than a BIGINT holds).
std::optional<std::int64_t> limit_of(std::size_t limit) {
  if (limit > static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
  return static_cast<std::int64_t>(limit);
}

// A statement the server refused; guard() turns it into StoreError.
struct Failed {
  pg::Error error;
};

std::optional<std::string> opt_text(const Row& r, std::size_t c) {
  if (r.is_null(c)) return std::nullopt;
  return r.text(c);
}
std::optional<Timestamp> opt_time(const Row& r, std::size_t c) {
  if (r.is_null(c)) return std::nullopt;
  return from_millis(r.integer(c));
}

constexpr const char* kNotificationColumns =
    "id, idempotency_key, due_at, rule, kind, customer, entity, channel, recipient, subject, body, locale, "
    "time_zone, status, attempts, next_attempt_at, last_error, event, sending_since, action, action_state, "
    "action_answer, action_attempts, action_next_at, action_detail";

std::string select_entries(const std::string& rest) {
  return std::string("SELECT ") + kNotificationColumns + " FROM outbox " + rest;
}

OutboxEntry read_entry(const Row& r) {
  OutboxEntry e;
  e.id = r.integer(0);
  Notification& n = e.notification;
  n.idempotency_key = r.text(1);
  n.at = from_millis(r.integer(2));
  n.rule = r.text(3);
  n.kind = kind_from(r.text(4));
  n.customer = r.text(5);
  n.entity = ref_from(r.text(6));
  n.channel = channel_from(r.text(7));
  n.to = r.text(8);
  n.subject = opt_text(r, 9);
  n.body = r.text(10);
  n.locale = r.text(11);
  n.time_zone = r.text(12);
  e.status = decode(parse_status(r.text(13)), "outbox status", r.text(13));
  e.attempts = static_cast<int>(r.integer(14));
  e.next_attempt = opt_time(r, 15);
  e.last_error = opt_text(r, 16).value_or("");
  if (!r.is_null(17)) {
    try {
      n.event = nlohmann::json::parse(r.text(17));
    } catch (const nlohmann::json::exception& error) {
      throw CorruptRow(std::string("its event is not JSON: ") + error.what());
    }
  }
  e.sending_since = opt_time(r, 18);
  n.action = opt_text(r, 19).value_or("");
  if (!r.is_null(20)) {
    const std::string& state = r.text(20);
    bool known = false;
    for (const ActionState s : {ActionState::kPending, ActionState::kDone, ActionState::kFailed})
      if (to_string(s) == state) e.action_state = s, known = true;
    if (!known) throw CorruptRow("unknown action state '" + state + "'");
  }
  if (!r.is_null(21)) {
    try {
      n.action_answer = nlohmann::json::parse(r.text(21));
    } catch (const nlohmann::json::exception& error) {
      throw CorruptRow(std::string("its action's answer is not JSON: ") + error.what());
    }
  }
  e.action_attempts = static_cast<int>(r.integer(22));
  e.action_next = opt_time(r, 23);
  e.action_detail = opt_text(r, 24).value_or("");
  return e;
}

constexpr const char* kEntityColumns = "type, id, fields, observed_at, first_seen_at, version";

Entity read_entity(const Row& r) {
  return Entity{EntityRef{type_from(r.text(0)), r.text(1)}, from_millis(r.integer(3)), nlohmann::json::parse(r.text(2)),
                opt_time(r, 4), r.integer(5)};
}

constexpr const char* kWaitingColumns = "id, rule, entity, trigger, event, waiting_for, since, until, reason";

std::vector<WaitingIntent> read_waiting(const pg::Result& result) {
  std::vector<WaitingIntent> out;
  for (const Row& r : result.rows) {
    WaitingIntent w;
    w.id = r.integer(0);
    w.rule = r.text(1);
    w.entity = ref_from(r.text(2));
    w.trigger = r.text(3);
    if (!r.is_null(4)) w.event = nlohmann::json::parse(r.text(4));
    w.waiting_for = ref_from(r.text(5));
    w.since = from_millis(r.integer(6));
    w.until = from_millis(r.integer(7));
    w.reason = r.text(8);
    out.push_back(std::move(w));
  }
  return out;
}

constexpr const char* kReplyColumns =
    "id, at, channel, provider, provider_id, sender, recipient, subject, text, stop, customer, notification, entity, "
    "matched_by, forwarded_at";

std::vector<Reply> read_replies(const pg::Result& result) {
  std::vector<Reply> out;
  for (const Row& row : result.rows) {
    Reply r;
    r.id = row.integer(0);
    r.at = from_millis(row.integer(1));
    r.channel = channel_from(row.text(2));
    r.provider = row.text(3);
    r.provider_id = row.text(4);
    r.from = row.text(5);
    r.to = row.text(6);
    r.subject = opt_text(row, 7);
    r.text = row.text(8);
    r.stop = row.integer(9) != 0;
    r.customer = row.text(10);
    r.notification = row.text(11);
    if (!row.is_null(12)) r.entity = ref_from(row.text(12));
    r.matched_by = row.text(13);
    r.forwarded_at = opt_time(row, 14);
    out.push_back(std::move(r));
  }
  return out;
}

std::string set_aside_reason(const std::string& why) { return "unreadable, set aside: " + why; }

// The parent and status columns put_entity() keeps beside the fields.
std::optional<std::string> status_of(const Entity& entity) {
  if (const auto status = entity.fields.find("status"); status != entity.fields.end() && status->is_string())
    return status->get<std::string>();
  return std::nullopt;
}

// Where PgStore's statements go: one connection, a transaction at a time.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual pg::Result query(const std::string& sql, const Params& params) = 0;
  // Prepared once per connection (again after a reconnection), then run by name.
  virtual pg::Result query_prepared(const std::string& sql, const Params& params) = 0;
  virtual pg::Result begin() = 0;
  virtual pg::Result commit() = 0;
  // Rolls the open transaction back, if any, without waiting for the
  // server when it can (a destructor, an exception on its way).
  virtual void abandon() = 0;
  // Throws std::logic_error when a call for `what` may not be made here.
  virtual void check(const std::string& what) const = 0;
  virtual FiberScheduler* fibers() { return nullptr; }
  virtual void watch(std::function<void(Store::Change)> changed) { (void)changed; }
};

// Blocking: the command-line verbs and tests, which have no loop to stall.
class SyncExecutor final : public Executor {
 public:
  explicit SyncExecutor(const std::string& conninfo) : conn_(conninfo) {
    if (conn_.error()) {
      StoreError error("cannot connect to the state database " + masked_conninfo(conninfo) + ": " +
                       conn_.error()->message);
      error.retryable = conn_.error()->retryable();
      throw error;
    }
  }
  pg::Result query(const std::string& sql, const Params& params) override { return conn_.query(sql, params); }
  pg::Result query_prepared(const std::string& sql, const Params& params) override {
    return conn_.query_prepared(sql, params);
  }
  pg::Result begin() override { return conn_.query("BEGIN"); }
  pg::Result commit() override { return conn_.query("COMMIT"); }
  void abandon() override { conn_.query("ROLLBACK"); }  // an error here leaves nothing to undo
  void check(const std::string&) const override {}

 private:
  pg::SyncConnection conn_;
};

// The daemon's: each statement goes out on the asynchronous pg::Connection
// (libpq's non-blocking interface on the loop) and the calling fiber is
// suspended until its answer is back (state_runner.h says why the loop
// cannot stall). A call made on the loop outside a fiber is refused with
// std::logic_error; while the scheduler unwinds its fibers (the daemon is
// being destroyed), every call fails at once.
class FiberExecutor final : public Executor {
 public:
  // Connects in the background (pg::Connection logs a loss and connects
  // again with backoff; calls meanwhile fail with a retryable error).
  FiberExecutor(boost::asio::io_context& io, const std::string& conninfo)
      : io_(io), conninfo_(conninfo), conn_(pg::Connection::open(io, options(conninfo))), fibers_(io) {}

  pg::Result query(const std::string& sql, const Params& params) override {
    if (tx_) return await(sql, [tx = &*tx_, sql, params] { return tx->query(sql, params); });
    return await(sql, [conn = conn_.get(), sql, params] { return conn->query(sql, params); });
  }
  pg::Result query_prepared(const std::string& sql, const Params& params) override {
    if (tx_) return await(sql, [tx = &*tx_, sql, params] { return tx->query_prepared(sql, params); });
    return await(sql, [conn = conn_.get(), sql, params] { return conn->query_prepared(sql, params); });
  }
  pg::Result begin() override {
    if (fibers_.closing()) return closed();
    check("BEGIN");
    auto slot = std::make_shared<std::shared_ptr<pg::Transaction>>();
    auto failed = std::make_shared<std::optional<pg::Error>>();
    fibers_.wait([&](std::function<void()> wake) {
      boost::asio::post(io_, [conn = conn_.get(), slot, failed, wake, &io = io_] {
        boost::asio::co_spawn(io, begun(conn),
                              [slot, failed, wake](std::exception_ptr error, std::shared_ptr<pg::Transaction> tx) {
                                if (error || !tx)
                                  failed->emplace(pg::Error{pg::ErrorKind::other, "", "BEGIN failed unexpectedly"});
                                else
                                  *slot = std::move(tx);
                                wake();
                              });
      });
    });
    if (*failed) return failure(**failed);
    if (!(*slot)->ok()) return failure(*(*slot)->error());
    tx_.emplace(std::move(**slot));
    return {};
  }
  pg::Result commit() override {
    if (!tx_) return failure(pg::Error{pg::ErrorKind::other, "", "no transaction is open"});
    pg::Result result = await("COMMIT", [tx = &*tx_] { return tx->commit(); });
    tx_.reset();
    return result;
  }
  void abandon() override { tx_.reset(); }  // pg::Transaction queues the ROLLBACK first on its connection
  void check(const std::string& what) const override {
    if (fibers_.closing() || fibers_.on_fiber()) return;
    throw std::logic_error("the state was asked to " + what +
                           " on the event loop outside StateRunner::run(): it would wait there for the database "
                           "(store/state_runner.h)");
  }
  FiberScheduler* fibers() override { return &fibers_; }

  // A connection of its own, as the store's is taken by its transactions;
  // it listens again after each reconnection (pg::Connection, which logs a
  // loss; meanwhile the others' changes are seen at the next look). The
  // NOTIFYs come from the triggers of schema step 22, at commit.
  void watch(std::function<void(Store::Change)> changed) override {
    pg::ConnectionOptions listening = options(conninfo_);
    listening.on_notification = [changed = std::move(changed)](const pg::Notification& n) {
      if (n.channel == kOutboxChanged)
        changed(Store::Change::kOutbox);
      else if (n.channel == kIntakeChanged)
        changed(Store::Change::kIntake);
    };
    listener_ = pg::Connection::open(io_, std::move(listening));
    for (const char* channel : {kOutboxChanged, kIntakeChanged})
      boost::asio::co_spawn(io_, listener_->listen(channel), [channel](std::exception_ptr failure, pg::Result result) {
        if (failure || result.error)
          spdlog::error("state: cannot listen on {}: {}", channel,
                        result.error ? result.error->message : "an unexpected failure");
      });
  }

 private:
  static constexpr const char* kOutboxChanged = "tactd_outbox";
  static constexpr const char* kIntakeChanged = "tactd_intake";

  static pg::Result failure(pg::Error error) {
    pg::Result result;
    result.error = std::move(error);
    return result;
  }
  static pg::ConnectionOptions options(const std::string& conninfo) {
    pg::ConnectionOptions options;
    options.conninfo = conninfo;
    return options;
  }
  // co_spawn needs a result it can default-construct.
  static boost::asio::awaitable<std::shared_ptr<pg::Transaction>> begun(pg::Connection* conn) {
    co_return std::make_shared<pg::Transaction>(co_await conn->begin());
  }
  static pg::Result closed() { return failure(pg::Error{pg::ErrorKind::connection, "08006", "the state is closing"}); }

  // Starts the statement `make()` gives from the loop and suspends the
  // fiber until its result is back.
  template <typename Make>
  pg::Result await(const std::string& sql, Make make) {
    if (fibers_.closing()) return closed();
    check("run \"" + sql.substr(0, 80) + "\"");
    auto slot = std::make_shared<std::optional<pg::Result>>();
    fibers_.wait([&](std::function<void()> wake) {
      boost::asio::post(io_, [make = std::move(make), slot, wake, &io = io_]() mutable {
        boost::asio::co_spawn(io, make(), [slot, wake](std::exception_ptr error, pg::Result result) {
          if (error)
            slot->emplace(failure(pg::Error{pg::ErrorKind::other, "", "the statement failed unexpectedly"}));
          else
            slot->emplace(std::move(result));
          wake();
        });
      });
    });
    return std::move(**slot);
  }

  boost::asio::io_context& io_;
  const std::string conninfo_;
  std::unique_ptr<pg::Connection> listener_;  // watch()
  std::unique_ptr<pg::Connection> conn_;
  std::optional<pg::Transaction> tx_;  // the open transaction: statements go into it
  // Destroyed first: its suspended fibers unwind while the transaction and
  // the connection still exist; the transaction's ROLLBACK is then queued,
  // never awaited, and the connection closes.
  FiberScheduler fibers_;
};

class PgStore final : public Store {
 public:
  // Migrates first (under the advisory lock) unless `version` says which
  // schema an earlier opening left.
  explicit PgStore(std::unique_ptr<Executor> executor, std::optional<int> version = std::nullopt)
      : conn_(std::move(executor)) {
    if (version)
      version_ = *version;
    else
      migrate();
  }

  FiberScheduler* fibers() override { return conn_->fibers(); }
  void watch(std::function<void(Change)> changed) override { conn_->watch(std::move(changed)); }

  int schema_version() const override { return version_; }
  Sync sync() const override { return Sync::kFull; }

  std::unique_ptr<Transaction> begin() override {
    if (transaction_open()) throw StoreError("a transaction is already open (transactions do not nest)");
    return guard("begin a transaction", [&] { return std::make_unique<Tx>(*this); });
  }

  long long data_version() const override {
    const AnyCaller any(*this);  // the connection's, no role's: answered within a transaction too
    return guard("read the data version", [&] {
      return static_cast<long long>(
          run_prepared("SELECT COALESCE(SUM(n), 0)::bigint FROM data_versions WHERE backend <> pg_backend_pid()")
              .rows.at(0)
              .integer(0));
    });
  }

  // --- entities ---

  std::optional<Entity> entity(const EntityRef& ref) const override {
    return guard("read entity " + ref.str(), [&]() -> std::optional<Entity> {
      const auto r =
          run_prepared(std::string("SELECT ") + kEntityColumns + " FROM entities WHERE type = $1 AND id = $2",
                       Params(text(to_string(ref.type)), ref.id));
      if (r.rows.empty()) return std::nullopt;
      return read_entity(r.rows[0]);
    });
  }

  void put_entity(const Entity& entity) override {
    guard("store entity " + entity.ref.str(), [&] {
      // As SQLite's: one statement inserts a new entity (version 1) or
      // updates a stored one only from the version it was read at; a row
      // neither inserted nor updated is the conflict. Under READ COMMITTED
      // a concurrent writer's update is waited for and the version checked
      // again against what it committed.
      const auto parent = entity.parent();
      Params p(text(to_string(entity.ref.type)), entity.ref.id, entity.fields.dump(), ms(entity.observed_at));
      p.add(parent ? std::optional<std::string>(text(to_string(parent->type))) : std::nullopt);
      p.add(parent ? std::optional<std::string>(parent->id) : std::nullopt);
      p.add(ms(entity.first_seen.value_or(entity.observed_at)));
      p.add(status_of(entity));
      p.add(static_cast<std::int64_t>(entity.version));
      const auto r = run_prepared(
          "INSERT INTO entities (type, id, fields, observed_at, parent_type, parent_id, first_seen_at, status, "
          "version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) ON CONFLICT (type, id) DO UPDATE SET "
          "fields = excluded.fields, observed_at = excluded.observed_at, parent_type = excluded.parent_type, "
          "parent_id = excluded.parent_id, first_seen_at = COALESCE(entities.first_seen_at, excluded.first_seen_at), "
          "status = excluded.status, version = entities.version + 1 WHERE entities.version = $9",
          p);
      if (r.affected != 1) throw_written_meanwhile(entity);
      return 0;
    });
  }

  void touch_entity(const Entity& entity, Timestamp observed_at) override {
    guard("store entity " + entity.ref.str(), [&] {
      const auto r = run_prepared("UPDATE entities SET observed_at = $1 WHERE type = $2 AND id = $3 AND version = $4",
                                  Params(ms(observed_at), text(to_string(entity.ref.type)), entity.ref.id,
                                         static_cast<std::int64_t>(entity.version)));
      if (r.affected != 1) throw_written_meanwhile(entity);
      return 0;
    });
  }

  [[noreturn]] static void throw_written_meanwhile(const Entity& entity) {
    throw StoreError("cannot store entity " + entity.ref.str() + ": another writer stored it since it was read" +
                     (entity.version ? " at version " + std::to_string(entity.version) : " as new") +
                     "; run the transaction again from a fresh read");
  }

  std::optional<Entity> latest_child(const EntityRef& parent, EntityType type) const override {
    return guard("read the latest " + text(to_string(type)) + " of " + parent.str(), [&]() -> std::optional<Entity> {
      const auto r = run_prepared(std::string("SELECT ") + kEntityColumns +
                                      " FROM entities WHERE parent_type = $1 AND parent_id = $2 AND type = $3 "
                                      "ORDER BY observed_at DESC, id DESC LIMIT 1",
                                  Params(text(to_string(parent.type)), parent.id, text(to_string(type))));
      if (r.rows.empty()) return std::nullopt;
      return read_entity(r.rows[0]);
    });
  }

  std::size_t count_children(const EntityRef& parent, EntityType type, const std::string& status) const override {
    return guard("count the " + text(to_string(type)) + "s of " + parent.str(), [&] {
      const auto r = run_prepared(
          "SELECT n FROM child_counts WHERE parent_type = $1 AND parent_id = $2 AND type = $3 AND status = $4",
          Params(text(to_string(parent.type)), parent.id, text(to_string(type)), status));
      return r.rows.empty() ? std::size_t{0} : static_cast<std::size_t>(r.rows[0].integer(0));
    });
  }

  std::vector<Entity> entities(EntityType type, const std::string& after_id, std::size_t limit) const override {
    return guard("read entities of type " + text(to_string(type)), [&] {
      Params p(text(to_string(type)), after_id);
      p.add(limit_of(limit));
      const auto r = run_prepared(
          std::string("SELECT ") + kEntityColumns + " FROM entities WHERE type = $1 AND id > $2 ORDER BY id LIMIT $3",
          p);
      std::vector<Entity> out;
      for (const Row& row : r.rows) out.push_back(read_entity(row));
      return out;
    });
  }

  std::vector<std::string> customers_by_contact(const std::string& contact, std::size_t limit) const override {
    return guard("find the customers with the contact detail " + contact, [&] {
      Params p(contact);
      p.add(limit_of(limit));
      const std::string key = phone_key(contact);
      p.add(key.empty() ? std::optional<std::string>() : std::optional<std::string>(key));
      // The expressions of the indexes of migrations 18 and 23.
      const auto r = run_prepared(
          "SELECT id FROM entities WHERE type = 'customer' AND lower(fields::jsonb ->> 'email') = lower($1) "
          "UNION SELECT id FROM entities WHERE type = 'customer' AND translate(fields::jsonb ->> 'phone', "
          "' -+()./', '') = $3 ORDER BY id LIMIT $2",
          p);
      std::vector<std::string> out;
      for (const Row& row : r.rows) out.push_back(row.text(0));
      return out;
    });
  }

  std::vector<Entity> customer_entities(const std::string& customer, std::size_t limit) const override {
    return guard("read the entities of " + customer, [&] {
      const std::string columns = std::string("SELECT ") + kEntityColumns + " FROM entities ";
      Params p(customer);
      p.add(limit_of(limit));
      const auto r = run_prepared(
          columns + "WHERE type = 'customer' AND id = $1 UNION ALL " + columns +
              "WHERE parent_type = 'customer' AND parent_id = $1 UNION ALL " + columns +
              "WHERE parent_type = 'order' AND parent_id IN (SELECT id FROM entities WHERE parent_type = 'customer' "
              "AND parent_id = $1 AND type = 'order') ORDER BY observed_at DESC, type, id LIMIT $2",
          p);
      std::vector<Entity> out;
      for (const Row& row : r.rows) out.push_back(read_entity(row));
      return out;
    });
  }

  // --- the outbox ---

  bool enqueue(const Notification& n, const std::string& why) override {
    return guard("enqueue " + n.idempotency_key, [&] {
      // One statement, so atomic without a transaction: the row, deduplicated
      // by the idempotency key's UNIQUE constraint (a concurrent enqueue of
      // the same key waits for the first and then inserts nothing), and its
      // decision "queued".
      Params p(n.idempotency_key, ms(n.at), n.rule, text(to_string(n.kind)), n.customer, n.entity.str(),
               text(to_string(n.channel)), n.to);
      p.add(n.subject);
      p.add(n.body).add(n.locale).add(n.time_zone);
      p.add(n.event.is_null() ? std::nullopt : std::optional<std::string>(n.event.dump()));
      p.add(n.channel == Channel::kEmail ? std::optional<std::string>(message_ref(n.idempotency_key)) : std::nullopt);
      p.add(address_key(n.channel, n.to));
      p.add(n.action.empty() ? std::nullopt : std::optional<std::string>(n.action));
      p.add(n.action.empty() ? std::nullopt : std::optional<std::string>("pending"));
      p.add(why);
      const auto r = run_prepared(
          "WITH added AS (INSERT INTO outbox (idempotency_key, created_at, due_at, rule, kind, customer, entity, "
          "channel, recipient, subject, body, locale, time_zone, event, message_ref, recipient_key, action, "
          "action_state, status) VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
          "$17, 'pending') ON CONFLICT (idempotency_key) DO NOTHING RETURNING id), "
          "decided AS (INSERT INTO outbox_decisions (outbox_id, at, decision, reason) "
          "SELECT id, $2, 'queued', $18 FROM added) SELECT id FROM added",
          p);
      if (r.rows.empty()) return false;
      last_enqueued_ = r.rows[0].integer(0);
      return true;
    });
  }

  long long last_enqueued() const override { return last_enqueued_; }

  bool has_notification(const std::string& key) const override {
    return guard("look up " + key, [&] {
      return !run_prepared("SELECT 1 FROM outbox WHERE idempotency_key = $1", Params(key)).rows.empty();
    });
  }

  std::vector<Notification> notifications_since(const std::string& customer, Timestamp since) const override {
    return guard("read notifications of " + customer, [&] {
      std::vector<Notification> out;
      for (auto& entry : entries(select_entries("WHERE customer = $1 AND due_at >= $2 AND status NOT IN "
                                                "('dropped', 'overtaken') ORDER BY due_at, id"),
                                 Params(customer, ms(since)), false))
        out.push_back(std::move(entry.notification));
      return out;
    });
  }

  std::optional<Timestamp> latest_notification_at(const std::string& customer) const override {
    return guard("read the latest notification of " + customer, [&]() -> std::optional<Timestamp> {
      const auto r = run_prepared(
          "SELECT due_at FROM outbox WHERE customer = $1 AND status IN ('pending', 'delivered', 'unknown') "
          "ORDER BY due_at DESC LIMIT 1",
          Params(customer));
      if (r.rows.empty()) return std::nullopt;
      return from_millis(r.rows[0].integer(0));
    });
  }

  std::optional<Notification> last_notification(const std::string& rule, const std::string& customer) const override {
    return guard("read the last notification of " + rule, [&]() -> std::optional<Notification> {
      auto found = entries(select_entries("WHERE rule = $1 AND customer = $2 AND status NOT IN ('dropped', "
                                          "'overtaken') ORDER BY due_at DESC, id DESC LIMIT 1"),
                           Params(rule, customer), false);
      if (found.empty()) return std::nullopt;
      return std::move(found.front().notification);
    });
  }

  std::vector<OutboxEntry> outbox(std::optional<OutboxStatus> status) const override {
    return guard("read the outbox", [&] {
      if (status)
        return entries(select_entries("WHERE status = $1 ORDER BY id"), Params(text(to_string(*status))), true);
      return entries(select_entries("ORDER BY id"), Params(), true);
    });
  }

  std::vector<Kind> kinds_about(const EntityRef& entity) const override {
    return guard("read the notifications about " + entity.str(), [&] {
      const auto r = run_prepared(
          "SELECT kind FROM outbox WHERE entity = $1 AND status NOT IN ('dropped', 'overtaken') ORDER BY id",
          Params(entity.str()));
      std::vector<Kind> out;
      for (const Row& row : r.rows)  // an unknown kind is a row that readers of whole entries set aside
        if (auto kind = parse_kind(row.text(0))) out.push_back(*kind);
      return out;
    });
  }

  std::vector<OutboxEntry> pending_about(const EntityRef& entity) const override {
    return guard("read the pending notifications about " + entity.str(), [&] {
      return entries(select_entries("WHERE entity = $1 AND status = 'pending' ORDER BY id"), Params(entity.str()),
                     false);
    });
  }

  bool drop(long long outbox_id) override {
    return guard("drop outbox entry " + std::to_string(outbox_id), [&] {
      return run_prepared(
                 "UPDATE outbox SET status = 'dropped' WHERE id = $1 AND status IN ('pending', 'dead', "
                 "'unknown')",
                 Params(id(outbox_id)))
                 .affected == 1;
    });
  }

  bool mark_overtaken(long long outbox_id, Timestamp at, const std::string& reason) override {
    return guard("mark outbox entry " + std::to_string(outbox_id) + " overtaken", [&] {
      return run_prepared(
                 "WITH changed AS (UPDATE outbox SET status = 'overtaken', last_error = $2, sending_since = NULL, "
                 "lease_until = NULL WHERE id = $1 AND status = 'pending' RETURNING id), "
                 "decided AS (INSERT INTO outbox_decisions (outbox_id, at, decision, reason) "
                 "SELECT id, $3, 'overtaken', $2 FROM changed) SELECT id FROM changed",
                 Params(id(outbox_id), reason, ms(at)))
                 .rows.size() == 1;
    });
  }

  void update_message(long long outbox_id, const Notification& n) override {
    guard("update the message of outbox entry " + std::to_string(outbox_id), [&] {
      Params p(n.to);
      p.add(n.subject);
      p.add(n.body).add(n.locale).add(n.time_zone).add(address_key(n.channel, n.to)).add(id(outbox_id));
      run_prepared(
          "UPDATE outbox SET recipient = $1, subject = $2, body = $3, locale = $4, time_zone = $5, "
          "recipient_key = $6 WHERE id = $7",
          p);
      return 0;
    });
  }

  void record_decision(long long outbox_id, Timestamp at, const std::string& decision,
                       const std::string& reason) override {
    guard("record a decision about outbox entry " + std::to_string(outbox_id), [&] {
      run_prepared("INSERT INTO outbox_decisions (outbox_id, at, decision, reason) VALUES ($1, $2, $3, $4)",
                   Params(id(outbox_id), ms(at), decision, reason));
      return 0;
    });
  }

  std::vector<OutboxDecision> decisions(long long outbox_id) const override {
    return guard("read the decisions about outbox entry " + std::to_string(outbox_id), [&] {
      const auto r = run_prepared("SELECT at, decision, reason FROM outbox_decisions WHERE outbox_id = $1 ORDER BY id",
                                  Params(id(outbox_id)));
      std::vector<OutboxDecision> out;
      for (const Row& row : r.rows)
        out.push_back(OutboxDecision{from_millis(row.integer(0)), row.text(1), row.text(2)});
      return out;
    });
  }

  void mark_delivered(long long outbox_id, Timestamp at, const std::string& detail) override {
    guard("mark outbox entry " + std::to_string(outbox_id) + " delivered", [&] {
      // One statement: the verdict, its attempt and the contact commit
      // together without a transaction of their own.
      const auto r = run_prepared(
          "WITH d AS (UPDATE outbox SET status = 'delivered', attempts = attempts + 1, next_attempt_at = NULL, "
          "last_error = NULL, sending_since = NULL, lease_until = NULL WHERE id = $1 RETURNING *), "
          "a AS (INSERT INTO delivery_attempts (outbox_id, number, at, outcome, detail) "
          "SELECT id, attempts, $2, 'delivered', $3 FROM d), "
          "c AS (INSERT INTO contacts (customer, at, kind, rule, entity, channel, idempotency_key) "
          "SELECT customer, $2, kind, rule, entity, channel, idempotency_key FROM d) SELECT id FROM d",
          Params(id(outbox_id), ms(at), detail));
      if (r.rows.empty()) throw StoreError("no outbox entry " + std::to_string(outbox_id));
      return 0;
    });
  }

  void record_failure(long long outbox_id, Timestamp at, const std::string& detail,
                      std::optional<Timestamp> retry_at) override {
    guard("record a failed delivery of outbox entry " + std::to_string(outbox_id), [&] {
      // The attempt is recorded even when the entry was dropped meanwhile
      // (it then stays dropped and its claim ends: `d`), numbered after the
      // ones before. `u` and `d` change the row on exclusive conditions.
      Params p(id(outbox_id), retry_at ? "pending" : "dead");
      p.add(ms(retry_at)).add(detail).add(ms(at)).add(retry_at ? "retry" : "dead");
      const auto r = run_prepared(
          "WITH e AS (SELECT id, attempts FROM outbox WHERE id = $1 FOR UPDATE), "
          "u AS (UPDATE outbox SET status = $2, attempts = attempts + 1, next_attempt_at = $3, last_error = $4, "
          "sending_since = NULL, lease_until = NULL WHERE id = $1 AND status = 'pending'), "
          "d AS (UPDATE outbox SET sending_since = NULL, lease_until = NULL WHERE id = $1 AND status <> 'pending') "
          "INSERT INTO delivery_attempts (outbox_id, number, at, outcome, detail) "
          "SELECT id, attempts + 1, $5, $6, $4 FROM e RETURNING id",
          p);
      if (r.rows.empty()) throw StoreError("no outbox entry " + std::to_string(outbox_id));
      return 0;
    });
  }

  bool retry(long long outbox_id, Timestamp now) override {
    return guard("retry outbox entry " + std::to_string(outbox_id), [&] {
      return run_prepared(
                 "UPDATE outbox SET status = 'pending', next_attempt_at = $1 WHERE id = $2 AND status IN "
                 "('dead', 'pending', 'unknown')",
                 Params(ms(now), id(outbox_id)))
                 .affected == 1;
    });
  }

  bool resolve_delivered(long long outbox_id, Timestamp at, const std::string& note) override {
    return guard("resolve outbox entry " + std::to_string(outbox_id) + " as delivered", [&] {
      return run_prepared(
                 "WITH d AS (UPDATE outbox SET status = 'delivered', next_attempt_at = NULL, last_error = NULL, "
                 "sending_since = NULL, lease_until = NULL WHERE id = $1 AND status = 'unknown' RETURNING *), "
                 "r AS (INSERT INTO outbox_decisions (outbox_id, at, decision, reason) "
                 "SELECT id, $2, 'resolved', $3 FROM d), "
                 "c AS (INSERT INTO contacts (customer, at, kind, rule, entity, channel, idempotency_key) "
                 "SELECT customer, $2, kind, rule, entity, channel, idempotency_key FROM d) SELECT id FROM d",
                 Params(id(outbox_id), ms(at), note))
                 .rows.size() == 1;
    });
  }

  void claim(const std::vector<long long>& outbox_ids, Timestamp at) override {
    if (outbox_ids.empty()) return;
    guard("claim " + std::to_string(outbox_ids.size()) + " outbox entries for sending", [&] {
      std::string ids = "{";
      for (const long long outbox_id : outbox_ids) ids += (ids.size() > 1 ? "," : "") + std::to_string(outbox_id);
      ids += "}";
      run_prepared(
          "UPDATE outbox SET sending_since = $1, lease_until = $2 WHERE id = ANY ($3::bigint[]) "
          "AND status = 'pending' AND sending_since IS NULL",
          Params(ms(at), kNoLeaseEnd, ids));
      return 0;
    });
  }

  // Claims with SELECT ... FOR UPDATE SKIP LOCKED: a row another claimer
  // has locked (its claim not committed yet) is passed over, not waited
  // for, so concurrent claimers take disjoint entries and none blocks.
  std::vector<OutboxEntry> claim_due_notifications(Channel channel, std::size_t limit, Timestamp now,
                                                   Duration lease) override {
    return guard("claim due " + text(to_string(channel)) + " notifications", [&] {
      Params p(text(to_string(channel)), ms(now), ms(now + lease));
      p.add(limit_of(limit));
      auto claimed = entries(
          "UPDATE outbox SET sending_since = $2, lease_until = $3 WHERE id IN (SELECT id FROM outbox "
          "WHERE status = 'pending' AND (action_state IS NULL OR action_state != 'pending') AND channel = $1 "
          "AND GREATEST(COALESCE(next_attempt_at, due_at), COALESCE(lease_until, 0)) <= $2 "
          "ORDER BY COALESCE(next_attempt_at, due_at), id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING " +
              std::string(kNotificationColumns),
          p, false);
      std::sort(claimed.begin(), claimed.end(), [](const OutboxEntry& a, const OutboxEntry& b) {
        const Timestamp da = a.next_attempt.value_or(a.notification.at);
        const Timestamp db = b.next_attempt.value_or(b.notification.at);
        return da != db ? da < db : a.id < b.id;
      });
      return claimed;
    });
  }

  std::vector<OutboxEntry> interrupted() const override {
    return guard("read the sends cut off", [&] {
      return entries(select_entries("WHERE sending_since IS NOT NULL ORDER BY sending_since, id"), Params(), false);
    });
  }

  bool settle_interrupted(long long outbox_id, Timestamp at, bool retry, const std::string& detail) override {
    return guard("settle the cut-off send of outbox entry " + std::to_string(outbox_id), [&] {
      return run_prepared(
                 "WITH u AS (UPDATE outbox SET status = CASE WHEN $1 OR status <> 'pending' THEN status ELSE "
                 "'unknown' END, attempts = attempts + 1, next_attempt_at = CASE WHEN $1 THEN $2::bigint ELSE NULL "
                 "END, last_error = $3, sending_since = NULL, lease_until = NULL "
                 "WHERE id = $4 AND sending_since IS NOT NULL RETURNING id, attempts) "
                 "INSERT INTO delivery_attempts (outbox_id, number, at, outcome, detail) "
                 "SELECT id, attempts, $2, 'interrupted', $3 FROM u RETURNING id",
                 Params(retry, ms(at), detail, id(outbox_id)))
                 .rows.size() == 1;
    });
  }

  std::optional<OutboxEntry> outbox_entry(long long outbox_id) const override {
    return guard("read outbox entry " + std::to_string(outbox_id), [&]() -> std::optional<OutboxEntry> {
      auto found = entries(select_entries("WHERE id = $1"), Params(id(outbox_id)), true);
      if (found.empty()) return std::nullopt;
      return std::move(found.front());
    });
  }

  std::vector<DeliveryAttempt> attempts(long long outbox_id) const override {
    return guard("read the attempts of outbox entry " + std::to_string(outbox_id), [&] {
      const auto r = run_prepared(
          "SELECT number, at, outcome, detail FROM delivery_attempts WHERE outbox_id = $1 ORDER BY number, id",
          Params(id(outbox_id)));
      std::vector<DeliveryAttempt> out;
      for (const Row& row : r.rows)
        out.push_back(
            DeliveryAttempt{static_cast<int>(row.integer(0)), from_millis(row.integer(1)), row.text(2), row.text(3)});
      return out;
    });
  }

  std::vector<OutboxEntry> due_actions(Timestamp until, std::size_t limit) const override {
    return guard("read due actions", [&] {
      Params p(ms(until));
      p.add(limit_of(limit));
      return entries(select_entries("WHERE status = 'pending' AND action_state = 'pending' "
                                    "AND COALESCE(action_next_at, due_at) <= $1 "
                                    "ORDER BY COALESCE(action_next_at, due_at), id LIMIT $2"),
                     p, false);
    });
  }

  std::optional<Timestamp> next_action() const override {
    return guard("read the next action", [&] {
      return min_time(
          "SELECT MIN(COALESCE(action_next_at, due_at)) FROM outbox WHERE status = 'pending' AND "
          "action_state = 'pending'");
    });
  }

  bool record_action(long long outbox_id, Timestamp at, ActionState state, const nlohmann::json& answer,
                     std::optional<Timestamp> retry_at, const std::string& detail) override {
    return guard("record the action of outbox entry " + std::to_string(outbox_id), [&] {
      Params p(text(to_string(state)));
      p.add(state == ActionState::kDone ? std::optional<std::string>(answer.dump()) : std::nullopt);
      p.add(state == ActionState::kPending ? ms(retry_at) : std::nullopt);
      p.add(detail).add(id(outbox_id)).add(ms(at));
      return run_prepared(
                 "WITH u AS (UPDATE outbox SET action_state = $1, action_answer = $2, action_attempts = "
                 "action_attempts + 1, action_next_at = $3, action_detail = $4 WHERE id = $5 AND action_state = "
                 "'pending' RETURNING id), d AS (INSERT INTO outbox_decisions (outbox_id, at, decision, reason) "
                 "SELECT id, $6, 'action', $4 FROM u) SELECT id FROM u",
                 p)
                 .rows.size() == 1;
    });
  }

  std::vector<OutboxEntry> due_notifications(Timestamp until, std::optional<Channel> channel,
                                             std::size_t limit) const override {
    return guard("read due notifications", [&] {
      Params p(ms(until));
      p.add(channel ? std::optional<std::string>(text(to_string(*channel))) : std::nullopt);
      p.add(limit_of(limit));
      return entries(select_entries(channel ? "WHERE status = 'pending' AND sending_since IS NULL AND channel = $2 "
                                              "AND COALESCE(next_attempt_at, due_at) <= $1 "
                                              "AND (action_state IS NULL OR action_state != 'pending') "
                                              "ORDER BY COALESCE(next_attempt_at, due_at), id LIMIT $3"
                                            : "WHERE status = 'pending' AND sending_since IS NULL "
                                              "AND COALESCE(next_attempt_at, due_at) <= $1 AND ($2::text IS NULL) "
                                              "AND (action_state IS NULL OR action_state != 'pending') "
                                              "ORDER BY COALESCE(next_attempt_at, due_at), id LIMIT $3"),
                     p, false);
    });
  }

  std::optional<Timestamp> next_notification() const override {
    return guard("read the next notification", [&] {
      return min_time(
          "SELECT MIN(COALESCE(next_attempt_at, due_at)) FROM outbox WHERE status = 'pending' AND "
          "sending_since IS NULL AND (action_state IS NULL OR action_state != 'pending')");
    });
  }

  OutboxDepth outbox_depth(Timestamp now) const override {
    return guard("count the pending notifications", [&] {
      const auto r = run_prepared(
          "SELECT COUNT(*) FILTER (WHERE status = 'pending'), MIN(COALESCE(next_attempt_at, due_at)) FILTER (WHERE "
          "status = 'pending'), COUNT(*) FILTER (WHERE status = 'unknown') "
          "FROM outbox WHERE status IN ('pending', 'unknown')",
          Params());
      OutboxDepth depth;
      const Row& row = r.rows.at(0);
      depth.pending = static_cast<std::size_t>(row.integer(0));
      if (const auto due = opt_time(row, 1); due && *due <= now) depth.oldest_due = due;
      depth.unknown = static_cast<std::size_t>(row.integer(2));
      return depth;
    });
  }

  std::optional<Notification> notification_by_message_ref(const std::string& ref) const override {
    return guard("find the notification of Message-ID " + ref, [&]() -> std::optional<Notification> {
      auto found = entries(select_entries("WHERE message_ref = $1 LIMIT 1"), Params(ref), false);
      if (found.empty()) return std::nullopt;
      return std::move(found.front().notification);
    });
  }

  std::optional<Notification> latest_notification_to(Channel channel, const std::string& address) const override {
    return guard("find the latest notification to " + address, [&]() -> std::optional<Notification> {
      auto found = entries(select_entries("WHERE channel = $1 AND recipient_key = $2 AND status IN ('delivered', "
                                          "'pending', 'unknown') ORDER BY due_at DESC, id DESC LIMIT 1"),
                           Params(text(to_string(channel)), address), false);
      if (found.empty()) return std::nullopt;
      return std::move(found.front().notification);
    });
  }

  bool postpone(long long outbox_id, Timestamp now, Timestamp until, const std::string& reason) override {
    return guard("hold back outbox entry " + std::to_string(outbox_id), [&] {
      return run_prepared(
                 "WITH u AS (UPDATE outbox SET next_attempt_at = $1, action_next_at = CASE WHEN action_state = "
                 "'pending' THEN $1 ELSE action_next_at END, sending_since = NULL, lease_until = NULL WHERE id = $2 "
                 "AND status = 'pending' RETURNING id), d AS "
                 "(INSERT INTO outbox_decisions (outbox_id, at, decision, reason) "
                 "SELECT id, $3, 'held back', $4 FROM u) SELECT id FROM u",
                 Params(ms(until), id(outbox_id), ms(now), reason))
                 .rows.size() == 1;
    });
  }

  std::vector<OutboxEntry> customer_outbox(const std::string& customer, std::size_t limit) const override {
    return guard("read the outbox of " + customer, [&] {
      Params p(customer);
      p.add(limit_of(limit));
      return entries(select_entries("WHERE customer = $1 ORDER BY due_at DESC, id DESC LIMIT $2"), p, true);
    });
  }

  // --- the operators' console ---

  std::map<OutboxStatus, std::size_t> outbox_counts() const override {
    return guard("count the outbox by status", [&] {
      const auto r = run_prepared("SELECT status, count(*) FROM outbox GROUP BY status", Params());
      std::map<OutboxStatus, std::size_t> out;
      for (const Row& row : r.rows)
        if (auto status = parse_status(row.text(0))) out[*status] += static_cast<std::size_t>(row.integer(1));
      return out;
    });
  }

  std::vector<OutboxEntry> latest_outbox(OutboxStatus status, std::size_t limit) const override {
    return guard("read the latest outbox entries", [&] {
      Params p(text(to_string(status)));
      p.add(limit_of(limit));
      return entries(select_entries("WHERE status = $1 ORDER BY id DESC LIMIT $2"), p, true);
    });
  }

  std::vector<OutboxActivity> outbox_activity(Timestamp since, std::size_t limit) const override {
    return guard("read the outbox activity", [&] {
      Params p(ms(since));
      p.add(limit_of(limit));
      const auto r = run_prepared(
          "SELECT id, rule, kind, status, created_at FROM (SELECT id, rule, kind, status, created_at FROM outbox "
          "ORDER BY id DESC LIMIT $2) o WHERE created_at >= $1 ORDER BY id DESC",
          p);
      std::vector<OutboxActivity> out;
      for (const Row& row : r.rows) {
        const auto kind = parse_kind(row.text(2));
        const auto status = parse_status(row.text(3));
        if (!kind || !status) continue;
        out.push_back(OutboxActivity{row.integer(0), row.text(1), *kind, *status, from_millis(row.integer(4))});
      }
      return out;
    });
  }

  std::vector<RuleDecision> decisions_since(Timestamp since, std::size_t limit) const override {
    return guard("read the recent decisions", [&] {
      Params p(ms(since));
      p.add(limit_of(limit));
      const auto r = run_prepared(
          "SELECT o.rule, d.at, d.decision, d.reason FROM (SELECT outbox_id, at, decision, reason, id FROM "
          "outbox_decisions ORDER BY id DESC LIMIT $2) d JOIN outbox o ON o.id = d.outbox_id WHERE d.at >= $1 "
          "ORDER BY d.id DESC",
          p);
      std::vector<RuleDecision> out;
      for (const Row& row : r.rows)
        out.push_back(RuleDecision{row.text(0), from_millis(row.integer(1)), row.text(2), row.text(3)});
      return out;
    });
  }

  void record_not_made(const NotMade& n) override {
    guard("record a message not made by rule " + n.rule, [&] {
      // One statement: at most two records past the retention go with each new one.
      run_prepared(
          "WITH pruned AS (DELETE FROM not_made WHERE id IN (SELECT id FROM not_made WHERE at < $7 ORDER BY at "
          "LIMIT 2)) INSERT INTO not_made (at, rule, customer, entity, code, reason) VALUES ($1, $2, $3, $4, $5, $6)",
          Params(ms(n.at), n.rule, n.customer, n.entity.str(), n.code, n.reason, ms(n.at - kNotMadeRetention)));
      return 0;
    });
  }

  std::vector<NotMade> customer_not_made(const std::string& customer, std::size_t limit) const override {
    return guard("read the messages not made for " + customer, [&] {
      Params p(customer);
      p.add(limit_of(limit));
      const auto r = run_prepared(
          "SELECT at, rule, entity, code, reason FROM not_made WHERE customer = $1 AND customer != '' "
          "ORDER BY at DESC, id DESC LIMIT $2",
          p);
      std::vector<NotMade> out;
      for (const Row& row : r.rows)
        out.push_back(NotMade{from_millis(row.integer(0)), row.text(1), customer, ref_from(row.text(2)), row.text(3),
                              row.text(4)});
      return out;
    });
  }

  std::vector<NotMadeCount> not_made_counts(Timestamp since) const override {
    return guard("count the messages not made", [&] {
      const auto r = run_prepared(
          "SELECT rule, code, count(*) FROM not_made WHERE at >= $1 GROUP BY rule, code ORDER BY rule, code",
          Params(ms(since)));
      std::vector<NotMadeCount> out;
      for (const Row& row : r.rows)
        out.push_back(NotMadeCount{row.text(0), row.text(1), static_cast<std::size_t>(row.integer(2))});
      return out;
    });
  }

  // --- timers and waiting intents ---

  void schedule_timer(const Timer& t) override {
    guard("schedule timer " + t.rule + " for " + t.entity.str(), [&] {
      run_prepared(
          "INSERT INTO timers (rule, entity, due_at, fired) VALUES ($1, $2, $3, 0) "
          "ON CONFLICT (rule, entity) DO UPDATE SET fired = CASE WHEN timers.due_at = excluded.due_at "
          "THEN timers.fired ELSE 0 END, due_at = excluded.due_at",
          Params(t.rule, t.entity.str(), ms(t.due)));
      return 0;
    });
  }

  void cancel_timer(const std::string& rule, const EntityRef& entity) override {
    guard("cancel timer " + rule + " for " + entity.str(), [&] {
      run_prepared("DELETE FROM timers WHERE rule = $1 AND entity = $2", Params(rule, entity.str()));
      return 0;
    });
  }

  std::vector<Timer> due_timers(Timestamp until, size_t limit) const override {
    return guard("read due timers", [&] {
      Params p(ms(until));
      p.add(limit_of(limit));
      const auto r = run_prepared(
          "SELECT rule, entity, due_at FROM timers WHERE fired = 0 AND due_at <= $1 "
          "ORDER BY due_at, rule, entity LIMIT $2",
          p);
      std::vector<Timer> out;
      for (const Row& row : r.rows)
        out.push_back(Timer{row.text(0), ref_from(row.text(1)), from_millis(row.integer(2))});
      return out;
    });
  }

  std::optional<Timestamp> next_timer() const override {
    return guard("read the next timer", [&] { return min_time("SELECT MIN(due_at) FROM timers WHERE fired = 0"); });
  }

  // A compare-and-set: of concurrent callers the one whose UPDATE finds the
  // row unfired fires it; the others wait for its row lock, find it fired
  // and change nothing.
  bool mark_timer_fired(const Timer& t) override {
    return guard("mark timer " + t.rule + " for " + t.entity.str() + " fired", [&] {
      return run_prepared("UPDATE timers SET fired = 1 WHERE rule = $1 AND entity = $2 AND due_at = $3 AND fired = 0",
                          Params(t.rule, t.entity.str(), ms(t.due)))
                 .affected == 1;
    });
  }

  CancelledTimers cancel_timers(const std::string& rule, std::size_t limit) override {
    return guard("cancel the timers of rule " + rule, [&] {
      // Through the primary key (rule, entity): one statement touches at
      // most `limit` rows, however many the rule has.
      Params p(rule);
      p.add(limit_of(limit));
      const auto r = run_prepared(
          "WITH d AS (DELETE FROM timers WHERE rule = $1 AND entity IN "
          "(SELECT entity FROM timers WHERE rule = $1 LIMIT $2) RETURNING fired) "
          "SELECT COUNT(*), COUNT(*) FILTER (WHERE fired = 0) FROM d",
          p);
      return CancelledTimers{static_cast<std::size_t>(r.rows.at(0).integer(0)),
                             static_cast<std::size_t>(r.rows.at(0).integer(1))};
    });
  }

  std::size_t pending_timers() const override {
    return guard("count the pending timers", [&] {
      return static_cast<std::size_t>(
          run_prepared("SELECT COUNT(*) FROM timers WHERE fired = 0").rows.at(0).integer(0));
    });
  }

  void add_waiting(const WaitingIntent& w) override {
    guard("keep the intent of " + w.rule + " for " + w.entity.str() + " waiting", [&] {
      Params p(w.rule, w.entity.str(), w.trigger);
      p.add(w.event.is_null() ? std::nullopt : std::optional<std::string>(w.event.dump()));
      p.add(w.waiting_for.str()).add(ms(w.since)).add(ms(w.until)).add(w.reason);
      run_prepared(
          "INSERT INTO waiting_intents (rule, entity, trigger, event, waiting_for, since, until, reason) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (rule, entity, trigger) DO UPDATE SET "
          "waiting_for = excluded.waiting_for, reason = excluded.reason",
          p);
      return 0;
    });
  }

  std::vector<WaitingIntent> waiting_for(const EntityRef& ref) const override {
    return guard("read the intents waiting for " + ref.str(), [&] {
      return read_waiting(run_prepared(
          std::string("SELECT ") + kWaitingColumns + " FROM waiting_intents WHERE waiting_for = $1 ORDER BY id",
          Params(ref.str())));
    });
  }

  std::vector<WaitingIntent> expired_waiting(Timestamp now, std::size_t limit) const override {
    return guard("read the expired waiting intents", [&] {
      Params p(ms(now));
      p.add(limit_of(limit));
      return read_waiting(run_prepared(std::string("SELECT ") + kWaitingColumns +
                                           " FROM waiting_intents WHERE until <= $1 ORDER BY until, id LIMIT $2",
                                       p));
    });
  }

  std::optional<Timestamp> next_waiting_expiry() const override {
    return guard("read the next waiting intent's expiry",
                 [&] { return min_time("SELECT MIN(until) FROM waiting_intents"); });
  }

  void remove_waiting(long long waiting_id) override {
    guard("remove waiting intent " + std::to_string(waiting_id), [&] {
      run_prepared("DELETE FROM waiting_intents WHERE id = $1", Params(id(waiting_id)));
      return 0;
    });
  }

  // --- cursors ---

  std::optional<std::string> cursor(const std::string& source) const override {
    return guard("read the cursor of source " + source, [&]() -> std::optional<std::string> {
      const auto r = run_prepared("SELECT cursor FROM source_cursors WHERE source = $1", Params(source));
      if (r.rows.empty()) return std::nullopt;
      return r.rows[0].text(0);
    });
  }

  void set_cursor(const std::string& source, const std::string& value) override {
    guard("store the cursor of source " + source, [&] {
      run_prepared(
          "INSERT INTO source_cursors (source, cursor) VALUES ($1, $2) "
          "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
          Params(source, value));
      return 0;
    });
  }

  // --- contact history ---

  void record_contact(const Contact& c) override {
    guard("record contact with " + c.customer, [&] {
      run_prepared(
          "INSERT INTO contacts (customer, at, kind, rule, entity, channel, idempotency_key) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7)",
          Params(c.customer, ms(c.at), text(to_string(c.kind)), c.rule, c.entity.str(), text(to_string(c.channel)),
                 c.idempotency_key));
      return 0;
    });
  }

  std::vector<Contact> contacts(const std::string& customer) const override {
    return guard("read contacts of " + customer, [&] {
      const auto r = run_prepared(
          "SELECT at, kind, rule, entity, channel, idempotency_key FROM contacts WHERE customer = $1 ORDER BY at, id",
          Params(customer));
      std::vector<Contact> out;
      for (const Row& row : r.rows)
        out.push_back(Contact{customer, from_millis(row.integer(0)), kind_from(row.text(1)), row.text(2),
                              ref_from(row.text(3)), channel_from(row.text(4)), row.text(5)});
      return out;
    });
  }

  long long add_reply(const Reply& r) override {
    return guard("record a reply from " + r.from, [&]() -> long long {
      Params p(ms(r.at), text(to_string(r.channel)), r.provider, r.provider_id, r.from, r.to);
      p.add(r.subject);
      p.add(r.text).add(r.stop ? 1 : 0).add(r.customer).add(r.notification);
      p.add(r.entity ? std::optional<std::string>(r.entity->str()) : std::nullopt);
      p.add(r.matched_by).add(ms(r.forwarded_at));
      const auto result = run_prepared(
          "INSERT INTO replies (at, channel, provider, provider_id, sender, recipient, subject, text, stop, customer, "
          "notification, entity, matched_by, forwarded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
          "$12, $13, $14) ON CONFLICT DO NOTHING RETURNING id",
          p);
      return result.rows.empty() ? 0 : result.rows[0].integer(0);
    });
  }

  std::vector<Reply> replies(const std::string& customer) const override {
    return guard("read the replies of " + customer, [&] {
      return read_replies(
          run_prepared(std::string("SELECT ") + kReplyColumns + " FROM replies WHERE customer = $1 ORDER BY at, id",
                       Params(customer)));
    });
  }

  std::vector<Reply> unforwarded_replies(std::size_t limit) const override {
    return guard("read the replies not forwarded", [&] {
      Params p;
      p.add(limit_of(limit));
      return read_replies(run_prepared(
          std::string("SELECT ") + kReplyColumns + " FROM replies WHERE forwarded_at IS NULL ORDER BY id LIMIT $1", p));
    });
  }

  void mark_forwarded(long long reply_id, Timestamp at) override {
    guard("mark reply " + std::to_string(reply_id) + " forwarded", [&] {
      run_prepared("UPDATE replies SET forwarded_at = $1 WHERE id = $2", Params(ms(at), id(reply_id)));
      return 0;
    });
  }

  RepliesAbout replies_about(const EntityRef& entity) const override {
    return guard("read the replies about " + entity.str(), [&] {
      const bool customer = entity.type == EntityType::kCustomer;
      const auto r = run_prepared(customer ? "SELECT COUNT(*), MAX(stop), MAX(at) FROM replies WHERE customer = $1"
                                           : "SELECT COUNT(*), MAX(stop), MAX(at) FROM replies WHERE entity = $1",
                                  Params(customer ? entity.id : entity.str()));
      RepliesAbout out;
      const Row& row = r.rows.at(0);
      if (row.integer(0) > 0) {
        out.count = static_cast<std::size_t>(row.integer(0));
        out.stop = row.integer(1) != 0;
        out.last = from_millis(row.integer(2));
      }
      return out;
    });
  }

  bool add_opt_out(const OptOut& o) override {
    return guard("record an opt-out of " + text(to_string(o.channel)), [&] {
      return atomically([&] {
        if (opt_out(o.customer, o.channel, o.customer.empty() ? o.address : std::string{})) return false;
        Params p(o.customer, text(to_string(o.channel)), o.address, ms(o.at));
        p.add(o.reply_id ? std::optional<std::int64_t>(o.reply_id) : std::nullopt);
        run_prepared("INSERT INTO opt_outs (customer, channel, address, at, reply_id) VALUES ($1, $2, $3, $4, $5)", p);
        return true;
      });
    });
  }

  std::optional<OptOut> opt_out(const std::string& customer, Channel channel,
                                const std::string& address) const override {
    return guard("read the opt-outs of " + customer, [&]() -> std::optional<OptOut> {
      if (customer.empty() && address.empty()) return std::nullopt;
      const auto r = run_prepared(
          "SELECT customer, address, at, reply_id FROM opt_outs WHERE channel = $1 AND customer = $2::text "
          "AND $2::text != '' AND ended_at IS NULL UNION ALL SELECT customer, address, at, reply_id FROM opt_outs "
          "WHERE channel = $1 AND address = $3::text AND $3::text != '' AND ended_at IS NULL LIMIT 1",
          Params(text(to_string(channel)), customer, address));
      if (r.rows.empty()) return std::nullopt;
      const Row& row = r.rows[0];
      return OptOut{row.text(0), channel, row.text(1), from_millis(row.integer(2)),
                    row.is_null(3) ? 0 : row.integer(3)};
    });
  }

  bool end_opt_out(const std::string& customer, Channel channel, const std::string& address, Timestamp at,
                   long long reply_id) override {
    return guard("end an opt-out of " + text(to_string(channel)), [&] {
      return run_prepared(
                 "UPDATE opt_outs SET ended_at = $1, ended_by_reply = $2 WHERE ended_at IS NULL AND channel = $3 "
                 "AND ((customer = $4::text AND $4::text != '') OR (address = $5::text AND $5::text != ''))",
                 Params(ms(at), id(reply_id), text(to_string(channel)), customer, address))
                 .affected > 0;
    });
  }

  std::vector<OptOut> customer_opt_outs(const std::string& customer) const override {
    return guard("read the opt-outs of " + customer, [&] {
      const auto r = run_prepared(
          "SELECT channel, address, at, reply_id, ended_at, ended_by_reply FROM opt_outs WHERE customer = $1 AND "
          "customer != '' ORDER BY at, id",
          Params(customer));
      std::vector<OptOut> out;
      for (const Row& row : r.rows)
        out.push_back(OptOut{customer, channel_from(row.text(0)), row.text(1), from_millis(row.integer(2)),
                             row.is_null(3) ? 0 : row.integer(3),
                             row.is_null(4) ? std::nullopt : std::optional<Timestamp>(from_millis(row.integer(4))),
                             row.is_null(5) ? 0 : row.integer(5)});
      return out;
    });
  }

  void pause(const EntityRef& entity, Timestamp until, const std::string& reason) override {
    guard("pause " + entity.str(), [&] {
      run_prepared(
          "INSERT INTO pauses (entity, until, reason) VALUES ($1, $2, $3) ON CONFLICT (entity) DO UPDATE SET "
          "until = excluded.until, reason = excluded.reason WHERE excluded.until > pauses.until",
          Params(entity.str(), ms(until), reason));
      return 0;
    });
  }

  std::optional<Pause> paused(const EntityRef& entity, Timestamp now) const override {
    return guard("read the pause of " + entity.str(), [&]() -> std::optional<Pause> {
      const auto r = run_prepared("SELECT until, reason FROM pauses WHERE entity = $1 AND until > $2",
                                  Params(entity.str(), ms(now)));
      if (r.rows.empty()) return std::nullopt;
      return Pause{from_millis(r.rows[0].integer(0)), r.rows[0].text(1)};
    });
  }

  std::vector<Reply> customer_replies(const std::string& customer, std::size_t limit) const override {
    return guard("read the replies of " + customer, [&] {
      Params p(customer);
      p.add(limit_of(limit));
      return read_replies(run_prepared(std::string("SELECT ") + kReplyColumns +
                                           " FROM replies WHERE customer = $1 ORDER BY at DESC, id DESC LIMIT $2",
                                       p));
    });
  }

  // --- the replicas' shards, leases and shared intake ---

  void heartbeat(const std::string& replica, Timestamp now) override {
    guard("record the heartbeat of replica " + replica, [&] {
      run_prepared(
          "INSERT INTO replicas (id, heartbeat) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET heartbeat = "
          "excluded.heartbeat",
          Params(replica, ms(now)));
      return 0;
    });
  }

  std::size_t live_replicas(Timestamp since, Timestamp forget_before) override {
    return guard("count the live replicas", [&] {
      run_prepared("DELETE FROM replicas WHERE heartbeat < $1", Params(ms(forget_before)));
      return static_cast<std::size_t>(
          run_prepared("SELECT COUNT(*) FROM replicas WHERE heartbeat >= $1", Params(ms(since))).rows.at(0).integer(0));
    });
  }

  void leave(const std::string& replica) override {
    guard("remove replica " + replica, [&] {
      // One statement: the replica and its leases go together.
      run_prepared(
          "WITH r AS (DELETE FROM replicas WHERE id = $1), s AS (UPDATE shard_leases SET owner = '', lease_until = 0 "
          "WHERE owner = $1) DELETE FROM source_leases WHERE owner = $1",
          Params(replica));
      return 0;
    });
  }

  std::vector<ShardLease> shard_leases() const override {
    return guard("read the shard leases", [&] {
      std::vector<ShardLease> out;
      for (const Row& r : run_prepared("SELECT shard, owner, lease_until FROM shard_leases ORDER BY shard").rows)
        out.push_back(ShardLease{static_cast<int>(r.integer(0)), r.text(1), from_millis(r.integer(2))});
      return out;
    });
  }

  // Under READ COMMITTED, ON CONFLICT DO UPDATE locks the row and tests its
  // WHERE on the newest committed version: of two takers one wins.
  bool take_shard(int shard, const std::string& replica, Timestamp now, Timestamp until) override {
    return guard("take shard " + std::to_string(shard), [&] {
      return run_prepared(
                 "INSERT INTO shard_leases (shard, owner, lease_until) VALUES ($1, $2, $3) ON CONFLICT (shard) DO "
                 "UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until WHERE shard_leases.owner = "
                 "excluded.owner OR shard_leases.owner = '' OR shard_leases.lease_until <= $4",
                 Params(shard, replica, ms(until), ms(now)))
                 .affected == 1;
    });
  }

  std::vector<int> take_shards(std::span<const int> shards, const std::string& replica, Timestamp now,
                               Timestamp until) override {
    return guard("take " + std::to_string(shards.size()) + " shards", [&] {
      std::vector<int> out;
      for (const Row& r :
           // In ascending order: replicas taking overlapping sets lock the
           // rows in the same order, so they wait for each other instead of
           // deadlocking (each starts its wish list at its own shard).
           run_prepared("INSERT INTO shard_leases (shard, owner, lease_until) SELECT s, $2, $3 FROM "
                        "unnest($1::int[]) AS s ORDER BY s ON CONFLICT (shard) DO UPDATE SET owner = excluded.owner, "
                        "lease_until = excluded.lease_until "
                        "WHERE shard_leases.owner = excluded.owner OR shard_leases.owner = '' OR "
                        "shard_leases.lease_until <= $4 RETURNING shard",
                        Params(int_array(shards), replica, ms(until), ms(now)))
               .rows)
        out.push_back(static_cast<int>(r.integer(0)));
      std::sort(out.begin(), out.end());
      return out;
    });
  }

  std::vector<int> renew_shards(const std::string& replica, Timestamp until) override {
    return guard("renew the shard leases of " + replica, [&] {
      std::vector<int> out;
      for (const Row& r : run_prepared("UPDATE shard_leases SET lease_until = $1 WHERE owner = $2 AND owner <> '' "
                                       "RETURNING shard",
                                       Params(ms(until), replica))
                              .rows)
        out.push_back(static_cast<int>(r.integer(0)));
      std::sort(out.begin(), out.end());
      return out;
    });
  }

  void release_shards(const std::string& replica, std::span<const int> shards) override {
    guard("release shards of " + replica, [&] {
      run_prepared(
          "UPDATE shard_leases SET owner = '', lease_until = 0 WHERE owner = $1 AND ($2 = '{}' OR shard = "
          "ANY($2::int[]))",
          Params(replica, int_array(shards)));
      return 0;
    });
  }

  bool take_source(const std::string& source, const std::string& replica, Timestamp now, Timestamp until) override {
    return guard("take the lease of source " + source, [&] {
      return run_prepared(
                 "INSERT INTO source_leases (source, owner, lease_until) VALUES ($1, $2, $3) ON CONFLICT (source) DO "
                 "UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until WHERE source_leases.owner = "
                 "excluded.owner OR source_leases.lease_until <= $4",
                 Params(source, replica, ms(until), ms(now)))
                 .affected == 1;
    });
  }

  void release_source(const std::string& replica, const std::string& source) override {
    guard("release the source leases of " + replica, [&] {
      run_prepared("DELETE FROM source_leases WHERE owner = $1 AND ($2 = '' OR source = $2)", Params(replica, source));
      return 0;
    });
  }

  void put_intake(int shard, const Observation& observation, Timestamp received_at) override {
    guard("put an observation of " + observation.ref.str() + " in the shared intake", [&] {
      run_prepared("INSERT INTO intake (shard, observation, received_at) VALUES ($1, $2, $3)",
                   Params(shard, to_json(observation).dump(), ms(received_at)));
      return 0;
    });
  }

  std::vector<IntakeEntry> claim_intake(std::span<const int> shards, std::size_t limit,
                                        std::vector<std::string>* unreadable) override {
    return guard("read the shared intake", [&] {
      Params p(int_array(shards));
      p.add(limit_of(limit));
      const auto r = run_prepared(
          "SELECT id, shard, observation, received_at FROM intake WHERE shard = ANY($1::int[]) ORDER BY id LIMIT $2 "
          "FOR UPDATE SKIP LOCKED",
          p);
      std::vector<IntakeEntry> out;
      std::vector<long long> bad;
      for (const Row& row : r.rows) {
        const long long entry = row.integer(0);
        std::string error;
        std::optional<Observation> observation;
        try {
          observation = observation_from_json(nlohmann::json::parse(row.text(2)), error);
        } catch (const nlohmann::json::exception& e) {
          error = e.what();
        }
        if (!observation) {
          bad.push_back(entry);
          if (unreadable) unreadable->push_back("intake entry " + std::to_string(entry) + ": " + error);
          continue;
        }
        out.push_back(
            IntakeEntry{entry, static_cast<int>(row.integer(1)), std::move(*observation), from_millis(row.integer(3))});
      }
      if (!bad.empty()) delete_intake(bad);
      return out;
    });
  }

  void delete_intake(std::span<const long long> ids) override {
    guard("delete " + std::to_string(ids.size()) + " entries of the shared intake", [&] {
      std::string array = "{";
      for (std::size_t i = 0; i < ids.size(); ++i) array += (i ? "," : "") + std::to_string(ids[i]);
      run_prepared("DELETE FROM intake WHERE id = ANY($1::bigint[])", Params(array + "}"));
      return 0;
    });
  }

  std::size_t intake_size() const override {
    return guard("count the shared intake", [&] {
      return static_cast<std::size_t>(run_prepared("SELECT COUNT(*) FROM intake").rows.at(0).integer(0));
    });
  }

  std::vector<int> intake_shards() const override {
    return guard("read the shards of the shared intake", [&] {
      std::vector<int> out;
      for (const auto& row : run_prepared(kIntakeShards).rows) out.push_back(static_cast<int>(row.integer(0)));
      return out;
    });
  }

 private:
  // BEGIN now; ROLLBACK when destroyed uncommitted. Must not outlive its store.
  class Tx final : public Transaction {
   public:
    explicit Tx(PgStore& store) : Transaction(store), store_(store) { store_.checked(store_.conn_->begin()); }
    ~Tx() override {
      if (open_) store_.conn_->abandon();
    }

   private:
    void do_commit() override {
      store_.guard("commit", [&] {
        open_ = false;
        store_.checked(store_.conn_->commit());
        return 0;
      });
    }

    PgStore& store_;
    bool open_ = true;
  };

  static std::int64_t id(long long value) { return static_cast<std::int64_t>(value); }

  // Runs `sql`; a refusal is thrown as Failed for guard().
  pg::Result run(const std::string& sql, const Params& params = Params()) const {
    return checked(conn_->query(sql, params));
  }
  // The same through a statement prepared once per connection.
  pg::Result run_prepared(const std::string& sql, const Params& params = Params()) const {
    return checked(conn_->query_prepared(sql, params));
  }
  static pg::Result checked(pg::Result result) {
    if (!result.ok()) throw Failed{*result.error};
    return result;
  }

  std::optional<Timestamp> min_time(const std::string& sql) const {
    const auto r = run_prepared(sql);
    if (r.rows.empty() || r.rows[0].is_null(0)) return std::nullopt;
    return from_millis(r.rows[0].integer(0));
  }

  // Runs `work` in the open Transaction (the call came through it:
  // check_caller()), or else in one of its own.
  template <typename F>
  auto atomically(F&& work) const -> decltype(work()) {
    if (transaction_open()) return work();
    checked(conn_->begin());
    try {
      auto result = work();
      checked(conn_->commit());
      return result;
    } catch (...) {
      conn_->abandon();
      throw;
    }
  }

  // Runs `work`, turning the server's refusals and unreadable values into
  // StoreError naming `what`, retryable when the server says retrying can help.
  // Refuses (std::logic_error) a call made on the store past its open
  // Transaction (Store::check_caller()).
  template <typename F>
  auto guard(const std::string& what, F&& work,
             const std::source_location& where = std::source_location::current()) const -> decltype(work()) {
    conn_->check(what);
    check_caller(what, where);
    try {
      return work();
    } catch (const Failed& failed) {
      StoreError error("cannot " + what + ": " + failed.error.message +
                       (failed.error.sqlstate.empty() ? "" : " [SQLSTATE " + failed.error.sqlstate + "]"));
      error.retryable = failed.error.retryable();
      throw error;
    } catch (const CorruptRow& e) {
      throw StoreError("cannot " + what + ": " + e.what());
    } catch (const nlohmann::json::exception& e) {
      throw StoreError("cannot " + what + ": invalid JSON: " + e.what());
    } catch (const std::bad_variant_access&) {
      throw StoreError("cannot " + what + ": a column of an unexpected type (a schema this tactd does not know?)");
    }
  }

  // The rows of `sql` (columns kNotificationColumns) as entries; one that
  // cannot be read is set aside to the dead letter with the reason, as
  // SqliteStore does: kept flagged with `flagged`, else left out.
  std::vector<OutboxEntry> entries(const std::string& sql, const Params& params, bool flagged) const {
    const auto r = run_prepared(sql, params);
    std::vector<OutboxEntry> out;
    std::vector<OutboxEntry> unreadable;
    for (const Row& row : r.rows) {
      try {
        out.push_back(read_entry(row));
      } catch (const CorruptRow& e) {
        OutboxEntry entry;
        entry.id = row.integer(0);
        entry.status = OutboxStatus::kDead;
        entry.unreadable = e.what();
        entry.last_error = set_aside_reason(e.what());
        unreadable.push_back(std::move(entry));
      }
    }
    for (auto& entry : unreadable) {
      run_prepared("UPDATE outbox SET status = 'dead', next_attempt_at = NULL, last_error = $1 WHERE id = $2",
                   Params(entry.last_error, id(entry.id)));
      if (flagged) out.push_back(std::move(entry));
    }
    if (flagged && !unreadable.empty())
      std::sort(out.begin(), out.end(), [](const OutboxEntry& a, const OutboxEntry& b) { return a.id < b.id; });
    return out;
  }

  void migrate() {
    guard("migrate the database", [&] {
      // A session lock: replicas starting together take turns; the second
      // finds the schema done. Released below, or by the server when the
      // session ends.
      run("SELECT pg_advisory_lock($1)", Params(static_cast<std::int64_t>(kMigrationLock)));
      try {
        run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
            "applied_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))");
        version_ =
            static_cast<int>(run("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").rows.at(0).integer(0));
        const int known = latest_schema_version();
        if (version_ > known)
          throw StoreError("the database has schema version " + std::to_string(version_) +
                           ", newer than this tactd knows (" + std::to_string(known) +
                           "); use a newer tactd or another database");
        for (const Migration& m : migrations()) {
          if (m.version <= version_) continue;
          atomically([&] {
            if (*m.sql(Dialect::kPostgres)) run(m.sql(Dialect::kPostgres));
            run("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                Params(m.version, m.description));
            return 0;
          });
          version_ = m.version;
        }
      } catch (...) {
        conn_->query("SELECT pg_advisory_unlock($1)", Params(static_cast<std::int64_t>(kMigrationLock)));
        throw;
      }
      run("SELECT pg_advisory_unlock($1)", Params(static_cast<std::int64_t>(kMigrationLock)));
      return 0;
    });
  }

  std::unique_ptr<Executor> conn_;
  long long last_enqueued_ = 0;
  int version_ = 0;
};

}  // namespace

std::unique_ptr<Store> open_postgres_store(const std::string& conninfo) {
  return std::make_unique<PgStore>(std::make_unique<SyncExecutor>(conninfo));
}

std::unique_ptr<Store> open_postgres_store(const std::string& conninfo, boost::asio::io_context& io) {
  // Migrating blocks: it happens before the loop runs, on a connection of its own.
  const int version = open_postgres_store(conninfo)->schema_version();
  return std::make_unique<PgStore>(std::make_unique<FiberExecutor>(io, conninfo), version);
}

std::string postgres_conninfo(const std::string& url, const std::string& password) {
  if (password.empty()) return url;
  std::string encoded;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const unsigned char c : password) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 0xf];
    }
  }
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "password=" + encoded;
}

std::string masked_conninfo(const std::string& conninfo) {
  std::string out = conninfo;
  // URL: scheme://user:password@host...
  if (const auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto at = out.find('@', scheme + 3);
    const auto colon = out.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at)
      out.replace(colon + 1, at - colon - 1, "***");
  }
  // Keywords or URL parameters: password=secret
  for (std::size_t from = 0; (from = out.find("password=", from)) != std::string::npos;) {
    const std::size_t start = from + 9;
    std::size_t end = start;
    if (end < out.size() && out[end] == '\'') {
      ++end;
      while (end < out.size() && out[end] != '\'') end += out[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, out.size());
    } else {
      while (end < out.size() && out[end] != ' ' && out[end] != '&') ++end;
    }
    out.replace(start, end - start, "***");
    from = start + 3;
  }
  return out;
}

}  // namespace tactd
