#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>  // open
#include <sqlite3.h>
#include <stdlib.h>  // mkdtemp
#include <unistd.h>  // close

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/migrations.h"
#include "store/row_codec.h"
#include "store/store.h"

namespace tactd {
namespace {

using namespace store_rows;

constexpr int kBusyTimeoutMs = 5000;
// Every transaction here writes, so each starts as a writer (BEGIN
// IMMEDIATE): it then waits out another writer for up to the busy timeout.
// A deferred one would read first and, finding at its first write that
// another process (an operator's `tactd outbox drop`, a backup) committed
// meanwhile, fail at once with SQLITE_BUSY: no wait can make its old
// snapshot current.
constexpr auto kWriter = SQLite::TransactionBehavior::IMMEDIATE;

constexpr const char* kReplyColumns =
    "id, at, channel, provider, provider_id, sender, recipient, subject, text, stop, customer, notification, entity, "
    "matched_by, forwarded_at";

Reply read_reply(SQLite::Statement& q) {
  Reply r;
  r.id = q.getColumn(0).getInt64();
  r.at = from_millis(q.getColumn(1).getInt64());
  r.channel = channel_from(q.getColumn(2).getString());
  r.provider = q.getColumn(3).getString();
  r.provider_id = q.getColumn(4).getString();
  r.from = q.getColumn(5).getString();
  r.to = q.getColumn(6).getString();
  if (!q.getColumn(7).isNull()) r.subject = q.getColumn(7).getString();
  r.text = q.getColumn(8).getString();
  r.stop = q.getColumn(9).getInt() != 0;
  r.customer = q.getColumn(10).getString();
  r.notification = q.getColumn(11).getString();
  if (!q.getColumn(12).isNull()) r.entity = ref_from(q.getColumn(12).getString());
  r.matched_by = q.getColumn(13).getString();
  if (!q.getColumn(14).isNull()) r.forwarded_at = from_millis(q.getColumn(14).getInt64());
  return r;
}

constexpr const char* kNotificationColumns =
    "id, idempotency_key, due_at, rule, kind, customer, entity, channel, recipient, subject, body, locale, "
    "time_zone, status, attempts, next_attempt_at, last_error, event, sending_since, action, action_state, "
    "action_answer, action_attempts, action_next_at, action_detail";

constexpr std::array<std::pair<ActionState, std::string_view>, 3> kActionStates{
    {{ActionState::kPending, "pending"}, {ActionState::kDone, "done"}, {ActionState::kFailed, "failed"}}};

OutboxEntry read_entry(SQLite::Statement& q) {
  OutboxEntry e;
  e.id = q.getColumn(0).getInt64();
  Notification& n = e.notification;
  n.idempotency_key = q.getColumn(1).getString();
  n.at = from_millis(q.getColumn(2).getInt64());
  n.rule = q.getColumn(3).getString();
  n.kind = kind_from(q.getColumn(4).getString());
  n.customer = q.getColumn(5).getString();
  n.entity = ref_from(q.getColumn(6).getString());
  n.channel = channel_from(q.getColumn(7).getString());
  n.to = q.getColumn(8).getString();
  if (!q.getColumn(9).isNull()) n.subject = q.getColumn(9).getString();
  n.body = q.getColumn(10).getString();
  n.locale = q.getColumn(11).getString();
  n.time_zone = q.getColumn(12).getString();
  e.status = status_from(q.getColumn(13).getString());
  e.attempts = q.getColumn(14).getInt();
  if (!q.getColumn(15).isNull()) e.next_attempt = from_millis(q.getColumn(15).getInt64());
  if (!q.getColumn(16).isNull()) e.last_error = q.getColumn(16).getString();
  if (!q.getColumn(17).isNull()) {
    try {
      n.event = nlohmann::json::parse(q.getColumn(17).getString());
    } catch (const nlohmann::json::exception& error) {
      throw CorruptRow(std::string("its event is not JSON: ") + error.what());
    }
  }
  if (!q.getColumn(18).isNull()) e.sending_since = from_millis(q.getColumn(18).getInt64());
  if (!q.getColumn(19).isNull()) n.action = q.getColumn(19).getString();
  if (!q.getColumn(20).isNull()) {
    const std::string state = q.getColumn(20).getString();
    const auto known = std::find_if(kActionStates.begin(), kActionStates.end(),
                                    [&](const auto& entry) { return entry.second == state; });
    if (known == kActionStates.end()) throw CorruptRow("unknown action state '" + state + "'");
    e.action_state = known->first;
  }
  if (!q.getColumn(21).isNull()) {
    try {
      n.action_answer = nlohmann::json::parse(q.getColumn(21).getString());
    } catch (const nlohmann::json::exception& error) {
      throw CorruptRow(std::string("its action's answer is not JSON: ") + error.what());
    }
  }
  e.action_attempts = q.getColumn(22).getInt();
  if (!q.getColumn(23).isNull()) e.action_next = from_millis(q.getColumn(23).getInt64());
  if (!q.getColumn(24).isNull()) e.action_detail = q.getColumn(24).getString();
  return e;
}

// The text an outbox row set aside keeps as its last error.
std::string set_aside_reason(const std::string& why) { return "unreadable, set aside: " + why; }

constexpr const char* kEntityColumns = "type, id, fields, observed_at, first_seen_at, version";

Entity read_entity(SQLite::Statement& q) {
  std::optional<Timestamp> first_seen;
  if (!q.getColumn(4).isNull()) first_seen = from_millis(q.getColumn(4).getInt64());
  return Entity{EntityRef{type_from(q.getColumn(0).getString()), q.getColumn(1).getString()},
                from_millis(q.getColumn(3).getInt64()), nlohmann::json::parse(q.getColumn(2).getString()), first_seen,
                q.getColumn(5).getInt64()};
}

constexpr const char* kWaitingColumns = "id, rule, entity, trigger, event, waiting_for, since, until, reason";

std::vector<WaitingIntent> read_waiting(SQLite::Statement& q) {
  std::vector<WaitingIntent> out;
  while (q.executeStep()) {
    WaitingIntent w;
    w.id = q.getColumn(0).getInt64();
    w.rule = q.getColumn(1).getString();
    w.entity = ref_from(q.getColumn(2).getString());
    w.trigger = q.getColumn(3).getString();
    if (!q.getColumn(4).isNull()) w.event = nlohmann::json::parse(q.getColumn(4).getString());
    w.waiting_for = ref_from(q.getColumn(5).getString());
    w.since = from_millis(q.getColumn(6).getInt64());
    w.until = from_millis(q.getColumn(7).getInt64());
    w.reason = q.getColumn(8).getString();
    out.push_back(std::move(w));
  }
  return out;
}

// The state holds customer data: a new database file is created readable by
// its owner only, and SQLite gives its -wal and -shm files the same mode. An
// existing file keeps the mode its operator chose. Returns the path for
// SQLite.
std::string private_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, S_IRUSR | S_IWUSR);
  if (fd >= 0) {
    ::close(fd);
  } else if (errno != EEXIST) {
    throw StoreError("cannot create the state database " + path.string() + ": " +
                     std::generic_category().message(errno));
  }
  return path.string();
}

// Memory statistics off, before SQLite's first use in the process: nothing
// in tactd reads them, and keeping them takes a global mutex around each of
// SQLite's allocations (~4% of the delivery loop's instructions). Refused,
// changing nothing, once SQLite is in use (a second store in a test).
void configure_sqlite_once() {
  static const bool done = [] { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK; }();
  (void)done;
}

// "type = 'order'": an entity type written into a query's text, not bound.
// `entities` has partial indexes `WHERE type = 'customer'`; a query that
// binds the type and is planned in full (not by primary key) would have
// SQLite prepare it again at every call, to test those indexes against the
// value bound (statements_prepared_again()), which costs more than its run.
std::string type_is(EntityType type) { return "type = '" + std::string(to_string(type)) + "'"; }

// Owns a folder and removes it with everything in it; an empty path owns nothing.
class OwnedFolder {
 public:
  explicit OwnedFolder(std::filesystem::path path) : path_(std::move(path)) {}
  ~OwnedFolder() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  OwnedFolder(const OwnedFolder&) = delete;
  OwnedFolder& operator=(const OwnedFolder&) = delete;

 private:
  std::filesystem::path path_;
};

class SqliteStore final : public Store {
 public:
  // Opens `path`; `owned_folder` (may be empty) is removed after the database
  // is closed, also when opening fails. Throws SQLite::Exception or StoreError.
  SqliteStore(const std::filesystem::path& path, std::filesystem::path owned_folder, Sync sync)
      : folder_(std::move(owned_folder)),
        // NOMUTEX: the connection is the loop's alone, so SQLite need not
        // lock it on every call.
        db_((configure_sqlite_once(), private_file(path)),
            SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX) {
    db_.setBusyTimeout(kBusyTimeoutMs);
    const std::string journal = db_.execAndGet("PRAGMA journal_mode=WAL").getString();
    if (journal != "wal")
      throw StoreError("cannot switch " + path.string() + " to WAL mode (it is in " + journal + " mode)");
    db_.exec("PRAGMA foreign_keys=ON");
    db_.exec(sync == Sync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    migrate();
  }

  int schema_version() const override { return version_; }

  long long statements_prepared_again() const override {
    long long again = 0;
    for (sqlite3_stmt* s = sqlite3_next_stmt(db_.getHandle(), nullptr); s; s = sqlite3_next_stmt(db_.getHandle(), s)) {
      again += sqlite3_stmt_status(s, SQLITE_STMTSTATUS_REPREPARE, 0);
    }
    return again;
  }

  Sync sync() const override {
    // 2 is FULL, 1 NORMAL (https://sqlite.org/pragma.html#pragma_synchronous).
    return db_.execAndGet("PRAGMA synchronous").getInt() >= 2 ? Sync::kFull : Sync::kNormal;
  }

  std::unique_ptr<Transaction> begin() override {
    if (transaction_open()) throw StoreError("a transaction is already open (transactions do not nest)");
    return guard("begin a transaction", [&] { return std::make_unique<Tx>(*this); });
  }

  std::optional<Entity> entity(const EntityRef& ref) const override {
    return guard("read entity " + ref.str(), [&]() -> std::optional<Entity> {
      const bool keep = transaction_open();
      if (keep)
        if (const auto known = read_in_transaction_.find(ref); known != read_in_transaction_.end())
          return known->second;
      SQLite::Statement& q =
          prepared(std::string("SELECT ") + kEntityColumns + " FROM entities WHERE type = ? AND id = ?");
      q.bind(1, std::string(to_string(ref.type)));
      q.bind(2, ref.id);
      std::optional<Entity> read;
      if (q.executeStep()) read = read_entity(q);
      if (keep) {
        if (read_in_transaction_.size() >= kMaxReadInTransaction) read_in_transaction_.clear();
        read_in_transaction_.emplace(ref, read);
      }
      return read;
    });
  }

  void put_entity(const Entity& entity) override {
    guard("store entity " + entity.ref.str(), [&] {
      read_in_transaction_.erase(entity.ref);
      // One statement for both: a new entity is inserted (version 1); a
      // stored one is updated only from the version it was read at. A row
      // neither inserted nor updated is the conflict.
      SQLite::Statement& q = prepared(
          "INSERT INTO entities (type, id, fields, observed_at, parent_type, parent_id, first_seen_at, status, "
          "version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (type, id) DO UPDATE SET fields = excluded.fields, "
          "observed_at = excluded.observed_at, parent_type = excluded.parent_type, "
          "parent_id = excluded.parent_id, first_seen_at = COALESCE(entities.first_seen_at, excluded.first_seen_at), "
          "status = excluded.status, version = entities.version + 1 WHERE entities.version = ?9");
      q.bind(9, static_cast<int64_t>(entity.version));
      q.bind(1, std::string(to_string(entity.ref.type)));
      q.bind(2, entity.ref.id);
      q.bind(3, entity.fields.dump());
      q.bind(4, static_cast<int64_t>(millis(entity.observed_at)));
      if (auto parent = entity.parent()) {
        q.bind(5, std::string(to_string(parent->type)));
        q.bind(6, parent->id);
      }
      q.bind(7, static_cast<int64_t>(millis(entity.first_seen.value_or(entity.observed_at))));
      if (const auto status = entity.fields.find("status"); status != entity.fields.end() && status->is_string())
        q.bind(8, status->get_ref<const std::string&>());
      if (q.exec() != 1) throw_written_meanwhile(entity);
    });
  }

  void touch_entity(const Entity& entity, Timestamp observed_at) override {
    guard("store entity " + entity.ref.str(), [&] {
      read_in_transaction_.erase(entity.ref);
      SQLite::Statement& q = prepared("UPDATE entities SET observed_at = ? WHERE type = ? AND id = ? AND version = ?");
      q.bind(1, static_cast<int64_t>(millis(observed_at)));
      q.bind(2, std::string(to_string(entity.ref.type)));
      q.bind(3, entity.ref.id);
      q.bind(4, static_cast<int64_t>(entity.version));
      if (q.exec() != 1) throw_written_meanwhile(entity);
    });
  }

  [[noreturn]] static void throw_written_meanwhile(const Entity& entity) {
    throw StoreError("cannot store entity " + entity.ref.str() + ": another writer stored it since it was read" +
                     (entity.version ? " at version " + std::to_string(entity.version) : " as new") +
                     "; run the transaction again from a fresh read");
  }

  std::optional<Entity> latest_child(const EntityRef& parent, EntityType type) const override {
    return guard("read the latest " + std::string(to_string(type)) + " of " + parent.str(),
                 [&]() -> std::optional<Entity> {
                   SQLite::Statement& q = prepared(std::string("SELECT ") + kEntityColumns +
                                                   " FROM entities WHERE parent_type = ? AND parent_id = ? AND " +
                                                   type_is(type) + " ORDER BY observed_at DESC, id DESC LIMIT 1");
                   q.bind(1, std::string(to_string(parent.type)));
                   q.bind(2, parent.id);
                   if (!q.executeStep()) return std::nullopt;
                   return read_entity(q);
                 });
  }

  std::size_t count_children(const EntityRef& parent, EntityType type, const std::string& status) const override {
    return guard("count the " + std::string(to_string(type)) + "s of " + parent.str(), [&] {
      SQLite::Statement& q =
          prepared("SELECT n FROM child_counts WHERE parent_type = ? AND parent_id = ? AND type = ? AND status = ?");
      q.bind(1, std::string(to_string(parent.type)));
      q.bind(2, parent.id);
      q.bind(3, std::string(to_string(type)));
      q.bind(4, status);
      return q.executeStep() ? static_cast<std::size_t>(q.getColumn(0).getInt64()) : std::size_t{0};
    });
  }

  std::vector<Entity> entities(EntityType type, const std::string& after_id, std::size_t limit) const override {
    return guard("read entities of type " + std::string(to_string(type)), [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kEntityColumns + " FROM entities WHERE " +
                                      type_is(type) + " AND id > ? ORDER BY id LIMIT ?");
      q.bind(1, after_id);
      q.bind(2, static_cast<int64_t>(limit));
      std::vector<Entity> out;
      while (q.executeStep()) out.push_back(read_entity(q));
      return out;
    });
  }

  bool enqueue(const Notification& n, const std::string& why) override {
    return guard("enqueue " + n.idempotency_key, [&] {
      SQLite::Statement& q = prepared(
          "INSERT INTO outbox (idempotency_key, created_at, due_at, rule, kind, customer, entity, "
          "channel, recipient, subject, body, locale, time_zone, event, message_ref, recipient_key, action, "
          "action_state, status) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending') "
          "ON CONFLICT (idempotency_key) DO NOTHING");
      q.bind(1, n.idempotency_key);
      q.bind(2, static_cast<int64_t>(millis(n.at)));
      q.bind(3, static_cast<int64_t>(millis(n.at)));
      q.bind(4, n.rule);
      q.bind(5, std::string(to_string(n.kind)));
      q.bind(6, n.customer);
      q.bind(7, n.entity.str());
      q.bind(8, std::string(to_string(n.channel)));
      q.bind(9, n.to);
      if (n.subject) q.bind(10, *n.subject);
      q.bind(11, n.body);
      q.bind(12, n.locale);
      q.bind(13, n.time_zone);
      if (!n.event.is_null()) q.bind(14, n.event.dump());
      if (n.channel == Channel::kEmail) q.bind(15, message_ref(n.idempotency_key));
      q.bind(16, address_key(n.channel, n.to));
      if (!n.action.empty()) {
        q.bind(17, n.action);
        q.bind(18, "pending");
      }
      if (q.exec() != 1) return false;
      last_enqueued_ = db_.getLastInsertRowid();
      insert_decision(last_enqueued_, n.at, "queued", why);
      return true;
    });
  }

  long long last_enqueued() const override { return last_enqueued_; }

  long long data_version() const override {
    const AnyCaller any(*this);  // the connection's, no role's: answered within a transaction too
    return guard("read the data version", [&] {
      SQLite::Statement& q = prepared("PRAGMA data_version");
      return q.executeStep() ? static_cast<long long>(q.getColumn(0).getInt64()) : 0LL;
    });
  }

  bool has_notification(const std::string& key) const override {
    return guard("look up " + key, [&] {
      SQLite::Statement& q = prepared("SELECT 1 FROM outbox WHERE idempotency_key = ?");
      q.bind(1, key);
      return q.executeStep();
    });
  }

  std::vector<Notification> notifications_since(const std::string& customer, Timestamp since) const override {
    return guard("read notifications of " + customer, [&] {
      SQLite::Statement& q =
          prepared(std::string("SELECT ") + kNotificationColumns +
                   " FROM outbox WHERE customer = ? AND due_at >= ? AND status NOT IN ('dropped', 'overtaken') "
                   "ORDER BY due_at, id");
      q.bind(1, customer);
      q.bind(2, static_cast<int64_t>(millis(since)));
      std::vector<Notification> out;
      for (auto& entry : read_entries(q, false)) out.push_back(std::move(entry.notification));
      return out;
    });
  }

  std::optional<Timestamp> latest_notification_at(const std::string& customer) const override {
    return guard("read the latest notification of " + customer, [&]() -> std::optional<Timestamp> {
      // Walks the customer's index from the newest: one step unless the
      // newest were dropped, overtaken or dead (MAX() would read them all).
      SQLite::Statement& q = prepared(
          "SELECT due_at FROM outbox WHERE customer = ? AND status IN ('pending', 'delivered', 'unknown') "
          "ORDER BY due_at DESC LIMIT 1");
      q.bind(1, customer);
      if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
      return from_millis(q.getColumn(0).getInt64());
    });
  }

  std::optional<Notification> last_notification(const std::string& rule, const std::string& customer) const override {
    return guard("read the last notification of " + rule, [&]() -> std::optional<Notification> {
      SQLite::Statement& q =
          prepared(std::string("SELECT ") + kNotificationColumns +
                   " FROM outbox WHERE rule = ? AND customer = ? AND status NOT IN ('dropped', 'overtaken') "
                   "ORDER BY due_at DESC, id DESC LIMIT 1");
      q.bind(1, rule);
      q.bind(2, customer);
      auto entries = read_entries(q, false);
      if (entries.empty()) return std::nullopt;
      return std::move(entries.front().notification);
    });
  }

  std::vector<OutboxEntry> outbox(std::optional<OutboxStatus> status) const override {
    return guard("read the outbox", [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kNotificationColumns + " FROM outbox" +
                                      (status ? " WHERE status = ?" : "") + " ORDER BY id");
      if (status) q.bind(1, std::string(to_string(*status)));
      return read_entries(q, true);
    });
  }

  std::vector<Kind> kinds_about(const EntityRef& entity) const override {
    return guard("read the notifications about " + entity.str(), [&] {
      SQLite::Statement& q =
          prepared("SELECT kind FROM outbox WHERE entity = ? AND status NOT IN ('dropped', 'overtaken') ORDER BY id");
      q.bind(1, entity.str());
      std::vector<Kind> out;
      while (q.executeStep())  // an unknown kind is a row that readers of whole entries set aside
        if (auto kind = parse_kind(q.getColumn(0).getString())) out.push_back(*kind);
      return out;
    });
  }

  // Through a Transaction, within it (committed or rolled back with it);
  // on the Store, in a transaction of its own.
  std::vector<OutboxEntry> pending_about(const EntityRef& entity) const override {
    return guard("read the pending notifications about " + entity.str(), [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kNotificationColumns +
                                      " FROM outbox WHERE entity = ? AND status = 'pending' ORDER BY id");
      q.bind(1, entity.str());
      return read_entries(q, false);
    });
  }

  bool drop(long long outbox_id) override {
    return guard("drop outbox entry " + std::to_string(outbox_id), [&] {
      SQLite::Statement& q =
          prepared("UPDATE outbox SET status = 'dropped' WHERE id = ? AND status IN ('pending', 'dead', 'unknown')");
      q.bind(1, static_cast<int64_t>(outbox_id));
      return q.exec() == 1;
    });
  }

  bool mark_overtaken(long long outbox_id, Timestamp at, const std::string& reason) override {
    return guard("mark outbox entry " + std::to_string(outbox_id) + " overtaken", [&] {
      std::optional<SQLite::Transaction> own;
      if (!transaction_open()) own.emplace(db_, kWriter);
      SQLite::Statement& q = prepared(
          "UPDATE outbox SET status = 'overtaken', last_error = ?, sending_since = NULL, lease_until = NULL "
          "WHERE id = ? AND status = 'pending'");
      q.bind(1, reason);
      q.bind(2, static_cast<int64_t>(outbox_id));
      const bool changed = q.exec() == 1;
      if (changed) insert_decision(outbox_id, at, "overtaken", reason);
      if (own) own->commit();
      return changed;
    });
  }

  void update_message(long long outbox_id, const Notification& n) override {
    guard("update the message of outbox entry " + std::to_string(outbox_id), [&] {
      SQLite::Statement& q = prepared(
          "UPDATE outbox SET recipient = ?, subject = ?, body = ?, locale = ?, time_zone = ?, "
          "recipient_key = ? WHERE id = ?");
      q.bind(1, n.to);
      if (n.subject) q.bind(2, *n.subject);
      q.bind(3, n.body);
      q.bind(4, n.locale);
      q.bind(5, n.time_zone);
      q.bind(6, address_key(n.channel, n.to));
      q.bind(7, static_cast<int64_t>(outbox_id));
      q.exec();
    });
  }

  void record_decision(long long outbox_id, Timestamp at, const std::string& decision,
                       const std::string& reason) override {
    guard("record a decision about outbox entry " + std::to_string(outbox_id),
          [&] { insert_decision(outbox_id, at, decision, reason); });
  }

  std::vector<OutboxDecision> decisions(long long outbox_id) const override {
    return guard("read the decisions about outbox entry " + std::to_string(outbox_id), [&] {
      SQLite::Statement& q =
          prepared("SELECT at, decision, reason FROM outbox_decisions WHERE outbox_id = ? ORDER BY id");
      q.bind(1, static_cast<int64_t>(outbox_id));
      std::vector<OutboxDecision> out;
      while (q.executeStep())
        out.push_back(OutboxDecision{from_millis(q.getColumn(0).getInt64()), q.getColumn(1).getString(),
                                     q.getColumn(2).getString()});
      return out;
    });
  }

  void mark_delivered(long long outbox_id, Timestamp at, const std::string& detail) override {
    guard("mark outbox entry " + std::to_string(outbox_id) + " delivered", [&] {
      std::optional<SQLite::Transaction> own;
      if (!transaction_open()) own.emplace(db_, kWriter);
      // No RETURNING, no INSERT ... SELECT: SQLite keeps a statement
      // journal for a statement that may write several rows (RETURNING
      // counts as such), a copy of every page it changes that the round's
      // transaction had changed already; a one-row UPDATE by id, a read by
      // id and INSERT ... VALUES keep none (delivery_bench under callgrind).
      // The row is not read into an OutboxEntry: the contact's columns go
      // in as they are read, bound without a copy before the read is reset.
      SQLite::Statement& update = prepared(
          "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, "
          "next_attempt_at = NULL, last_error = NULL, sending_since = NULL, lease_until = NULL WHERE id = ?");
      update.bind(1, static_cast<int64_t>(outbox_id));
      if (update.exec() != 1) throw StoreError("no outbox entry " + std::to_string(outbox_id));
      SQLite::Statement& row =
          prepared("SELECT attempts, customer, kind, rule, entity, channel, idempotency_key FROM outbox WHERE id = ?");
      row.bind(1, static_cast<int64_t>(outbox_id));
      row.executeStep();
      insert_attempt(outbox_id, row.getColumn(0).getInt(), at, "delivered", detail);
      SQLite::Statement& contact = prepared(
          "INSERT INTO contacts (customer, at, kind, rule, entity, channel, idempotency_key) "
          "VALUES (?, ?, ?, ?, ?, ?, ?)");
      contact.bindNoCopy(1, row.getColumn(1).getText());
      contact.bind(2, static_cast<int64_t>(millis(at)));
      for (int column = 2; column <= 6; ++column) contact.bindNoCopy(column + 1, row.getColumn(column).getText());
      contact.exec();
      contact.clearBindings();  // the texts are the read's, gone once it is reset
      row.tryReset();
      if (own) own->commit();
    });
  }

  void record_failure(long long outbox_id, Timestamp at, const std::string& detail,
                      std::optional<Timestamp> retry_at) override {
    guard("record a failed delivery of outbox entry " + std::to_string(outbox_id), [&] {
      std::optional<SQLite::Transaction> own;
      if (!transaction_open()) own.emplace(db_, kWriter);
      // One-row statements without RETURNING, as in mark_delivered().
      SQLite::Statement& update = prepared(
          "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_at = ?, "
          "last_error = ?, sending_since = NULL, lease_until = NULL WHERE id = ? AND status = 'pending'");
      update.bind(1, retry_at ? "pending" : "dead");
      if (retry_at) update.bind(2, static_cast<int64_t>(millis(*retry_at)));
      update.bind(3, detail);
      update.bind(4, static_cast<int64_t>(outbox_id));
      int number = 0;
      if (update.exec() == 1) {
        number = attempts_of(outbox_id);
      } else {  // dropped meanwhile: it stays dropped, its claim ends, the attempt is recorded all the same
        SQLite::Statement& q = prepared("UPDATE outbox SET sending_since = NULL, lease_until = NULL WHERE id = ?");
        q.bind(1, static_cast<int64_t>(outbox_id));
        if (q.exec() != 1) throw StoreError("no outbox entry " + std::to_string(outbox_id));
        number = attempts_of(outbox_id) + 1;
      }
      insert_attempt(outbox_id, number, at, retry_at ? "retry" : "dead", detail);
      if (own) own->commit();
    });
  }

  bool retry(long long outbox_id, Timestamp now) override {
    return guard("retry outbox entry " + std::to_string(outbox_id), [&] {
      SQLite::Statement& q = prepared(
          "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE id = ? AND status IN "
          "('dead', 'pending', 'unknown')");
      q.bind(1, static_cast<int64_t>(millis(now)));
      q.bind(2, static_cast<int64_t>(outbox_id));
      return q.exec() == 1;
    });
  }

  bool resolve_delivered(long long outbox_id, Timestamp at, const std::string& note) override {
    return guard("resolve outbox entry " + std::to_string(outbox_id) + " as delivered", [&] {
      std::optional<SQLite::Transaction> own;
      if (!transaction_open()) own.emplace(db_, kWriter);
      SQLite::Statement& update = prepared(
          "UPDATE outbox SET status = 'delivered', next_attempt_at = NULL, last_error = NULL, sending_since = NULL, "
          "lease_until = NULL "
          "WHERE id = ? AND status = 'unknown'");
      update.bind(1, static_cast<int64_t>(outbox_id));
      if (update.exec() != 1) return false;
      const OutboxEntry entry = read_entry_by_id(outbox_id);
      insert_decision(outbox_id, at, "resolved", note);
      const Notification& n = entry.notification;
      insert_contact(Contact{n.customer, at, n.kind, n.rule, n.entity, n.channel, n.idempotency_key});
      if (own) own->commit();
      return true;
    });
  }

  void claim(const std::vector<long long>& outbox_ids, Timestamp at) override {
    if (outbox_ids.empty()) return;
    guard("claim " + std::to_string(outbox_ids.size()) + " outbox entries for sending", [&] {
      std::optional<SQLite::Transaction> own;
      if (!transaction_open()) own.emplace(db_, kWriter);
      SQLite::Statement& q = prepared(
          "UPDATE outbox SET sending_since = ?, lease_until = ? WHERE id = ? AND status = 'pending' AND "
          "sending_since IS NULL");
      for (const long long id : outbox_ids) {
        q.tryReset();
        q.bind(1, static_cast<int64_t>(millis(at)));
        q.bind(2, kNoLeaseEnd);
        q.bind(3, static_cast<int64_t>(id));
        q.exec();
      }
      if (own) own->commit();
    });
  }

  std::vector<OutboxEntry> claim_due_notifications(Channel channel, std::size_t limit, Timestamp now,
                                                   Duration lease) override {
    if (limit == 0) return {};
    return guard("claim due " + std::string(to_string(channel)) + " notifications", [&] {
      // One statement over outbox_claimable: the entries that may be
      // claimed at `now` are a range of it, in the order they are taken.
      static const std::string kClaim =
          std::string(
              "UPDATE outbox SET sending_since = ?1, lease_until = ?4 WHERE id IN (SELECT id FROM outbox "
              "WHERE channel = ?2 AND status = 'pending' AND (action_state IS NULL OR action_state != 'pending') "
              "AND max(COALESCE(next_attempt_at, due_at), COALESCE(lease_until, 0)) <= ?1 "
              "ORDER BY max(COALESCE(next_attempt_at, due_at), COALESCE(lease_until, 0)), id LIMIT ?3) "
              "RETURNING ") +
          kNotificationColumns;
      SQLite::Statement& q = prepared(kClaim);
      q.bind(1, static_cast<int64_t>(millis(now)));
      q.bind(2, std::string(to_string(channel)));
      q.bind(3, static_cast<int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
      q.bind(4, static_cast<int64_t>(millis(now + lease)));
      std::vector<OutboxEntry> claimed = read_entries(q, false);
      // RETURNING gives the rows in no particular order.
      std::sort(claimed.begin(), claimed.end(), [](const OutboxEntry& a, const OutboxEntry& b) {
        const Timestamp due_a = a.next_attempt.value_or(a.notification.at);
        const Timestamp due_b = b.next_attempt.value_or(b.notification.at);
        return due_a != due_b ? due_a < due_b : a.id < b.id;
      });
      return claimed;
    });
  }

  std::vector<OutboxEntry> interrupted() const override {
    return guard("read the sends cut off", [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kNotificationColumns +
                                      " FROM outbox WHERE sending_since IS NOT NULL ORDER BY sending_since, id");
      return read_entries(q, false);
    });
  }

  bool settle_interrupted(long long outbox_id, Timestamp at, bool retry, const std::string& detail) override {
    return guard("settle the cut-off send of outbox entry " + std::to_string(outbox_id), [&] {
      std::optional<SQLite::Transaction> own;
      if (!transaction_open()) own.emplace(db_, kWriter);
      SQLite::Statement& update = prepared(
          "UPDATE outbox SET status = CASE WHEN ?1 OR status <> 'pending' THEN status ELSE 'unknown' END, "
          "attempts = attempts + 1, "
          "next_attempt_at = CASE WHEN ?1 THEN ?2 ELSE NULL END, last_error = ?3, sending_since = NULL, lease_until = "
          "NULL "
          "WHERE id = ?4 AND sending_since IS NOT NULL");
      update.bind(1, retry ? 1 : 0);
      update.bind(2, static_cast<int64_t>(millis(at)));
      update.bind(3, detail);
      update.bind(4, static_cast<int64_t>(outbox_id));
      if (update.exec() != 1) return false;
      const OutboxEntry entry = read_entry_by_id(outbox_id);
      insert_attempt(outbox_id, entry.attempts, at, "interrupted", detail);
      if (own) own->commit();
      return true;
    });
  }

  std::optional<OutboxEntry> outbox_entry(long long outbox_id) const override {
    return guard("read outbox entry " + std::to_string(outbox_id), [&]() -> std::optional<OutboxEntry> {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kNotificationColumns + " FROM outbox WHERE id = ?");
      q.bind(1, static_cast<int64_t>(outbox_id));
      auto entries = read_entries(q, true);
      if (entries.empty()) return std::nullopt;
      return std::move(entries.front());
    });
  }

  std::vector<DeliveryAttempt> attempts(long long outbox_id) const override {
    return guard("read the attempts of outbox entry " + std::to_string(outbox_id), [&] {
      SQLite::Statement& q = prepared(
          "SELECT number, at, outcome, detail FROM delivery_attempts WHERE outbox_id = ? ORDER BY "
          "number, id");
      q.bind(1, static_cast<int64_t>(outbox_id));
      std::vector<DeliveryAttempt> out;
      while (q.executeStep())
        out.push_back(DeliveryAttempt{q.getColumn(0).getInt(), from_millis(q.getColumn(1).getInt64()),
                                      q.getColumn(2).getString(), q.getColumn(3).getString()});
      return out;
    });
  }

  void schedule_timer(const Timer& t) override {
    guard("schedule timer " + t.rule + " for " + t.entity.str(), [&] {
      SQLite::Statement& q = prepared(
          "INSERT INTO timers (rule, entity, due_at, fired) VALUES (?, ?, ?, 0) "
          "ON CONFLICT (rule, entity) DO UPDATE SET fired = CASE WHEN timers.due_at = excluded.due_at "
          "THEN timers.fired ELSE 0 END, due_at = excluded.due_at");
      q.bind(1, t.rule);
      q.bind(2, t.entity.str());
      q.bind(3, static_cast<int64_t>(millis(t.due)));
      q.exec();
    });
  }

  void cancel_timer(const std::string& rule, const EntityRef& entity) override {
    guard("cancel timer " + rule + " for " + entity.str(), [&] {
      SQLite::Statement& q = prepared("DELETE FROM timers WHERE rule = ? AND entity = ?");
      q.bind(1, rule);
      q.bind(2, entity.str());
      q.exec();
    });
  }

  std::vector<Timer> due_timers(Timestamp until, size_t limit) const override {
    return guard("read due timers", [&] {
      SQLite::Statement& q = prepared(
          "SELECT rule, entity, due_at FROM timers WHERE fired = 0 AND due_at <= ? "
          "ORDER BY due_at, rule, entity LIMIT ?");
      q.bind(1, static_cast<int64_t>(millis(until)));
      q.bind(2, static_cast<int64_t>(limit));
      std::vector<Timer> out;
      while (q.executeStep())
        out.push_back(Timer{q.getColumn(0).getString(), ref_from(q.getColumn(1).getString()),
                            from_millis(q.getColumn(2).getInt64())});
      return out;
    });
  }

  std::optional<Timestamp> next_timer() const override {
    return guard("read the next timer", [&]() -> std::optional<Timestamp> {
      SQLite::Statement& q = prepared("SELECT MIN(due_at) FROM timers WHERE fired = 0");
      if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
      return from_millis(q.getColumn(0).getInt64());
    });
  }

  CancelledTimers cancel_timers(const std::string& rule, std::size_t limit) override {
    return guard("cancel the timers of rule " + rule, [&] {
      // By rowid, found through the primary key's index: one statement
      // touches at most `limit` rows, however many the rule has.
      SQLite::Statement& q = prepared(
          "DELETE FROM timers WHERE rowid IN (SELECT rowid FROM timers WHERE rule = ? LIMIT ?) RETURNING fired");
      q.bind(1, rule);
      q.bind(2, static_cast<int64_t>(limit));
      CancelledTimers out;
      while (q.executeStep()) {
        ++out.removed;
        if (q.getColumn(0).getInt() == 0) ++out.unfired;
      }
      return out;
    });
  }

  std::size_t pending_timers() const override {
    return guard("count the pending timers", [&] {
      SQLite::Statement& q = prepared("SELECT n FROM pending_timer_count");  // kept by triggers (migration 24)
      q.executeStep();
      return static_cast<std::size_t>(q.getColumn(0).getInt64());
    });
  }

  bool mark_timer_fired(const Timer& t) override {
    return guard("mark timer " + t.rule + " for " + t.entity.str() + " fired", [&] {
      SQLite::Statement& q =
          prepared("UPDATE timers SET fired = 1 WHERE rule = ? AND entity = ? AND due_at = ? AND fired = 0");
      q.bind(1, t.rule);
      q.bind(2, t.entity.str());
      q.bind(3, static_cast<int64_t>(millis(t.due)));
      return q.exec() == 1;
    });
  }

  std::vector<OutboxEntry> due_notifications(Timestamp until, std::optional<Channel> channel,
                                             std::size_t limit) const override {
    return guard("read due notifications", [&] {
      // Two forms: every channel's, or one channel's.
      static const std::string kAll = std::string("SELECT ") + kNotificationColumns +
                                      " FROM outbox WHERE status = 'pending' AND sending_since IS NULL "
                                      "AND COALESCE(next_attempt_at, due_at) <= ?1 "
                                      "AND (action_state IS NULL OR action_state != 'pending') "
                                      "ORDER BY COALESCE(next_attempt_at, due_at), id LIMIT ?3";
      static const std::string kOfChannel = std::string("SELECT ") + kNotificationColumns +
                                            " FROM outbox WHERE status = 'pending' AND sending_since IS NULL "
                                            "AND channel = ?2 AND COALESCE(next_attempt_at, due_at) <= ?1 "
                                            "AND (action_state IS NULL OR action_state != 'pending') "
                                            "ORDER BY COALESCE(next_attempt_at, due_at), id LIMIT ?3";
      SQLite::Statement& q = prepared(channel ? kOfChannel : kAll);
      q.bind(1, static_cast<int64_t>(millis(until)));
      if (channel) q.bind(2, std::string(to_string(*channel)));
      q.bind(3, limit == kNoLimit ? int64_t{-1} : static_cast<int64_t>(limit));
      return read_entries(q, false);
    });
  }

  std::vector<OutboxEntry> due_actions(Timestamp until, std::size_t limit) const override {
    return guard("read due actions", [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kNotificationColumns +
                                      " FROM outbox WHERE status = 'pending' AND action_state = 'pending' "
                                      "AND COALESCE(action_next_at, due_at) <= ? "
                                      "ORDER BY COALESCE(action_next_at, due_at), id LIMIT ?");
      q.bind(1, static_cast<int64_t>(millis(until)));
      q.bind(2, limit == kNoLimit ? int64_t{-1} : static_cast<int64_t>(limit));
      return read_entries(q, false);
    });
  }

  std::optional<Timestamp> next_action() const override {
    return guard("read the next action", [&]() -> std::optional<Timestamp> {
      SQLite::Statement& q = prepared(
          "SELECT MIN(COALESCE(action_next_at, due_at)) FROM outbox WHERE status = 'pending' AND "
          "action_state = 'pending'");
      if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
      return from_millis(q.getColumn(0).getInt64());
    });
  }

  bool record_action(long long outbox_id, Timestamp at, ActionState state, const nlohmann::json& answer,
                     std::optional<Timestamp> retry_at, const std::string& detail) override {
    return guard("record the action of outbox entry " + std::to_string(outbox_id), [&] {
      std::optional<SQLite::Transaction> own;
      if (!transaction_open()) own.emplace(db_, kWriter);
      SQLite::Statement& q = prepared(
          "UPDATE outbox SET action_state = ?, action_answer = ?, action_attempts = action_attempts + 1, "
          "action_next_at = ?, action_detail = ? WHERE id = ? AND action_state = 'pending'");
      q.bind(1, std::string(to_string(state)));
      if (state == ActionState::kDone) q.bind(2, answer.dump());
      if (state == ActionState::kPending && retry_at) q.bind(3, static_cast<int64_t>(millis(*retry_at)));
      q.bind(4, detail);
      q.bind(5, static_cast<int64_t>(outbox_id));
      const bool changed = q.exec() == 1;
      if (changed) insert_decision(outbox_id, at, "action", detail);
      if (own) own->commit();
      return changed;
    });
  }

  std::optional<Timestamp> next_notification() const override {
    return guard("read the next notification", [&]() -> std::optional<Timestamp> {
      SQLite::Statement& q = prepared(
          "SELECT MIN(COALESCE(next_attempt_at, due_at)) FROM outbox WHERE status = 'pending' AND "
          "sending_since IS NULL AND (action_state IS NULL OR action_state != 'pending')");
      if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
      return from_millis(q.getColumn(0).getInt64());
    });
  }

  // The pending entries are counted on outbox_pending alone (no row of the
  // table is read: about 30 ms for a backlog of a million), the oldest due
  // is the index's first entry, the unknown ones are few.
  OutboxDepth outbox_depth(Timestamp now) const override {
    return guard("count the pending notifications", [&] {
      SQLite::Statement& q = prepared(
          "SELECT (SELECT COUNT(*) FROM outbox WHERE status = 'pending'), "
          "(SELECT COUNT(*) FROM outbox WHERE status = 'unknown'), "
          "(SELECT MIN(COALESCE(next_attempt_at, due_at)) FROM outbox WHERE status = 'pending')");
      q.executeStep();
      OutboxDepth depth;
      depth.pending = static_cast<std::size_t>(q.getColumn(0).getInt64());
      depth.unknown = static_cast<std::size_t>(q.getColumn(1).getInt64());
      if (!q.getColumn(2).isNull())
        if (const Timestamp due = from_millis(q.getColumn(2).getInt64()); due <= now) depth.oldest_due = due;
      return depth;
    });
  }

  void add_waiting(const WaitingIntent& w) override {
    guard("keep the intent of " + w.rule + " for " + w.entity.str() + " waiting", [&] {
      SQLite::Statement& q = prepared(
          "INSERT INTO waiting_intents (rule, entity, trigger, event, waiting_for, since, until, reason) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule, entity, trigger) DO UPDATE SET "
          "waiting_for = excluded.waiting_for, reason = excluded.reason");
      q.bind(1, w.rule);
      q.bind(2, w.entity.str());
      q.bind(3, w.trigger);
      if (!w.event.is_null()) q.bind(4, w.event.dump());
      q.bind(5, w.waiting_for.str());
      q.bind(6, static_cast<int64_t>(millis(w.since)));
      q.bind(7, static_cast<int64_t>(millis(w.until)));
      q.bind(8, w.reason);
      q.exec();
    });
  }

  std::vector<WaitingIntent> waiting_for(const EntityRef& ref) const override {
    return guard("read the intents waiting for " + ref.str(), [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kWaitingColumns +
                                      " FROM waiting_intents WHERE waiting_for = ? ORDER BY id");
      q.bind(1, ref.str());
      return read_waiting(q);
    });
  }

  std::vector<WaitingIntent> expired_waiting(Timestamp now, std::size_t limit) const override {
    return guard("read the expired waiting intents", [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kWaitingColumns +
                                      " FROM waiting_intents WHERE until <= ? ORDER BY until, id LIMIT ?");
      q.bind(1, static_cast<int64_t>(millis(now)));
      q.bind(2, static_cast<int64_t>(limit));
      return read_waiting(q);
    });
  }

  std::optional<Timestamp> next_waiting_expiry() const override {
    return guard("read the next waiting intent's expiry", [&]() -> std::optional<Timestamp> {
      SQLite::Statement& q = prepared("SELECT MIN(until) FROM waiting_intents");
      if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
      return from_millis(q.getColumn(0).getInt64());
    });
  }

  void remove_waiting(long long id) override {
    guard("remove waiting intent " + std::to_string(id), [&] {
      SQLite::Statement& q = prepared("DELETE FROM waiting_intents WHERE id = ?");
      q.bind(1, static_cast<int64_t>(id));
      q.exec();
    });
  }

  std::optional<std::string> cursor(const std::string& source) const override {
    return guard("read the cursor of source " + source, [&]() -> std::optional<std::string> {
      SQLite::Statement& q = prepared("SELECT cursor FROM source_cursors WHERE source = ?");
      q.bind(1, source);
      if (!q.executeStep()) return std::nullopt;
      return q.getColumn(0).getString();
    });
  }

  void set_cursor(const std::string& source, const std::string& value) override {
    guard("store the cursor of source " + source, [&] {
      SQLite::Statement& q = prepared(
          "INSERT INTO source_cursors (source, cursor) VALUES (?, ?) "
          "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor");
      q.bind(1, source);
      q.bind(2, value);
      q.exec();
    });
  }

  long long add_reply(const Reply& r) override {
    return guard("record a reply from " + r.from, [&]() -> long long {
      SQLite::Statement& q = prepared(
          "INSERT INTO replies (at, channel, provider, provider_id, sender, recipient, subject, text, stop, customer, "
          "notification, entity, matched_by, forwarded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT DO NOTHING");
      q.bind(1, static_cast<int64_t>(millis(r.at)));
      q.bind(2, std::string(to_string(r.channel)));
      q.bind(3, r.provider);
      q.bind(4, r.provider_id);
      q.bind(5, r.from);
      q.bind(6, r.to);
      if (r.subject) q.bind(7, *r.subject);
      q.bind(8, r.text);
      q.bind(9, r.stop ? 1 : 0);
      q.bind(10, r.customer);
      q.bind(11, r.notification);
      if (r.entity) q.bind(12, r.entity->str());
      q.bind(13, r.matched_by);
      if (r.forwarded_at) q.bind(14, static_cast<int64_t>(millis(*r.forwarded_at)));
      if (q.exec() != 1) return 0;
      return db_.getLastInsertRowid();
    });
  }

  std::vector<Reply> replies(const std::string& customer) const override {
    return guard("read the replies of " + customer, [&] {
      SQLite::Statement& q =
          prepared(std::string("SELECT ") + kReplyColumns + " FROM replies WHERE customer = ? ORDER BY at, id");
      q.bind(1, customer);
      std::vector<Reply> out;
      while (q.executeStep()) out.push_back(read_reply(q));
      return out;
    });
  }

  std::vector<Reply> unforwarded_replies(std::size_t limit) const override {
    return guard("read the replies not forwarded", [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kReplyColumns +
                                      " FROM replies WHERE forwarded_at IS NULL ORDER BY id LIMIT ?");
      q.bind(1, static_cast<int64_t>(limit));
      std::vector<Reply> out;
      while (q.executeStep()) out.push_back(read_reply(q));
      return out;
    });
  }

  void mark_forwarded(long long reply_id, Timestamp at) override {
    guard("mark reply " + std::to_string(reply_id) + " forwarded", [&] {
      SQLite::Statement& q = prepared("UPDATE replies SET forwarded_at = ? WHERE id = ?");
      q.bind(1, static_cast<int64_t>(millis(at)));
      q.bind(2, static_cast<int64_t>(reply_id));
      q.exec();
    });
  }

  RepliesAbout replies_about(const EntityRef& entity) const override {
    return guard("read the replies about " + entity.str(), [&] {
      const bool customer = entity.type == EntityType::kCustomer;
      SQLite::Statement& q = prepared(customer ? "SELECT COUNT(*), MAX(stop), MAX(at) FROM replies WHERE customer = ?"
                                               : "SELECT COUNT(*), MAX(stop), MAX(at) FROM replies WHERE entity = ?");
      q.bind(1, customer ? entity.id : entity.str());
      RepliesAbout out;
      if (q.executeStep() && q.getColumn(0).getInt64() > 0) {
        out.count = static_cast<std::size_t>(q.getColumn(0).getInt64());
        out.stop = q.getColumn(1).getInt() != 0;
        out.last = from_millis(q.getColumn(2).getInt64());
      }
      return out;
    });
  }

  bool add_opt_out(const OptOut& o) override {
    return guard("record an opt-out of " + std::string(to_string(o.channel)), [&] {
      if (opt_out(o.customer, o.channel, o.customer.empty() ? o.address : std::string{})) return false;
      SQLite::Statement& q =
          prepared("INSERT INTO opt_outs (customer, channel, address, at, reply_id) VALUES (?, ?, ?, ?, ?)");
      q.bind(1, o.customer);
      q.bind(2, std::string(to_string(o.channel)));
      q.bind(3, o.address);
      q.bind(4, static_cast<int64_t>(millis(o.at)));
      if (o.reply_id) q.bind(5, static_cast<int64_t>(o.reply_id));
      q.exec();
      return true;
    });
  }

  std::optional<OptOut> opt_out(const std::string& customer, Channel channel,
                                const std::string& address) const override {
    return guard("read the opt-outs of " + customer, [&]() -> std::optional<OptOut> {
      if (customer.empty() && address.empty()) return std::nullopt;
      SQLite::Statement& q = prepared(
          "SELECT customer, address, at, reply_id FROM opt_outs WHERE channel = ?1 AND customer = ?2 AND ?2 != '' "
          "AND ended_at IS NULL UNION ALL SELECT customer, address, at, reply_id FROM opt_outs WHERE channel = ?1 "
          "AND address = ?3 AND ?3 != '' AND ended_at IS NULL LIMIT 1");
      q.bind(1, std::string(to_string(channel)));
      q.bind(2, customer);
      q.bind(3, address);
      if (!q.executeStep()) return std::nullopt;
      return OptOut{q.getColumn(0).getString(), channel, q.getColumn(1).getString(),
                    from_millis(q.getColumn(2).getInt64()), q.getColumn(3).isNull() ? 0 : q.getColumn(3).getInt64()};
    });
  }

  bool end_opt_out(const std::string& customer, Channel channel, const std::string& address, Timestamp at,
                   long long reply_id) override {
    return guard("end an opt-out of " + std::string(to_string(channel)), [&] {
      SQLite::Statement& q = prepared(
          "UPDATE opt_outs SET ended_at = ?1, ended_by_reply = ?2 WHERE ended_at IS NULL AND channel = ?3 AND "
          "((customer = ?4 AND ?4 != '') OR (address = ?5 AND ?5 != ''))");
      q.bind(1, static_cast<int64_t>(millis(at)));
      q.bind(2, static_cast<int64_t>(reply_id));
      q.bind(3, std::string(to_string(channel)));
      q.bind(4, customer);
      q.bind(5, address);
      return q.exec() > 0;
    });
  }

  void pause(const EntityRef& entity, Timestamp until, const std::string& reason) override {
    guard("pause " + entity.str(), [&] {
      SQLite::Statement& q = prepared(
          "INSERT INTO pauses (entity, until, reason) VALUES (?, ?, ?) ON CONFLICT (entity) DO UPDATE SET "
          "until = excluded.until, reason = excluded.reason WHERE excluded.until > pauses.until");
      q.bind(1, entity.str());
      q.bind(2, static_cast<int64_t>(millis(until)));
      q.bind(3, reason);
      q.exec();
    });
  }

  std::optional<Pause> paused(const EntityRef& entity, Timestamp now) const override {
    return guard("read the pause of " + entity.str(), [&]() -> std::optional<Pause> {
      SQLite::Statement& q = prepared("SELECT until, reason FROM pauses WHERE entity = ? AND until > ?");
      q.bind(1, entity.str());
      q.bind(2, static_cast<int64_t>(millis(now)));
      if (!q.executeStep()) return std::nullopt;
      return Pause{from_millis(q.getColumn(0).getInt64()), q.getColumn(1).getString()};
    });
  }

  std::optional<Notification> notification_by_message_ref(const std::string& ref) const override {
    return guard("find the notification of Message-ID " + ref, [&]() -> std::optional<Notification> {
      SQLite::Statement& q =
          prepared(std::string("SELECT ") + kNotificationColumns + " FROM outbox WHERE message_ref = ? LIMIT 1");
      q.bind(1, ref);
      auto entries = read_entries(q, false);
      if (entries.empty()) return std::nullopt;
      return std::move(entries.front().notification);
    });
  }

  std::optional<Notification> latest_notification_to(Channel channel, const std::string& address) const override {
    return guard("find the latest notification to " + address, [&]() -> std::optional<Notification> {
      SQLite::Statement& q = prepared(
          std::string("SELECT ") + kNotificationColumns +
          " FROM outbox WHERE channel = ? AND recipient_key = ? AND status IN ('delivered', 'pending', 'unknown') "
          "ORDER BY due_at DESC, id DESC LIMIT 1");
      q.bind(1, std::string(to_string(channel)));
      q.bind(2, address);
      auto entries = read_entries(q, false);
      if (entries.empty()) return std::nullopt;
      return std::move(entries.front().notification);
    });
  }

  bool postpone(long long outbox_id, Timestamp now, Timestamp until, const std::string& reason) override {
    return guard("hold back outbox entry " + std::to_string(outbox_id), [&] {
      SQLite::Statement& q = prepared(
          "UPDATE outbox SET next_attempt_at = ?1, action_next_at = CASE WHEN action_state = 'pending' THEN ?1 ELSE "
          "action_next_at END, sending_since = NULL, lease_until = NULL WHERE id = ?2 AND status = 'pending'");
      q.bind(1, static_cast<int64_t>(millis(until)));
      q.bind(2, static_cast<int64_t>(outbox_id));
      const bool changed = q.exec() == 1;
      if (changed) insert_decision(outbox_id, now, "held back", reason);
      return changed;
    });
  }

  void record_contact(const Contact& contact) override {
    guard("record contact with " + contact.customer, [&] { insert_contact(contact); });
  }

  std::vector<Entity> customer_entities(const std::string& customer, std::size_t limit) const override {
    return guard("read the entities of " + customer, [&] {
      const std::string columns = std::string("SELECT ") + kEntityColumns + " FROM entities ";
      SQLite::Statement& q = prepared(
          columns + "WHERE type = 'customer' AND id = ?1 UNION ALL " + columns +
          "WHERE parent_type = 'customer' AND parent_id = ?1 UNION ALL " + columns +
          "WHERE parent_type = 'order' AND parent_id IN (SELECT id FROM entities WHERE parent_type = 'customer' "
          "AND parent_id = ?1 AND type = 'order') ORDER BY observed_at DESC, type, id LIMIT ?2");
      q.bind(1, customer);
      q.bind(2, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      std::vector<Entity> out;
      while (q.executeStep()) out.push_back(read_entity(q));
      return out;
    });
  }

  std::vector<OutboxEntry> customer_outbox(const std::string& customer, std::size_t limit) const override {
    return guard("read the outbox of " + customer, [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kNotificationColumns +
                                      " FROM outbox WHERE customer = ? ORDER BY due_at DESC, id DESC LIMIT ?");
      q.bind(1, customer);
      q.bind(2, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      return read_entries(q, true);
    });
  }

  void record_not_made(const NotMade& n) override {
    guard("record a message not made by rule " + n.rule, [&] {
      SQLite::Statement& prune =
          prepared("DELETE FROM not_made WHERE id IN (SELECT id FROM not_made WHERE at < ? ORDER BY at LIMIT 2)");
      prune.bind(1, static_cast<int64_t>(millis(n.at - kNotMadeRetention)));
      prune.exec();
      SQLite::Statement& q =
          prepared("INSERT INTO not_made (at, rule, customer, entity, code, reason) VALUES (?, ?, ?, ?, ?, ?)");
      q.bind(1, static_cast<int64_t>(millis(n.at)));
      q.bind(2, n.rule);
      q.bind(3, n.customer);
      q.bind(4, n.entity.str());
      q.bind(5, n.code);
      q.bind(6, n.reason);
      q.exec();
    });
  }

  std::vector<NotMade> customer_not_made(const std::string& customer, std::size_t limit) const override {
    return guard("read the messages not made for " + customer, [&] {
      SQLite::Statement& q = prepared(
          "SELECT at, rule, entity, code, reason FROM not_made WHERE customer = ? AND customer != '' "
          "ORDER BY at DESC, id DESC LIMIT ?");
      q.bind(1, customer);
      q.bind(2, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      std::vector<NotMade> out;
      while (q.executeStep())
        out.push_back(NotMade{from_millis(q.getColumn(0).getInt64()), q.getColumn(1).getString(), customer,
                              ref_from(q.getColumn(2).getString()), q.getColumn(3).getString(),
                              q.getColumn(4).getString()});
      return out;
    });
  }

  std::vector<NotMadeCount> not_made_counts(Timestamp since) const override {
    return guard("count the messages not made", [&] {
      SQLite::Statement& q =
          prepared("SELECT rule, code, count(*) FROM not_made WHERE at >= ? GROUP BY rule, code ORDER BY rule, code");
      q.bind(1, static_cast<int64_t>(millis(since)));
      std::vector<NotMadeCount> out;
      while (q.executeStep())
        out.push_back(NotMadeCount{q.getColumn(0).getString(), q.getColumn(1).getString(),
                                   static_cast<std::size_t>(q.getColumn(2).getInt64())});
      return out;
    });
  }

  std::vector<std::string> customers_by_contact(const std::string& contact, std::size_t limit) const override {
    return guard("find the customers with the contact detail " + contact, [&] {
      SQLite::Statement& q = prepared(
          // UNION ALL and GROUP BY: a plain UNION merges in id order, and
          // SQLite then reads every customer through the primary key.
          // The phone's expression is the one of the index of migration 23.
          "SELECT id FROM (SELECT id FROM entities WHERE type = 'customer' AND "
          "lower(json_extract(fields, '$.email')) = lower(?1) UNION ALL SELECT id FROM entities WHERE "
          "type = 'customer' AND replace(replace(replace(replace(replace(replace(replace(json_extract(fields, "
          "'$.phone'), ' ', ''), '-', ''), '+', ''), '(', ''), ')', ''), '.', ''), '/', '') = ?3) "
          "GROUP BY id ORDER BY id LIMIT ?2");
      q.bind(1, contact);
      q.bind(2, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      if (const std::string key = phone_key(contact); !key.empty())
        q.bind(3, key);
      else
        q.bind(3);  // NULL: equal to nothing
      std::vector<std::string> out;
      while (q.executeStep()) out.push_back(q.getColumn(0).getString());
      return out;
    });
  }

  std::map<OutboxStatus, std::size_t> outbox_counts() const override {
    return guard("count the outbox by status", [&] {
      SQLite::Statement& q = prepared("SELECT status, count(*) FROM outbox GROUP BY status");
      std::map<OutboxStatus, std::size_t> out;
      while (q.executeStep())
        if (auto status = parse_status(q.getColumn(0).getString()))
          out[*status] += static_cast<std::size_t>(q.getColumn(1).getInt64());
      return out;
    });
  }

  std::vector<OutboxEntry> latest_outbox(OutboxStatus status, std::size_t limit) const override {
    return guard("read the latest outbox entries", [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kNotificationColumns +
                                      " FROM outbox WHERE status = ? ORDER BY id DESC LIMIT ?");
      q.bind(1, std::string(to_string(status)));
      q.bind(2, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      return read_entries(q, true);
    });
  }

  std::vector<OutboxActivity> outbox_activity(Timestamp since, std::size_t limit) const override {
    return guard("read the outbox activity", [&] {
      SQLite::Statement& q = prepared(
          "SELECT id, rule, kind, status, created_at FROM "
          "(SELECT id, rule, kind, status, created_at FROM outbox ORDER BY id DESC LIMIT ?) "
          "WHERE created_at >= ? ORDER BY id DESC");
      q.bind(1, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      q.bind(2, static_cast<int64_t>(millis(since)));
      std::vector<OutboxActivity> out;
      while (q.executeStep()) {
        const auto kind = parse_kind(q.getColumn(2).getString());
        const auto status = parse_status(q.getColumn(3).getString());
        if (!kind || !status) continue;
        out.push_back(OutboxActivity{q.getColumn(0).getInt64(), q.getColumn(1).getString(), *kind, *status,
                                     from_millis(q.getColumn(4).getInt64())});
      }
      return out;
    });
  }

  std::vector<RuleDecision> decisions_since(Timestamp since, std::size_t limit) const override {
    return guard("read the recent decisions", [&] {
      SQLite::Statement& q = prepared(
          "SELECT o.rule, d.at, d.decision, d.reason FROM "
          "(SELECT outbox_id, at, decision, reason, id FROM outbox_decisions ORDER BY id DESC LIMIT ?) d "
          "JOIN outbox o ON o.id = d.outbox_id WHERE d.at >= ? ORDER BY d.id DESC");
      q.bind(1, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      q.bind(2, static_cast<int64_t>(millis(since)));
      std::vector<RuleDecision> out;
      while (q.executeStep())
        out.push_back(RuleDecision{q.getColumn(0).getString(), from_millis(q.getColumn(1).getInt64()),
                                   q.getColumn(2).getString(), q.getColumn(3).getString()});
      return out;
    });
  }

  std::vector<Reply> customer_replies(const std::string& customer, std::size_t limit) const override {
    return guard("read the replies of " + customer, [&] {
      SQLite::Statement& q = prepared(std::string("SELECT ") + kReplyColumns +
                                      " FROM replies WHERE customer = ? ORDER BY at DESC, id DESC LIMIT ?");
      q.bind(1, customer);
      q.bind(2, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      std::vector<Reply> out;
      while (q.executeStep()) out.push_back(read_reply(q));
      return out;
    });
  }

  std::vector<OptOut> customer_opt_outs(const std::string& customer) const override {
    return guard("read the opt-outs of " + customer, [&] {
      SQLite::Statement& q = prepared(
          "SELECT channel, address, at, reply_id, ended_at, ended_by_reply FROM opt_outs WHERE customer = ? AND "
          "customer != '' ORDER BY at, id");
      q.bind(1, customer);
      std::vector<OptOut> out;
      while (q.executeStep())
        out.push_back(OptOut{
            customer, channel_from(q.getColumn(0).getString()), q.getColumn(1).getString(),
            from_millis(q.getColumn(2).getInt64()), q.getColumn(3).isNull() ? 0 : q.getColumn(3).getInt64(),
            q.getColumn(4).isNull() ? std::nullopt : std::optional<Timestamp>(from_millis(q.getColumn(4).getInt64())),
            q.getColumn(5).isNull() ? 0 : q.getColumn(5).getInt64()});
      return out;
    });
  }

  std::vector<Contact> contacts(const std::string& customer) const override {
    return guard("read contacts of " + customer, [&] {
      SQLite::Statement& q = prepared(
          "SELECT at, kind, rule, entity, channel, idempotency_key FROM contacts WHERE customer = ? "
          "ORDER BY at, id");
      q.bind(1, customer);
      std::vector<Contact> out;
      while (q.executeStep()) {
        out.push_back(Contact{customer, from_millis(q.getColumn(0).getInt64()), kind_from(q.getColumn(1).getString()),
                              q.getColumn(2).getString(), ref_from(q.getColumn(3).getString()),
                              channel_from(q.getColumn(4).getString()), q.getColumn(5).getString()});
      }
      return out;
    });
  }

  // --- the replicas' shards, leases and shared intake (one replica here) ---

  void heartbeat(const std::string& replica, Timestamp now) override {
    guard("record the heartbeat of replica " + replica, [&] {
      SQLite::Statement& q = prepared(
          "INSERT INTO replicas (id, heartbeat) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat = "
          "excluded.heartbeat");
      q.bind(1, replica);
      q.bind(2, static_cast<int64_t>(millis(now)));
      q.exec();
    });
  }

  std::size_t live_replicas(Timestamp since, Timestamp forget_before) override {
    return guard("count the live replicas", [&] {
      SQLite::Statement& forget = prepared("DELETE FROM replicas WHERE heartbeat < ?");
      forget.bind(1, static_cast<int64_t>(millis(forget_before)));
      forget.exec();
      SQLite::Statement& q = prepared("SELECT COUNT(*) FROM replicas WHERE heartbeat >= ?");
      q.bind(1, static_cast<int64_t>(millis(since)));
      q.executeStep();
      return static_cast<std::size_t>(q.getColumn(0).getInt64());
    });
  }

  void leave(const std::string& replica) override {
    guard("remove replica " + replica, [&] {
      std::optional<SQLite::Transaction> own;
      if (!transaction_open()) own.emplace(db_, kWriter);
      for (const char* sql :
           {"DELETE FROM replicas WHERE id = ?", "UPDATE shard_leases SET owner = '', lease_until = 0 WHERE owner = ?",
            "DELETE FROM source_leases WHERE owner = ?"}) {
        SQLite::Statement& q = prepared(sql);
        q.bind(1, replica);
        q.exec();
      }
      if (own) own->commit();
    });
  }

  std::vector<ShardLease> shard_leases() const override {
    return guard("read the shard leases", [&] {
      SQLite::Statement& q = prepared("SELECT shard, owner, lease_until FROM shard_leases ORDER BY shard");
      std::vector<ShardLease> out;
      while (q.executeStep())
        out.push_back(
            ShardLease{q.getColumn(0).getInt(), q.getColumn(1).getString(), from_millis(q.getColumn(2).getInt64())});
      return out;
    });
  }

  bool take_shard(int shard, const std::string& replica, Timestamp now, Timestamp until) override {
    return guard("take shard " + std::to_string(shard), [&] {
      SQLite::Statement& q = prepared(
          "INSERT INTO shard_leases (shard, owner, lease_until) VALUES (?1, ?2, ?3) ON CONFLICT (shard) DO UPDATE "
          "SET owner = excluded.owner, lease_until = excluded.lease_until WHERE shard_leases.owner = excluded.owner "
          "OR shard_leases.owner = '' OR shard_leases.lease_until <= ?4");
      q.bind(1, shard);
      q.bind(2, replica);
      q.bind(3, static_cast<int64_t>(millis(until)));
      q.bind(4, static_cast<int64_t>(millis(now)));
      return q.exec() == 1;
    });
  }

  std::vector<int> take_shards(std::span<const int> shards, const std::string& replica, Timestamp now,
                               Timestamp until) override {
    return guard("take " + std::to_string(shards.size()) + " shards", [&] {
      // "WHERE true": an upsert from a SELECT needs it (https://sqlite.org/lang_upsert.html).
      SQLite::Statement& q = prepared(
          "INSERT INTO shard_leases (shard, owner, lease_until) SELECT value, ?2, ?3 FROM json_each(?1) WHERE true "
          "ON CONFLICT (shard) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until WHERE "
          "shard_leases.owner = excluded.owner OR shard_leases.owner = '' OR shard_leases.lease_until <= ?4 "
          "RETURNING shard");
      q.bind(1, nlohmann::json(std::vector<int>(shards.begin(), shards.end())).dump());
      q.bind(2, replica);
      q.bind(3, static_cast<int64_t>(millis(until)));
      q.bind(4, static_cast<int64_t>(millis(now)));
      std::vector<int> out;
      while (q.executeStep()) out.push_back(q.getColumn(0).getInt());
      std::sort(out.begin(), out.end());
      return out;
    });
  }

  std::vector<int> renew_shards(const std::string& replica, Timestamp until) override {
    return guard("renew the shard leases of " + replica, [&] {
      SQLite::Statement& q =
          prepared("UPDATE shard_leases SET lease_until = ? WHERE owner = ? AND owner != '' RETURNING shard");
      q.bind(1, static_cast<int64_t>(millis(until)));
      q.bind(2, replica);
      std::vector<int> out;
      while (q.executeStep()) out.push_back(q.getColumn(0).getInt());
      std::sort(out.begin(), out.end());
      return out;
    });
  }

  void release_shards(const std::string& replica, std::span<const int> shards) override {
    guard("release shards of " + replica, [&] {
      SQLite::Statement& q = prepared(
          "UPDATE shard_leases SET owner = '', lease_until = 0 WHERE owner = ?1 AND (?2 = '[]' OR shard IN "
          "(SELECT value FROM json_each(?2)))");
      q.bind(1, replica);
      q.bind(2, nlohmann::json(std::vector<int>(shards.begin(), shards.end())).dump());
      q.exec();
    });
  }

  bool take_source(const std::string& source, const std::string& replica, Timestamp now, Timestamp until) override {
    return guard("take the lease of source " + source, [&] {
      SQLite::Statement& q = prepared(
          "INSERT INTO source_leases (source, owner, lease_until) VALUES (?1, ?2, ?3) ON CONFLICT (source) DO "
          "UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until WHERE source_leases.owner = "
          "excluded.owner OR source_leases.lease_until <= ?4");
      q.bind(1, source);
      q.bind(2, replica);
      q.bind(3, static_cast<int64_t>(millis(until)));
      q.bind(4, static_cast<int64_t>(millis(now)));
      return q.exec() == 1;
    });
  }

  void release_source(const std::string& replica, const std::string& source) override {
    guard("release the source leases of " + replica, [&] {
      SQLite::Statement& q = prepared("DELETE FROM source_leases WHERE owner = ?1 AND (?2 = '' OR source = ?2)");
      q.bind(1, replica);
      q.bind(2, source);
      q.exec();
    });
  }

  void put_intake(int shard, const Observation& observation, Timestamp received_at) override {
    guard("put an observation of " + observation.ref.str() + " in the shared intake", [&] {
      SQLite::Statement& q = prepared("INSERT INTO intake (shard, observation, received_at) VALUES (?, ?, ?)");
      q.bind(1, shard);
      q.bind(2, to_json(observation).dump());
      q.bind(3, static_cast<int64_t>(millis(received_at)));
      q.exec();
    });
  }

  std::vector<IntakeEntry> claim_intake(std::span<const int> shards, std::size_t limit,
                                        std::vector<std::string>* unreadable) override {
    return guard("read the shared intake", [&] {
      // One writer at a time: what this connection reads, nobody else claims.
      SQLite::Statement& q = prepared(
          "SELECT id, shard, observation, received_at FROM intake WHERE shard IN (SELECT value FROM json_each(?)) "
          "ORDER BY id LIMIT ?");
      q.bind(1, nlohmann::json(std::vector<int>(shards.begin(), shards.end())).dump());
      q.bind(2, static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max())));
      std::vector<IntakeEntry> out;
      std::vector<long long> bad;
      while (q.executeStep()) {
        const long long id = q.getColumn(0).getInt64();
        std::string error;
        std::optional<Observation> observation;
        try {
          observation = observation_from_json(nlohmann::json::parse(q.getColumn(2).getString()), error);
        } catch (const nlohmann::json::exception& e) {
          error = e.what();
        }
        if (!observation) {
          bad.push_back(id);
          if (unreadable) unreadable->push_back("intake entry " + std::to_string(id) + ": " + error);
          continue;
        }
        out.push_back(
            IntakeEntry{id, q.getColumn(1).getInt(), std::move(*observation), from_millis(q.getColumn(3).getInt64())});
      }
      if (!bad.empty()) delete_intake(bad);
      return out;
    });
  }

  void delete_intake(std::span<const long long> ids) override {
    guard("delete " + std::to_string(ids.size()) + " entries of the shared intake", [&] {
      SQLite::Statement& q = prepared("DELETE FROM intake WHERE id IN (SELECT value FROM json_each(?))");
      q.bind(1, nlohmann::json(std::vector<long long>(ids.begin(), ids.end())).dump());
      q.exec();
    });
  }

  std::size_t intake_size() const override {
    return guard("count the shared intake", [&] {
      SQLite::Statement& q = prepared("SELECT COUNT(*) FROM intake");
      q.executeStep();
      return static_cast<std::size_t>(q.getColumn(0).getInt64());
    });
  }

  std::vector<int> intake_shards() const override {
    return guard("read the shards of the shared intake", [&] {
      SQLite::Statement& q = prepared(kIntakeShards);
      std::vector<int> out;
      while (q.executeStep()) out.push_back(q.getColumn(0).getInt());
      return out;
    });
  }

 private:
  // Must not outlive its store.
  class Tx final : public Transaction {
   public:
    explicit Tx(SqliteStore& store) : Transaction(store), store_(store), tx_(store.db_, kWriter) {}
    ~Tx() override { store_.read_in_transaction_.clear(); }  // tx_ rolls back unless committed

   private:
    void do_commit() override {
      store_.guard("commit", [&] { tx_.commit(); });
    }

    SqliteStore& store_;
    SQLite::Transaction tx_;
  };

  long long last_enqueued_ = 0;  // the outbox id enqueue() added last

  // The statement for `sql`, prepared once per store and reused: preparing
  // costs more than running most of these. It comes reset, its parameters
  // unbound (NULL); the outermost guard() resets it again when it ends, so
  // that no read stays open between calls. Never hold one across a call
  // that may use the same SQL.
  SQLite::Statement& prepared(const std::string& sql) const {
    auto& statement = statements_[sql];
    if (!statement) statement = std::make_unique<SQLite::Statement>(db_, sql);
    statement->tryReset();
    statement->clearBindings();
    in_use_.push_back(statement.get());
    return *statement;
  }

  // " [<path>: <errno text>]" when `e` came from the file system (a full
  // disk, a read-only file), so that operators see which file and why.
  std::string system_error(const SQLite::Exception& e) const {
    const int code = e.getErrorCode();
    if (code != SQLITE_FULL && code != SQLITE_IOERR && code != SQLITE_READONLY && code != SQLITE_CANTOPEN &&
        code != SQLITE_PERM)
      return "";
    int os_error = sqlite3_system_errno(db_.getHandle());
    if (code == SQLITE_FULL && os_error == 0) os_error = ENOSPC;  // SQLite keeps no errno for a short write
    return " [" + db_.getFilename() + (os_error ? ": " + std::generic_category().message(os_error) : std::string()) +
           "]";
  }

  // Runs `work`, turning SQLite's exceptions into StoreError naming `what`.
  // Refuses (std::logic_error) a call made on the store past its open
  // Transaction (Store::check_caller()).
  template <typename F>
  auto guard(const std::string& what, F&& work,
             const std::source_location& where = std::source_location::current()) const -> decltype(work()) {
    check_caller(what, where);
    struct Release {
      const SqliteStore& store;
      ~Release() {
        if (--store.depth_ > 0) return;
        for (SQLite::Statement* statement : store.in_use_) statement->tryReset();
        store.in_use_.clear();
      }
    };
    ++depth_;
    const Release release{*this};
    try {
      return work();
    } catch (const SQLite::Exception& e) {
      StoreError error("cannot " + what + ": " + e.what() + system_error(e));
      error.retryable = e.getErrorCode() == SQLITE_BUSY || e.getErrorCode() == SQLITE_LOCKED;
      throw error;
    } catch (const CorruptRow& e) {
      throw StoreError("cannot " + what + ": " + e.what());
    } catch (const nlohmann::json::exception& e) {
      throw StoreError("cannot " + what + ": invalid JSON: " + e.what());
    }
  }

  // Reads every row of `q` (columns kNotificationColumns). A row that cannot
  // be read is set aside: it goes to the dead letter with the reason as its
  // last error, so that it stops no reader (delivery, policy, the outbox
  // commands) again. With `flagged` it stays in the result with only id,
  // status, last_error and `unreadable` set; without, it is left out.
  std::vector<OutboxEntry> read_entries(SQLite::Statement& q, bool flagged) const {
    std::vector<OutboxEntry> out;
    std::vector<OutboxEntry> unreadable;
    while (q.executeStep()) {
      try {
        out.push_back(read_entry(q));
      } catch (const CorruptRow& e) {
        OutboxEntry entry;
        entry.id = q.getColumn(0).getInt64();
        entry.status = OutboxStatus::kDead;
        entry.unreadable = e.what();
        entry.last_error = set_aside_reason(e.what());
        unreadable.push_back(std::move(entry));
      }
    }
    for (auto& entry : unreadable) {
      SQLite::Statement aside(db_,
                              "UPDATE outbox SET status = 'dead', next_attempt_at = NULL, last_error = ?, "
                              "sending_since = NULL, lease_until = NULL WHERE id = ?");
      aside.bind(1, entry.last_error);
      aside.bind(2, static_cast<int64_t>(entry.id));
      aside.exec();
      if (flagged) out.push_back(std::move(entry));
    }
    if (flagged && !unreadable.empty())
      std::sort(out.begin(), out.end(), [](const OutboxEntry& a, const OutboxEntry& b) { return a.id < b.id; });
    return out;
  }

  // The first column of the one row `q` gives about `outbox_id`; throws
  // StoreError when there is none.
  int attempts_of(long long outbox_id) const {
    SQLite::Statement& q = prepared("SELECT attempts FROM outbox WHERE id = ?");
    q.bind(1, static_cast<int64_t>(outbox_id));
    if (!q.executeStep()) throw StoreError("no outbox entry " + std::to_string(outbox_id));
    const int value = q.getColumn(0).getInt();
    q.tryReset();
    return value;
  }

  OutboxEntry read_entry_by_id(long long outbox_id) {
    SQLite::Statement& q = prepared(std::string("SELECT ") + kNotificationColumns + " FROM outbox WHERE id = ?");
    q.bind(1, static_cast<int64_t>(outbox_id));
    if (!q.executeStep()) throw StoreError("no outbox entry " + std::to_string(outbox_id));
    return read_entry(q);
  }

  void insert_decision(long long outbox_id, Timestamp at, const std::string& decision, const std::string& reason) {
    SQLite::Statement& q =
        prepared("INSERT INTO outbox_decisions (outbox_id, at, decision, reason) VALUES (?, ?, ?, ?)");
    q.bind(1, static_cast<int64_t>(outbox_id));
    q.bind(2, static_cast<int64_t>(millis(at)));
    q.bind(3, decision);
    q.bind(4, reason);
    q.exec();
  }

  void insert_attempt(long long outbox_id, int number, Timestamp at, const char* outcome, const std::string& detail) {
    SQLite::Statement& q =
        prepared("INSERT INTO delivery_attempts (outbox_id, number, at, outcome, detail) VALUES (?, ?, ?, ?, ?)");
    q.bind(1, static_cast<int64_t>(outbox_id));
    q.bind(2, number);
    q.bind(3, static_cast<int64_t>(millis(at)));
    q.bind(4, outcome);
    q.bind(5, detail);
    q.exec();
  }

  void insert_contact(const Contact& c) {
    SQLite::Statement& q = prepared(
        "INSERT INTO contacts (customer, at, kind, rule, entity, channel, idempotency_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)");
    q.bind(1, c.customer);
    q.bind(2, static_cast<int64_t>(millis(c.at)));
    q.bind(3, std::string(to_string(c.kind)));
    q.bind(4, c.rule);
    q.bind(5, c.entity.str());
    q.bind(6, std::string(to_string(c.channel)));
    q.bind(7, c.idempotency_key);
    q.exec();
  }

  void migrate() {
    guard("migrate the database", [&] {
      db_.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
          "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')))");
      version_ = db_.execAndGet("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").getInt();
      const int known = latest_schema_version();
      if (version_ > known)
        throw StoreError("the database " + db_.getFilename() + " has schema version " + std::to_string(version_) +
                         ", newer than this tactd knows (" + std::to_string(known) +
                         "); use a newer tactd or another state file");
      for (const Migration& m : migrations()) {
        if (m.version <= version_) continue;
        SQLite::Transaction tx(db_, kWriter);
        if (*m.sql(Dialect::kSqlite)) db_.exec(m.sql(Dialect::kSqlite));
        SQLite::Statement record(db_, "INSERT INTO schema_migrations (version, description) VALUES (?, ?)");
        record.bind(1, m.version);
        record.bind(2, m.description);
        record.exec();
        tx.commit();
        version_ = m.version;
      }
    });
  }

  OwnedFolder folder_;  // declared before db_: removed after the database is closed
  mutable SQLite::Database db_;
  // Declared after db_: finalised before the database is closed.
  mutable std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> statements_;
  mutable std::vector<SQLite::Statement*> in_use_;  // by the guard() under way
  mutable int depth_ = 0;                           // guard() calls under way
  // The entities read within the open transaction, found or not: the
  // pipeline reads an observation's parent and customer several times
  // (the shortcut's bookkeeping, link(), the order's timers), and about a
  // quarter of a batch's reads are repeats. Only put_entity() and
  // touch_entity() write entities, and the transaction is the database's
  // only writer (BEGIN IMMEDIATE), so what is kept here stays true until
  // it ends (Tx's destructor empties it).
  static constexpr std::size_t kMaxReadInTransaction = 4096;
  struct RefHash {
    std::size_t operator()(const EntityRef& ref) const {
      return std::hash<std::string>{}(ref.id) ^ static_cast<std::size_t>(ref.type);
    }
  };
  mutable std::unordered_map<EntityRef, std::optional<Entity>, RefHash> read_in_transaction_;
  int version_ = 0;
};

}  // namespace

std::string_view to_string(ActionState state) {
  for (const auto& [s, name] : kActionStates)
    if (s == state) return name;
  return "none";
}

namespace {

std::unique_ptr<Store> open_store(const std::filesystem::path& path, std::filesystem::path owned_folder, Sync sync) {
  try {
    return std::make_unique<SqliteStore>(path, std::move(owned_folder), sync);
  } catch (const SQLite::Exception& e) {
    throw StoreError("cannot open the state database " + path.string() + ": " + e.what());
  }
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::filesystem::path& path, Sync sync) { return open_store(path, {}, sync); }

std::unique_ptr<Store> Store::open_temporary() {
  const std::filesystem::path parent = std::filesystem::temp_directory_path();
  std::string pattern = (parent / "tactd-state-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr)
    throw StoreError("cannot create a temporary folder for the state database in " + parent.string() + ": " +
                     std::generic_category().message(errno));
  const std::filesystem::path dir(pattern);
  return open_store(dir / "state.db", dir, Sync::kNormal);
}

}  // namespace tactd
