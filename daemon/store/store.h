// SQLite persistence: entity snapshots, contact history and the outbox.
//
// The schema is created and upgraded by numbered migrations recorded in the
// table `schema_migrations`; opening a database applies the missing ones in
// one transaction each. SQLite and SQLiteCpp stay behind this header.
//
// A Store is used from one thread (the event loop); it is not thread-safe.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/entity.h"
#include "model/notification.h"

namespace tactd {

// Thrown when a database cannot be opened or migrated (a start-up failure),
// or when a statement fails unexpectedly (a bug or a broken disk).
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// kOvertaken: not sent because the world moved on while it waited (the
// reason is kept); like kDropped it counts for no cap, cooldown or contact.
// kUnknown: an attempt was cut off (a crash, a stop whose grace ended) on a
// channel whose provider does not deduplicate on the idempotency key, so
// whether it reached the customer is unknown: it is not sent again until an
// operator resolves it (delivered, retry or drop). It counts like pending.
enum class OutboxStatus { kPending, kDelivered, kDead, kDropped, kOvertaken, kUnknown };
std::string_view to_string(OutboxStatus status);

// Where an entry's action (Notification::action) stands. kPending: still to
// be taken; the entry is not due for delivery (due_notifications(),
// next_notification()) until it is done or failed. kDone: its answer is in
// Notification::action_answer. kFailed: failed for good; the message goes
// without it.
enum class ActionState { kNone, kPending, kDone, kFailed };
std::string_view to_string(ActionState state);

struct OutboxEntry {
  long long id = 0;
  Notification notification;
  OutboxStatus status = OutboxStatus::kPending;
  int attempts = 0;
  std::optional<Timestamp> next_attempt;  // a retry's time; unset: notification.at
  std::string last_error;                 // the last failed attempt's answer
  // Set while an attempt is under way: when it was claimed (claim()). Found
  // set when no attempt is under way, the process died or stopped during
  // the send and the outcome is unknown (settle_interrupted()).
  std::optional<Timestamp> sending_since;
  ActionState action_state = ActionState::kNone;
  int action_attempts = 0;
  std::optional<Timestamp> action_next;  // a retry's time; unset: notification.at
  std::string action_detail;             // the last attempt's outcome, for people
  // Set when the row cannot be read (an unknown kind or channel, an event
  // that is not JSON): the row was set aside to the dead letter with this
  // reason, and only id, status and last_error hold.
  std::string unreadable;
};

// One try to deliver an outbox entry.
struct DeliveryAttempt {
  int number = 0;  // 1, 2, ...
  Timestamp at;
  // "delivered", "retry", "dead", or "interrupted" (cut off by a crash or
  // a stop; the detail says what became of the entry)
  std::string outcome;
  std::string detail;  // the provider's answer or the transport error
};

// What was decided about an outbox entry and why: "queued" (with why it
// waits, if it does), "re-rendered", "overtaken". Attempts are kept apart.
struct OutboxDecision {
  Timestamp at;
  std::string decision;
  std::string reason;
};

// A rule that fired for an entity whose linked data is not known yet (the
// order of a shipment, the customer of an order, the customer's address):
// it waits for `waiting_for` to be observed until `until`.
struct WaitingIntent {
  long long id = 0;
  std::string rule;
  EntityRef entity;
  std::string trigger;   // as the pipeline names the firing (part of the idempotency key)
  nlohmann::json event;  // the triggering change; null for timers
  EntityRef waiting_for;
  Timestamp since;
  Timestamp until;
  std::string reason;  // what is missing, for people
};

// A scheduled time at which a rule looks at an entity again (an `at` rule).
struct Timer {
  std::string rule;
  EntityRef entity;
  Timestamp due;
};

// A message a customer (or anyone) sent back: an SMS or an email reply.
struct Reply {
  long long id = 0;
  Timestamp at;  // when tactd received it
  Channel channel = Channel::kSms;
  std::string provider;                // "twilio", "messagebird", "json" (the generic webhooks)
  std::string provider_id;             // the provider's id of the message; empty: none given
  std::string from;                    // the sender's number or address, as given
  std::string to;                      // the number or address it was sent to
  std::optional<std::string> subject;  // email
  std::string text;
  bool stop = false;     // the text was a STOP word: the sender opted out of the channel
  std::string customer;  // the customer it came from; empty: not matched
  // The notification it answers (its idempotency key) and that notification's
  // entity; empty and nullopt when none was found.
  std::string notification;
  std::optional<EntityRef> entity;
  // How it was matched: "message-id" (In-Reply-To/References), "sender" (the
  // latest message sent to its sender), or "" (not matched).
  std::string matched_by;
  std::optional<Timestamp> forwarded_at;  // when support was told; unset: not yet
};

// What replies said about an entity (for a customer: all their replies).
struct RepliesAbout {
  std::size_t count = 0;  // replies, STOP included
  bool stop = false;      // one of them was a STOP
  std::optional<Timestamp> last;
};

// A customer's (or, unmatched, an address's) opt-out of one channel, from a
// STOP reply. Kept apart from the customer's snapshot: a source observing
// the customer again never undoes it.
struct OptOut {
  std::string customer;  // empty: the address only
  Channel channel = Channel::kSms;
  std::string address;  // address_key() of the number or email address
  Timestamp at;
  long long reply_id = 0;
};

// Automated messages about an entity held back until `until`: a person is
// talking with the customer about it.
struct Pause {
  Timestamp until;
  std::string reason;
};

// How far a commit is on disk when it returns ([tactd] sync).
// kFull: through power loss (the write-ahead log is synced on every commit),
// so that a 202, a file moved to done/ and a committed cursor hold.
// kNormal: through a killed process only; a power loss may roll back the
// last commits. Cheaper per commit.
enum class Sync { kFull, kNormal };

class Store {
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

  // A transaction that rolls back unless committed. Nesting is not allowed:
  // begin() while another Transaction is alive throws StoreError. A
  // Transaction must not outlive its Store.
  class Transaction {
   public:
    virtual ~Transaction() = default;
    virtual void commit() = 0;
  };
  virtual std::unique_ptr<Transaction> begin() = 0;

  // --- entities ---
  virtual std::optional<Entity> entity(const EntityRef& ref) const = 0;
  // Inserts or replaces the snapshot; records its parent (Entity::parent())
  // so that latest_child() and count_children() can find it. `first_seen` is
  // recorded when the entity is new (unset: its observed_at) and kept
  // afterwards.
  virtual void put_entity(const Entity& entity) = 0;
  // The snapshot was observed again, unchanged, at `observed_at`: only its
  // time moves (a re-observation; cheaper than rewriting the whole row).
  virtual void touch_entity(const EntityRef& ref, Timestamp observed_at) = 0;
  // Of the entities of `type` whose parent is `parent` (an order's
  // shipments), the one observed last (on a tie, the greatest id).
  virtual std::optional<Entity> latest_child(const EntityRef& parent, EntityType type) const = 0;
  // How many entities of `type` whose parent is `parent` have the text
  // `status` in fields.status (a customer's delivered orders). Kept as a
  // count, so its cost does not follow the number of children.
  virtual std::size_t count_children(const EntityRef& parent, EntityType type, const std::string& status) const = 0;
  // Up to `limit` entities of `type` with an id after `after_id`, in id
  // order: a page of all of them (a reload schedules a new rule's timers).
  virtual std::vector<Entity> entities(EntityType type, const std::string& after_id, std::size_t limit) const = 0;

  // --- outbox ---
  // Every reader of outbox rows sets a row it cannot read aside, to the dead
  // letter with the reason (OutboxEntry::unreadable): outbox() and
  // outbox_entry() return it flagged, the others leave it out.
  // Adds the notification as pending and records the decision "queued"
  // with `why` (empty when it goes out now). Returns false, changing
  // nothing, when a notification with the same idempotency key exists.
  virtual bool enqueue(const Notification& notification, const std::string& why) = 0;
  bool enqueue(const Notification& notification) { return enqueue(notification, {}); }
  // The outbox id of the last notification enqueue() added through this
  // Store (0 before the first).
  virtual long long last_enqueued() const = 0;
  // Changes when another connection (an operator's `tactd outbox ...`, a
  // script) committed to the database since the last call; this Store's
  // own commits leave it as it is (SQLite's PRAGMA data_version).
  virtual long long data_version() const = 0;
  virtual bool has_notification(const std::string& idempotency_key) const = 0;
  // Notifications for `customer` created at or after `since`, except
  // dropped ones, oldest first.
  virtual std::vector<Notification> notifications_since(const std::string& customer, Timestamp since) const = 0;
  // The latest due time of the customer's notifications that reached them
  // or are on their way (pending or delivered: not dead, dropped or
  // overtaken); one indexed lookup, however long the history.
  virtual std::optional<Timestamp> latest_notification_at(const std::string& customer) const = 0;
  // The newest notification of `rule` for `customer` (any status but
  // dropped), for cooldowns.
  virtual std::optional<Notification> last_notification(const std::string& rule, const std::string& customer) const = 0;
  virtual std::vector<OutboxEntry> outbox(std::optional<OutboxStatus> status = std::nullopt) const = 0;
  // The kinds of the notifications about `entity` (any status but
  // dropped), oldest first.
  virtual std::vector<Kind> kinds_about(const EntityRef& entity) const = 0;
  // Pending notifications about `entity`, oldest first.
  virtual std::vector<OutboxEntry> pending_about(const EntityRef& entity) const = 0;
  // Marks a pending, dead or unknown-outcome entry dropped: it will not be
  // sent, and no longer counts for caps and cooldowns. Returns false when
  // it was none of these.
  virtual bool drop(long long outbox_id) = 0;
  // Marks an entry delivered, records the attempt, and records it as
  // contact history, atomically: within the open Transaction when there is
  // one (so it commits or rolls back with it), else in a transaction of its
  // own. Throws StoreError for an unknown id.
  virtual void mark_delivered(long long outbox_id, Timestamp at, const std::string& detail = {}) = 0;
  // Records a failed attempt: the entry stays pending until `retry_at`, or,
  // without one, goes to the dead letter with `detail`. An entry dropped
  // meanwhile stays dropped. Atomic like mark_delivered; throws StoreError
  // for an unknown id.
  virtual void record_failure(long long outbox_id, Timestamp at, const std::string& detail,
                              std::optional<Timestamp> retry_at) = 0;
  // A pending entry the world has overtaken: it will not be sent; `reason`
  // is kept as its last error and as the decision "overtaken". Returns
  // false when it was not pending. Atomic like mark_delivered.
  virtual bool mark_overtaken(long long outbox_id, Timestamp at, const std::string& reason) = 0;
  // Replaces the recipient, subject, body, locale and time zone of an entry
  // re-rendered with current data; the idempotency key stays.
  virtual void update_message(long long outbox_id, const Notification& notification) = 0;
  virtual void record_decision(long long outbox_id, Timestamp at, const std::string& decision,
                               const std::string& reason) = 0;
  // The decisions about an entry, oldest first.
  virtual std::vector<OutboxDecision> decisions(long long outbox_id) const = 0;
  // An operator's retry: a dead, pending or unknown-outcome entry is due
  // again at `now`. Returns false when the entry is delivered, dropped,
  // overtaken or unknown.
  virtual bool retry(long long outbox_id, Timestamp now) = 0;
  // An operator's answer to an unknown outcome: the provider did deliver it
  // (its log says so). The entry becomes delivered and contact history, with
  // the decision "resolved" and `note`. Returns false, changing nothing,
  // when the entry's outcome is not unknown.
  virtual bool resolve_delivered(long long outbox_id, Timestamp at, const std::string& note) = 0;

  // --- attempts under way ---
  // Records, before sending, that attempts of these pending entries start
  // at `at`, all in one transaction (one commit for a delivery round): the
  // open Transaction when there is one, else one that begins as a writer.
  // mark_delivered() and record_failure() end the claim. A claimed entry is
  // not due (due_notifications(), next_notification()) until then.
  virtual void claim(const std::vector<long long>& outbox_ids, Timestamp at) = 0;
  // Entries claimed and never given a verdict: the process died or stopped
  // during their send. Oldest claim first.
  virtual std::vector<OutboxEntry> interrupted() const = 0;
  // Ends the claim of an interrupted entry, recording the attempt as
  // "interrupted" with `detail`: with `retry`, the entry is due again at
  // `at` (the same idempotency key goes out again); without, its outcome is
  // unknown (OutboxStatus::kUnknown) until an operator resolves it. Atomic
  // like mark_delivered. Returns false when the entry was not claimed.
  virtual bool settle_interrupted(long long outbox_id, Timestamp at, bool retry, const std::string& detail) = 0;
  virtual std::optional<OutboxEntry> outbox_entry(long long outbox_id) const = 0;
  // The entry's attempts, oldest first.
  virtual std::vector<DeliveryAttempt> attempts(long long outbox_id) const = 0;

  // --- actions taken before sending ---
  // Pending entries whose action is still to be taken and due at or before
  // `until` (their due time, or a retry's), earliest first, at most `limit`.
  virtual std::vector<OutboxEntry> due_actions(Timestamp until, std::size_t limit) const = 0;
  // The earliest such due time.
  virtual std::optional<Timestamp> next_action() const = 0;
  // Records an attempt of the entry's action at `at`: kDone with its
  // `answer` (a JSON object), kPending to try again at `retry_at`, or
  // kFailed (the message goes without it). The decision "action" with
  // `detail` is recorded with it. Atomic like mark_delivered. Returns false,
  // changing nothing, when the entry's action was not pending any more.
  virtual bool record_action(long long outbox_id, Timestamp at, ActionState state, const nlohmann::json& answer,
                             std::optional<Timestamp> retry_at, const std::string& detail) = 0;

  // --- timers ---
  // Schedules the rule's timer for the entity at `timer.due`, replacing an
  // earlier schedule. A timer that already fired for this same due time
  // stays fired: each schedule fires at most once.
  virtual void schedule_timer(const Timer& timer) = 0;
  virtual void cancel_timer(const std::string& rule, const EntityRef& entity) = 0;
  // Unfired timers due at or before `until`, earliest first, at most `limit`.
  // Indexed by due time: the cost follows the number of due timers.
  virtual std::vector<Timer> due_timers(Timestamp until, size_t limit) const = 0;
  // The earliest unfired timer's due time.
  virtual std::optional<Timestamp> next_timer() const = 0;
  virtual void mark_timer_fired(const Timer& timer) = 0;
  // Removes every timer of `rule` (a rule removed by a reload); returns how
  // many were still to fire.
  virtual std::size_t cancel_timers(const std::string& rule) = 0;
  // How many timers are still to fire.
  virtual std::size_t pending_timers() const = 0;

  // Pending notifications due (or due for a retry) at or before `until`,
  // earliest first: at most `limit`, and only `channel`'s when given.
  virtual std::vector<OutboxEntry> due_notifications(Timestamp until, std::optional<Channel> channel = std::nullopt,
                                                     std::size_t limit = kNoLimit) const = 0;
  static constexpr std::size_t kNoLimit = static_cast<std::size_t>(-1);
  // The earliest due (or retry) time of a pending notification.
  virtual std::optional<Timestamp> next_notification() const = 0;
  // How many notifications are pending, and the earliest due time among
  // those already due at `now` (for the age of the oldest waiting entry).
  struct OutboxDepth {
    std::size_t pending = 0;
    std::optional<Timestamp> oldest_due;
    std::size_t unknown = 0;  // entries whose outcome an operator must resolve
  };
  virtual OutboxDepth outbox_depth(Timestamp now) const = 0;

  // --- intents waiting for linked data ---
  // Adds the intent, or, for the same rule, entity and trigger, updates what
  // it waits for and why (its `since` and `until` stay).
  virtual void add_waiting(const WaitingIntent& intent) = 0;
  // Intents waiting for `ref`, oldest first.
  virtual std::vector<WaitingIntent> waiting_for(const EntityRef& ref) const = 0;
  // Intents whose wait ended at or before `now`, oldest first, at most `limit`.
  virtual std::vector<WaitingIntent> expired_waiting(Timestamp now, std::size_t limit) const = 0;
  virtual std::optional<Timestamp> next_waiting_expiry() const = 0;
  virtual void remove_waiting(long long id) = 0;

  // --- source cursors ---
  // Where a source left off (an updated_at value, a page token), or nullopt
  // before its first batch. Set it in the transaction that commits the
  // batch it belongs to, so that data and cursor never disagree.
  virtual std::optional<std::string> cursor(const std::string& source) const = 0;
  virtual void set_cursor(const std::string& source, const std::string& value) = 0;

  // --- replies, opt-outs and pauses ---
  // Records the reply and returns its id; returns 0, recording nothing, when
  // one from the same provider with the same non-empty provider_id exists
  // (the provider sent it again).
  virtual long long add_reply(const Reply& reply) = 0;
  // The customer's replies, oldest first.
  virtual std::vector<Reply> replies(const std::string& customer) const = 0;
  // Replies not forwarded yet, oldest first, at most `limit`.
  virtual std::vector<Reply> unforwarded_replies(std::size_t limit) const = 0;
  virtual void mark_forwarded(long long reply_id, Timestamp at) = 0;
  // The replies about `entity` (matched to a notification about it); for a
  // customer, every reply of that customer. One indexed lookup.
  virtual RepliesAbout replies_about(const EntityRef& entity) const = 0;
  // Records the opt-out; returns false, changing nothing, when the customer
  // (or, without one, the address) had already opted out of the channel.
  virtual bool add_opt_out(const OptOut& opt_out) = 0;
  // The opt-out of `channel` by `customer` or by `address` (address_key()),
  // either of which may be empty, or nullopt.
  virtual std::optional<OptOut> opt_out(const std::string& customer, Channel channel,
                                        const std::string& address) const = 0;
  // Holds automated messages about `entity` back until `until` (a later
  // pause than one in force replaces it; an earlier one changes nothing).
  virtual void pause(const EntityRef& entity, Timestamp until, const std::string& reason) = 0;
  // The pause of `entity` in force at `now`, or nullopt.
  virtual std::optional<Pause> paused(const EntityRef& entity, Timestamp now) const = 0;
  // The notification whose email carried the Message-ID with local part
  // `message_ref`: the first 32 hex digits of SHA-256 of its idempotency key
  // (channels/mime.h message_id()).
  virtual std::optional<Notification> notification_by_message_ref(const std::string& message_ref) const = 0;
  // The latest notification on `channel` to `address` (address_key()) that
  // was delivered or is on its way, or nullopt.
  virtual std::optional<Notification> latest_notification_to(Channel channel, const std::string& address) const = 0;
  // A pending entry waits until `until` (a pause): the decision "held back"
  // with `reason` is recorded at `now`. Returns false when it was not pending.
  virtual bool postpone(long long outbox_id, Timestamp now, Timestamp until, const std::string& reason) = 0;

  // --- contact history ---
  virtual void record_contact(const Contact& contact) = 0;
  // The customer's contacts, oldest first.
  virtual std::vector<Contact> contacts(const std::string& customer) const = 0;
};

}  // namespace tactd
