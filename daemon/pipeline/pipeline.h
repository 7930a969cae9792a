// The pipeline of DESIGN.md, in-process: observation -> state diff ->
// events -> rules -> intents -> policy -> render -> outbox.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster/cluster.h"
#include "config/config.h"
#include "model/clock.h"
#include "model/diagnostic.h"
#include "model/entity.h"
#include "model/notification.h"
#include "pipeline/snapshot.h"
#include "render/render.h"
#include "rules/rule_set.h"
#include "sources/source.h"
#include "store/store.h"

namespace tactd {

// Outbox entries whose rule starts with this are tactd's own (an opt-out's
// confirmation): released as they are, whatever rules, opt-outs and pauses say.
inline constexpr std::string_view kOwnRulePrefix = "tactd:";

struct Linked;  // an entity with the entities it links to; private (linked.h)

// What applying one observation led to.
struct Outcome {
  std::vector<Event> events;
  std::vector<Notification> notifications;  // enqueued in the outbox
  // `code` is a short, fixed word for metrics ("opt_out", "cooldown",
  // "duplicate", "superseded", ...); `reason` says it for people.
  struct HeldBack {
    std::string rule;
    EntityRef entity;
    std::string code;
    std::string reason;
  };
  std::vector<HeldBack> held_back;  // deliberately not sent (once, cooldown, opt-out, superseded)
  std::vector<HeldBack> deferred;   // enqueued to go out later ("quiet_hours", "daily_cap")
  // Could not be sent: unknown or unreachable customer ("unknown_customer",
  // "no_channel", "no_customer"), too short a notice ("short_notice"), a
  // field the rule requires missing ("missing_field"), a render failure
  // ("render_failed"), a timer found too late ("timer_late").
  struct Problem {
    std::string rule;
    std::string code;
    std::string text;  // "order/A-1: rule 'x': what", for operators
  };
  std::vector<Problem> problems;
  // Observations older than the known snapshot of their entity (DESIGN.md
  // invariant 7): not applied, no events.
  struct Stale {
    EntityRef entity;
    Timestamp observed_at;  // the stale observation's
    Timestamp known;        // the stored snapshot's
  };
  std::vector<Stale> stale;
  // Observations of customers in shards another replica owns, committed to
  // the shared intake for it instead of applied here (set_cluster()), and
  // of this replica's own shards while earlier ones wait there.
  std::size_t forwarded = 0;
  // Entries of the shared intake applied here (apply_intake()).
  std::size_t from_intake = 0;
  // Due timers left to the replica that owns their customer's shard.
  std::size_t skipped_timers = 0;
};

class Pipeline {
 public:
  // `store` and `clock` must outlive the Pipeline. Call from one thread.
  Pipeline(Snapshot snapshot, Store& store, const Clock& clock);

  // The fibers its store's calls must run on (Store::fibers(), StateRunner).
  FiberScheduler* fibers() const { return store_.fibers(); }

  // Applies one observation at the clock's current time: stores the merged
  // snapshot (unless it is older than the known one: see Outcome::stale;
  // of two with the same observed_at the later applied wins), diffs it, evaluates the rules the events trigger, applies
  // policy, renders, and enqueues -- all in one transaction.
  Outcome apply(const Observation& observation);
  // Applies several observations in order, all in one transaction with the
  // source's new cursor when given: a spool file, a page of rows or a push
  // request is committed whole or not at all (DESIGN.md invariant 2).
  Outcome apply(std::span<const Observation> observations, const SourceCursor* cursor = nullptr);

  // Splits the work with other replicas (docs/scale-out.md): from now on an
  // observation whose customer is in a shard `cluster` does not own goes to
  // the shared intake, in the same transaction (with the source's cursor),
  // and timers of such customers are left to their owner. Without a
  // cluster (the default) everything is applied here. `cluster` must
  // outlive the Pipeline.
  void set_cluster(const Cluster* cluster) { cluster_ = cluster; }
  // The key whose shard (shard_of()) an observation belongs to: its
  // customer -- the entity itself for a customer, else `fields.customer`,
  // else the stored snapshot's customer, else for a shipment the customer
  // of its order (`fields.order`, or the stored parent) -- or, when no
  // customer can be found, the linked entity's own reference ("order/A-1"
  // for a shipment of an unknown order) or the entity's own ("payment/P-1").
  std::string shard_key(const EntityRef& ref, const nlohmann::json& fields) const {
    return shard_key(store_, ref, fields);
  }
  // The same, reading the stored snapshots through `store` (an open Transaction).
  std::string shard_key(const EntityStore& store, const EntityRef& ref, const nlohmann::json& fields) const;
  // Applies up to `limit` entries of the shared intake of the shards the
  // cluster owns, oldest first, in one transaction that also deletes them
  // (Outcome::from_intake counts them). Nothing without a cluster.
  Outcome apply_intake(std::size_t limit = kIntakeBatch);
  static constexpr std::size_t kIntakeBatch = 500;

  // Fires the timers (`at` rules) due at the clock's current time, earliest
  // first, each in its own transaction. A timer more than the configured
  // grace late is skipped and reported. Gives up the intents whose wait for
  // linked data is over (reported with code "gave_up_waiting"). Does at
  // most `limit` of these (the rest wait for the next call, so that a burst
  // of thousands can be spread over turns of the loop). Call again while
  // next_timer() is due; it includes those ends of waiting.
  // A due timer of a rule in `cancelling` (a reload removed or changed it
  // and its timers are being removed, a batch at a time) is removed
  // unfired: it was set for a rule that is no more.
  Outcome fire_due(std::size_t limit = kFireBatch, const std::set<std::string>& cancelling = {});
  static constexpr std::size_t kFireBatch = 1000;
  std::optional<Timestamp> next_timer() const;

  // A due outbox entry looked at again just before it is sent (DESIGN.md
  // invariant 8). When the world has overtaken it -- its rule's `when` no
  // longer holds, its trigger was undone (the cancellation was reverted),
  // the customer opted out (their `opt_out` field, or a STOP reply on its
  // channel), the rule or entity is gone -- it is marked
  // overtaken with the reason (also in `outcome.held_back`, code
  // "overtaken") and nullopt is returned. When its entity is paused (the
  // customer replied) it waits until the pause ends (decision "held back",
  // `outcome.deferred` code "paused") and nullopt is returned. Otherwise it is rendered again
  // with the current data, keeping its idempotency key, channel and
  // language; a change is stored with the decision "re-rendered".
  //
  // A notification this Pipeline rendered itself is returned as rendered,
  // without reading anything, when nothing the check and its rendering
  // read has changed since: no entity of its customer was written (the
  // Pipeline sees every write of an entity), no other connection committed
  // to the store (Store::data_version()) and no snapshot was set since. Only
  // a rule and template that read nothing of the outbox (`sent`,
  // `last_contact_at`, `history`; no partials) get this shortcut, and only
  // when everything its message sees names the same customer.
  //
  // What it reads and writes goes through `store`: the open Transaction
  // (Delivery's round), or the Store itself when none is open.
  std::optional<Notification> release(StoreRoles& store, const OutboxEntry& entry, Outcome& outcome);
  std::optional<Notification> release(const OutboxEntry& entry, Outcome& outcome) {
    return release(store_, entry, outcome);
  }
  // What the release check reads changed outside the pipeline's own writes
  // (a reply, a STOP, a pause) for `customer`, or for anyone when empty:
  // their messages are checked in full again.
  void changed_outside(const std::string& customer) {
    if (customer.empty()) return changed_everything();
    changed(customer);
  }

  // A message to `customer` went to the dead letter: it is no contact, so
  // the customer's silence timers are set again. In a transaction of its own.
  void message_died(const std::string& customer);

  // The snapshot in force. A reload swaps in a new one between two calls;
  // what is in the store stays (see Daemon::reload for the timers).
  const Snapshot& snapshot() const { return snapshot_; }
  // A snapshot whose rules, templates and message settings differ (not a
  // reload that changed channels or sources only) ends every shortcut of
  // release().
  void set_snapshot(Snapshot snapshot);

  // Reschedules the timers of up to `limit` known entities of `type` with
  // an id after `after_id`, in one transaction: after a reload added or
  // changed an `at` rule. Returns the last id done, or nullopt when there
  // were none left.
  std::optional<std::string> reschedule_known(EntityType type, const std::string& after_id, std::size_t limit);

  // What a template of `rule` would see for the known entity `entity` (with
  // its linked entities and the customer's history), or nullopt when the
  // entity is unknown or not in a state the rule fires for (trigger value,
  // deadline time, condition). For `tactd preview`; changes nothing.
  std::optional<MessageContext> preview_context(const Rule& rule, const EntityRef& entity) const;

 private:
  // The private helpers read and write through `store`: the open
  // Transaction of the public call that runs them (or the Store itself, for
  // those that run without one).
  MessageContext message_context(const StoreRoles& store, const Rule& rule, const EntityRef& entity,
                                 const Linked& linked, const nlohmann::json& event) const;
  void apply_one(StoreRoles& store, const Observation& observation, Outcome& outcome);
  // Keeps the firing waiting, durably, for `missing` to be observed
  // ([policy] wait_for_links; a timer within [timers] grace of its due time).
  bool wait_for(StoreRoles& store, const Rule& rule, const Entity& entity, const std::string& trigger,
                const nlohmann::json& event, const EntityRef& missing, const std::string& reason, Outcome& outcome);
  // Considers again what waited for `arrived`.
  void resume_waiting(StoreRoles& store, const EntityRef& arrived, Outcome& outcome);
  // Why a waiting notification would be wrong to send now, or nullopt;
  // then `view`, when given, gets the view of its entity it was judged on.
  std::optional<std::string> overtaken_by(const StoreRoles& store, const Notification& notification, Timestamp now,
                                          std::optional<Linked>* view = nullptr) const;
  // Schedules, moves or cancels the entity's timers after it changed.
  // `known`, when given, is link(entity) as it is now, to save reading it again.
  void reschedule(StoreRoles& store, const Entity& entity, const Linked* known = nullptr);
  // Reschedules the customer's timers (their silence) after their contact
  // history changed.
  void reschedule_customer(StoreRoles& store, const std::string& customer);
  // Turns one firing rule into a notification, or says why not. Returns
  // true when it waits for linked data instead (see wait_for).
  bool consider(StoreRoles& store, const Rule& rule, const Entity& entity, const Linked& linked,
                const std::string& trigger, const nlohmann::json& event, Outcome& outcome);

  // --- the release check's shortcut (see release()) ---
  // The customers whose messages may read `entity` (written now, or before
  // as `previous`) are marked changed; everything is, when its links moved.
  void entity_written(const EntityStore& store, const Entity& entity, const Entity* previous);
  void changed(const std::string& customer);
  void changed_everything() { everything_changed_at_ = ++generation_; }
  // Whether `notification`, just enqueued as rendered from `linked`, may
  // take the shortcut at its release; then it is remembered.
  void remember_rendered(const OutboxStore& store, const Rule& rule, const Notification& notification,
                         const Linked& linked);
  // Whether the entry was rendered here and nothing it reads changed since.
  bool unchanged_since_rendered(const OutboxEntry& entry);

  // Whether this replica applies what belongs to `key`'s shard.
  bool owns_key(const std::string& key) const { return !cluster_ || cluster_->owns_key(key); }

  Snapshot snapshot_;
  Store& store_;
  const Clock& clock_;
  const Cluster* cluster_ = nullptr;

  static constexpr std::size_t kMaxRendered = std::size_t{1} << 17;  // 2 MiB at most
  static constexpr std::size_t kMaxChanged = std::size_t{1} << 16;   // customers remembered, about 3 MiB at most
  std::uint64_t generation_ = 1;                                     // counts changes
  std::uint64_t everything_changed_at_ = 1;
  // By a hash of the customer (a clash only costs a full check): the
  // generation of their last change. Only changes newer than the oldest
  // remembered rendering matter; the rest is forgotten when it grows.
  std::unordered_map<std::uint64_t, std::uint64_t> customer_changed_;
  // Outbox id and the generation it was rendered at, ids ascending; 0 once released.
  std::vector<std::pair<long long, std::uint64_t>> rendered_;
  std::size_t rendered_head_ = 0;  // before it every entry is released
  std::optional<long long> data_version_;
};

}  // namespace tactd
