// The outbox role of the store: every notification decided, its status,
// its attempts and the decisions about it; what is due and what is under way.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/notification.h"

namespace tactd {

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
  // Set while an attempt is under way: when it was claimed
  // (claim_due_notifications(), claim()). Found set when no attempt is under
  // way, the process died or stopped during the send and the outcome is
  // unknown (settle_interrupted()).
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

// A message a rule decided that was not made: held back by the policy
// (cooldown, opt-out) or by a pending message that supersedes it, or
// impossible (no customer, no channel, too short a notice, a field the
// message cannot go without, a template that failed). A duplicate of a
// message already in the outbox is not one: its outbox row is its record.
struct NotMade {
  Timestamp at;
  std::string rule;
  std::string customer;  // empty: the entity names none
  EntityRef entity;
  std::string code;    // the fixed word of the metrics: "cooldown", "opt_out", "no_channel", ...
  std::string reason;  // for people
};

// How many messages of `rule` were not made for the reason `code`.
struct NotMadeCount {
  std::string rule;
  std::string code;
  std::size_t count = 0;
};

// Implementations throw StoreError (store_error.h). Through a
// Store::Transaction, each call runs within it; on the Store, in a
// transaction of its own (refused, std::logic_error, while a Transaction is
// open: store.h).
class OutboxStore {
 public:
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
  // contact history, atomically: through a Transaction, within it (so it
  // commits or rolls back with it); on the Store, in a transaction of its
  // own. Throws StoreError for an unknown id.
  virtual void mark_delivered(long long outbox_id, Timestamp at, const std::string& detail = {}) = 0;
  // Records a failed attempt: the entry stays pending until `retry_at`, or,
  // without one, goes to the dead letter with `detail`. An entry dropped
  // meanwhile stays dropped (its claim ends all the same: a restart finds
  // nothing to settle). Atomic like mark_delivered; throws StoreError
  // for an unknown id.
  virtual void record_failure(long long outbox_id, Timestamp at, const std::string& detail,
                              std::optional<Timestamp> retry_at) = 0;
  // A pending entry the world has overtaken: it will not be sent; `reason`
  // is kept as its last error and as the decision "overtaken". Ends its
  // claim, if any (a release check overtakes what it claimed; an attempt
  // still under way records its verdict all the same). Returns false when
  // it was not pending. Atomic like mark_delivered.
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
  // Claims up to `limit` due pending entries of `channel` (due or retry time at or before `now`,
  // not claimed, or claimed under a lease that ended before `now`), earliest first, until
  // now + `lease`, in one statement; returns them claimed.
  // (Entries whose action is still pending are not due.) A claim is made
  // before an attempt's request leaves; mark_delivered(), record_failure(),
  // mark_overtaken(), postpone() and settle_interrupted() end it. The lease
  // bounds how long a claim keeps others from the entry: one whose owner
  // is gone (a crash; another replica) is due again once it ends, and sent
  // again with the same idempotency key (the at-least-once window); an
  // attempt that outlives its lease still records its verdict. A lease
  // whose end is `now` itself counts as ended. Throws StoreError.
  virtual std::vector<OutboxEntry> claim_due_notifications(Channel channel, std::size_t limit, Timestamp now,
                                                           Duration lease) = 0;
  // Records, before sending, that attempts of these pending entries start
  // at `at`, all in one transaction: the Transaction it is called
  // through, else one of its own that begins as a writer. A claim without a lease: it
  // holds until its verdict or settle_interrupted(). A claimed entry is not
  // due (due_notifications(), next_notification()) until then.
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

  // Pending notifications due (or due for a retry) at or before `until`,
  // earliest first: at most `limit`, and only `channel`'s when given.
  virtual std::vector<OutboxEntry> due_notifications(Timestamp until, std::optional<Channel> channel = std::nullopt,
                                                     std::size_t limit = kNoLimit) const = 0;
  static constexpr std::size_t kNoLimit = static_cast<std::size_t>(-1);
  // The earliest due (or retry) time of a pending notification.
  virtual std::optional<Timestamp> next_notification() const = 0;
  // How many notifications are pending, and, when one is already due at
  // `now`, the earliest time a pending one became due for its next attempt
  // (its due time, or its retry's): how long the entry that has waited
  // longest for its turn has waited. A retry's wait starts at its retry
  // time, so that an entry in its backoff counts as waiting from then.
  struct OutboxDepth {
    std::size_t pending = 0;
    std::optional<Timestamp> oldest_due;
    std::size_t unknown = 0;  // entries whose outcome an operator must resolve
  };
  virtual OutboxDepth outbox_depth(Timestamp now) const = 0;

  // The notification whose email carried the Message-ID with local part
  // `message_ref`: the first 32 hex digits of SHA-256 of its idempotency key
  // (channels/mime.h message_id()).
  virtual std::optional<Notification> notification_by_message_ref(const std::string& message_ref) const = 0;
  // The latest notification on `channel` to `address` (address_key()) that
  // was delivered or is on its way, or nullopt.
  virtual std::optional<Notification> latest_notification_to(Channel channel, const std::string& address) const = 0;
  // A pending entry waits until `until` (a pause), and so does its action
  // when still to be taken: the decision "held back" with `reason` is
  // recorded at `now`; its claim, if any, ends. Returns false when it was
  // not pending.
  virtual bool postpone(long long outbox_id, Timestamp now, Timestamp until, const std::string& reason) = 0;

  // The customer's outbox entries in every status, the latest due first, at
  // most `limit` through an index on the customer; unreadable rows are set
  // aside and returned flagged, as outbox() does.
  virtual std::vector<OutboxEntry> customer_outbox(const std::string& customer, std::size_t limit) const = 0;

  // --- messages decided but not made ---
  // Records it. Kept for
  // kNotMadeRetention: each record removes at most two records older than
  // that, so the record never grows beyond what that time brings.
  virtual void record_not_made(const NotMade& not_made) = 0;
  static constexpr Duration kNotMadeRetention = std::chrono::hours(24 * 90);
  // The customer's, the newest first, at most `limit` through an index on
  // the customer.
  virtual std::vector<NotMade> customer_not_made(const std::string& customer, std::size_t limit) const = 0;
  // Those recorded at or after `since`, counted by rule and code (sorted so).
  virtual std::vector<NotMadeCount> not_made_counts(Timestamp since) const = 0;

  // --- the operators' console ---
  // How many entries have each status (statuses with none are left out):
  // one pass over the status index.
  virtual std::map<OutboxStatus, std::size_t> outbox_counts() const = 0;
  // The newest (highest id) entries with `status`, newest first, at most
  // `limit`, through the status index; unreadable rows are set aside and
  // returned flagged, as outbox() does.
  virtual std::vector<OutboxEntry> latest_outbox(OutboxStatus status, std::size_t limit) const = 0;
  // One decided notification, in brief, for activity reports.
  struct OutboxActivity {
    long long id = 0;
    std::string rule;
    Kind kind = Kind::kApology;
    OutboxStatus status = OutboxStatus::kPending;
    Timestamp created;  // when it was decided (tactd's clock)
  };
  // The notifications decided at or after `since`, newest first: only
  // among the newest `limit` rows (ids follow decision time), so that the
  // cost follows `limit`, not the history. Rows whose kind or status
  // cannot be read are left out.
  virtual std::vector<OutboxActivity> outbox_activity(Timestamp since, std::size_t limit) const = 0;
  // A decision recorded at or after `since` about a notification of `rule`.
  struct RuleDecision {
    std::string rule;
    Timestamp at;
    std::string decision;  // "queued", "held back", "dropped", ...
    std::string reason;
  };
  // The decisions recorded at or after `since`, newest first, only among
  // the newest `limit` decisions (ids follow time), like outbox_activity().
  virtual std::vector<RuleDecision> decisions_since(Timestamp since, std::size_t limit) const = 0;

 protected:
  ~OutboxStore() = default;
};

}  // namespace tactd
