// The state: entity snapshots, the outbox, timers, source cursors and
// contact history, kept in SQLite.
//
// The schema is created and upgraded by numbered migrations recorded in the
// table `schema_migrations`; opening a database applies the missing ones in
// one transaction each. SQLite and SQLiteCpp stay behind this header.
//
// A Store is used from one thread (the event loop); it is not thread-safe.
//
// Transactions are explicit: Store::begin() gives a Store::Transaction, and
// what belongs to it is called through it. A call on the Store itself runs
// in a transaction of its own, and is refused while a Transaction is open
// (std::logic_error), so that no call silently joins a transaction its
// caller does not know of.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

#include "store/cluster_store.h"
#include "store/contact_store.h"
#include "store/cursor_store.h"
#include "store/entity_store.h"
#include "store/outbox_store.h"
#include "store/store_error.h"
#include "store/timer_store.h"

namespace tactd {

// How far a commit is on disk when it returns ([tactd] sync).
// kFull: through power loss (the write-ahead log is synced on every commit),
// so that a 202, a file moved to done/ and a committed cursor hold.
// kNormal: through a killed process only; a power loss may roll back the
// last commits. Cheaper per commit.
enum class Sync { kFull, kNormal };

class FiberScheduler;  // store/state_runner.h

// Every role at once: what a Store and a Store::Transaction both answer,
// for code that runs within a transaction or without one (the timers of an
// entity read and set alike). Destroyed as a Store or a Transaction.
class StoreRoles : public EntityStore,
                   public OutboxStore,
                   public TimerStore,
                   public WaitingStore,
                   public CursorStore,
                   public ContactStore,
                   public ClusterStore {
 protected:
  ~StoreRoles() = default;
};

// The whole store: each role (entity snapshots, the outbox, timers and
// waiting intents, source cursors, contact history) is an interface of its
// own, and a component that needs one role takes only that one (the
// replicas' shards, leases and shared intake: ClusterStore). What is
// here spans them all: opening, durability, the schema and transactions.
class Store : public StoreRoles {
 public:
  virtual ~Store() = default;

  // Opens (creating if needed) the database at `path` in WAL mode and
  // migrates it. A new database is readable by its owner only (0600; its
  // -wal and -shm files take the same mode). Throws StoreError.
  static std::unique_ptr<Store> open(const std::filesystem::path& path, Sync sync = Sync::kFull);
  // A private database in a new temporary file, removed when the Store is
  // destroyed (used by `simulate` and tests); kNormal, as nothing of it
  // outlives the process.
  static std::unique_ptr<Store> open_temporary();

  // The durability in force, as the database connection reports it.
  virtual Sync sync() const = 0;

  // The highest migration applied.
  virtual int schema_version() const = 0;

  // Opens a transaction (Transaction, below): what is called through it is
  // done within it. Nesting is not allowed: begin() while another
  // Transaction is open throws StoreError.
  class Transaction;
  virtual std::unique_ptr<Transaction> begin() = 0;

  // Changes when another connection (an operator's `tactd outbox ...`, a
  // script) committed to the database since the last call; this Store's
  // own commits leave it as it is (SQLite's PRAGMA data_version). No role
  // call: it may be made on the Store while a Transaction is open.
  virtual long long data_version() const = 0;

  // What another process committed that this one should act on soon.
  enum class Change {
    kOutbox,  // an outbox entry was added, or made pending again (a retry, a replica's cut-off send)
    kIntake,  // observations were put in the shared intake for a shard's owner
  };
  // Calls `changed` on the loop each time a change is committed, by any
  // process on the database, this one included, so that a replica wakes
  // at once instead of at its next look. A store that cannot tell (SQLite,
  // whose readers look on their own schedule) never calls it. Call once,
  // on the loop, before it runs; `changed` must not block.
  virtual void watch(std::function<void(Change)> changed) { (void)changed; }

  // The fibers its calls must run on (StateRunner): a store whose calls
  // wait on the network suspends the calling fiber instead of the loop.
  // nullptr (the default, SQLite): call it directly.
  virtual FiberScheduler* fibers() { return nullptr; }

  // How many times a statement this Store keeps prepared had to be
  // prepared again (SQLite does so when a bound value may change its plan,
  // such as a value tested against a partial index's condition). Should
  // stay 0: a statement prepared at every call costs more than its run.
  // For tests and benchmarks; 0 for a store that cannot tell.
  virtual long long statements_prepared_again() const { return 0; }

 protected:
  // Whether a Transaction is open (begun, neither committed nor destroyed).
  bool transaction_open() const { return open_ != nullptr; }
  // Whether the call under way came through the open Transaction.
  bool through_transaction() const { return through_; }
  // For the backend's wrapper around each of its calls (`what` says what it
  // does, `where` is the call's own location): throws std::logic_error naming
  // the call when a Transaction is open and the call was not made through
  // it. A programming error: the call would have joined a transaction its
  // caller does not know of.
  void check_caller(const std::string& what, const std::source_location& where) const {
    if (open_ != nullptr && !through_) [[unlikely]]
      refuse_call(what, where);
  }
  // Lets the store's own calls that are no role call (data_version()) pass
  // check_caller() while it lives, within the open Transaction if any.
  class AnyCaller {
   public:
    explicit AnyCaller(const Store& store) : store_(store), was_(store.through_) { store_.through_ = true; }
    ~AnyCaller() { store_.through_ = was_; }
    AnyCaller(const AnyCaller&) = delete;
    AnyCaller& operator=(const AnyCaller&) = delete;

   private:
    const Store& store_;
    bool was_;
  };

 private:
  [[noreturn]] static void refuse_call(const std::string& what, const std::source_location& where);

  const Transaction* open_ = nullptr;  // the open Transaction, if any
  mutable bool through_ = false;       // the call under way came through it (or AnyCaller)
};

// A transaction on a Store, which it must not outlive: each role call made
// through it runs within it, and it rolls back unless committed. While it is
// open, role calls made on the Store itself are refused (std::logic_error),
// so that what belongs to the transaction is seen at each call site; a call
// on the Store with none open runs in a transaction of its own. Each call
// costs one forwarding to the Store's own, no allocation. The backends
// derive from it to BEGIN (constructor), COMMIT (do_commit()) and ROLL BACK
// (destructor).
class Store::Transaction : public StoreRoles {
 public:
  // Rolls back when not committed; the Store takes calls again.
  virtual ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // Commits; throws StoreError. The transaction has then ended: calls
  // through it throw std::logic_error, the Store takes calls again.
  void commit();

  // The roles, within the transaction (their headers say what each does).
  // Once the transaction has ended, each throws std::logic_error.
  // EntityStore
  std::optional<Entity> entity(const EntityRef& ref) const final;
  void put_entity(const Entity& entity) final;
  void touch_entity(const Entity& entity, Timestamp observed_at) final;
  std::optional<Entity> latest_child(const EntityRef& parent, EntityType type) const final;
  std::size_t count_children(const EntityRef& parent, EntityType type, const std::string& status) const final;
  std::vector<Entity> entities(EntityType type, const std::string& after_id, std::size_t limit) const final;
  std::vector<Entity> customer_entities(const std::string& customer, std::size_t limit) const final;
  std::vector<std::string> customers_by_contact(const std::string& contact, std::size_t limit) const final;

  // OutboxStore
  using OutboxStore::enqueue;
  bool enqueue(const Notification& notification, const std::string& why) final;
  long long last_enqueued() const final;
  bool has_notification(const std::string& idempotency_key) const final;
  std::vector<Notification> notifications_since(const std::string& customer, Timestamp since) const final;
  std::optional<Timestamp> latest_notification_at(const std::string& customer) const final;
  std::optional<Notification> last_notification(const std::string& rule, const std::string& customer) const final;
  std::vector<OutboxEntry> outbox(std::optional<OutboxStatus> status = std::nullopt) const final;
  std::vector<Kind> kinds_about(const EntityRef& entity) const final;
  std::vector<OutboxEntry> pending_about(const EntityRef& entity) const final;
  bool drop(long long outbox_id) final;
  void mark_delivered(long long outbox_id, Timestamp at, const std::string& detail = {}) final;
  void record_failure(long long outbox_id, Timestamp at, const std::string& detail,
                      std::optional<Timestamp> retry_at) final;
  bool mark_overtaken(long long outbox_id, Timestamp at, const std::string& reason) final;
  void update_message(long long outbox_id, const Notification& notification) final;
  void record_decision(long long outbox_id, Timestamp at, const std::string& decision, const std::string& reason) final;
  std::vector<OutboxDecision> decisions(long long outbox_id) const final;
  bool retry(long long outbox_id, Timestamp now) final;
  bool resolve_delivered(long long outbox_id, Timestamp at, const std::string& note) final;
  std::vector<OutboxEntry> claim_due_notifications(Channel channel, std::size_t limit, Timestamp now,
                                                   Duration lease) final;
  void claim(const std::vector<long long>& outbox_ids, Timestamp at) final;
  std::vector<OutboxEntry> interrupted() const final;
  bool settle_interrupted(long long outbox_id, Timestamp at, bool retry, const std::string& detail) final;
  std::optional<OutboxEntry> outbox_entry(long long outbox_id) const final;
  std::vector<DeliveryAttempt> attempts(long long outbox_id) const final;
  std::vector<OutboxEntry> due_actions(Timestamp until, std::size_t limit) const final;
  std::optional<Timestamp> next_action() const final;
  bool record_action(long long outbox_id, Timestamp at, ActionState state, const nlohmann::json& answer,
                     std::optional<Timestamp> retry_at, const std::string& detail) final;
  std::vector<OutboxEntry> due_notifications(Timestamp until, std::optional<Channel> channel = std::nullopt,
                                             std::size_t limit = kNoLimit) const final;
  std::optional<Timestamp> next_notification() const final;
  OutboxDepth outbox_depth(Timestamp now) const final;
  std::optional<Notification> notification_by_message_ref(const std::string& message_ref) const final;
  std::optional<Notification> latest_notification_to(Channel channel, const std::string& address) const final;
  bool postpone(long long outbox_id, Timestamp now, Timestamp until, const std::string& reason) final;
  std::vector<OutboxEntry> customer_outbox(const std::string& customer, std::size_t limit) const final;
  void record_not_made(const NotMade& not_made) final;
  std::vector<NotMade> customer_not_made(const std::string& customer, std::size_t limit) const final;
  std::vector<NotMadeCount> not_made_counts(Timestamp since) const final;
  std::map<OutboxStatus, std::size_t> outbox_counts() const final;
  std::vector<OutboxEntry> latest_outbox(OutboxStatus status, std::size_t limit) const final;
  std::vector<OutboxActivity> outbox_activity(Timestamp since, std::size_t limit) const final;
  std::vector<RuleDecision> decisions_since(Timestamp since, std::size_t limit) const final;

  // TimerStore
  void schedule_timer(const Timer& timer) final;
  void cancel_timer(const std::string& rule, const EntityRef& entity) final;
  std::vector<Timer> due_timers(Timestamp until, size_t limit) const final;
  std::optional<Timestamp> next_timer() const final;
  bool mark_timer_fired(const Timer& timer) final;
  CancelledTimers cancel_timers(const std::string& rule, std::size_t limit) final;
  std::size_t pending_timers() const final;

  // WaitingStore
  void add_waiting(const WaitingIntent& intent) final;
  std::vector<WaitingIntent> waiting_for(const EntityRef& ref) const final;
  std::vector<WaitingIntent> expired_waiting(Timestamp now, std::size_t limit) const final;
  std::optional<Timestamp> next_waiting_expiry() const final;
  void remove_waiting(long long id) final;

  // CursorStore
  std::optional<std::string> cursor(const std::string& source) const final;
  void set_cursor(const std::string& source, const std::string& value) final;

  // ContactStore
  void record_contact(const Contact& contact) final;
  std::vector<Contact> contacts(const std::string& customer) const final;
  long long add_reply(const Reply& reply) final;
  std::vector<Reply> replies(const std::string& customer) const final;
  std::vector<Reply> unforwarded_replies(std::size_t limit) const final;
  void mark_forwarded(long long reply_id, Timestamp at) final;
  RepliesAbout replies_about(const EntityRef& entity) const final;
  bool add_opt_out(const OptOut& opt_out) final;
  std::optional<OptOut> opt_out(const std::string& customer, Channel channel, const std::string& address) const final;
  bool end_opt_out(const std::string& customer, Channel channel, const std::string& address, Timestamp at,
                   long long reply_id) final;
  void pause(const EntityRef& entity, Timestamp until, const std::string& reason) final;
  std::optional<Pause> paused(const EntityRef& entity, Timestamp now) const final;
  std::vector<Reply> customer_replies(const std::string& customer, std::size_t limit) const final;
  std::vector<OptOut> customer_opt_outs(const std::string& customer) const final;

  // ClusterStore
  void heartbeat(const std::string& replica, Timestamp now) final;
  std::size_t live_replicas(Timestamp since, Timestamp forget_before) final;
  void leave(const std::string& replica) final;
  std::vector<ShardLease> shard_leases() const final;
  bool take_shard(int shard, const std::string& replica, Timestamp now, Timestamp until) final;
  std::vector<int> take_shards(std::span<const int> shards, const std::string& replica, Timestamp now,
                               Timestamp until) final;
  std::vector<int> renew_shards(const std::string& replica, Timestamp until) final;
  void release_shards(const std::string& replica, std::span<const int> shards) final;
  bool take_source(const std::string& source, const std::string& replica, Timestamp now, Timestamp until) final;
  void release_source(const std::string& replica, const std::string& source) final;
  void put_intake(int shard, const Observation& observation, Timestamp received_at) final;
  std::vector<IntakeEntry> claim_intake(std::span<const int> shards, std::size_t limit,
                                        std::vector<std::string>* unreadable = nullptr) final;
  void delete_intake(std::span<const long long> ids) final;
  std::size_t intake_size() const final;
  std::vector<int> intake_shards() const final;

 protected:
  // Opens it on `store`; throws StoreError when another is open there.
  explicit Transaction(Store& store);
  // The backend's COMMIT; throws StoreError.
  virtual void do_commit() = 0;

 private:
  class Through;

  Store& store_;
};

}  // namespace tactd
