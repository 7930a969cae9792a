// A Store that passes everything to another one and, on demand, refuses
// what would write the outcome of a delivery attempt, as a full disk or a
// locked database does: a transaction's commit and the verdict writes throw
// StoreError. It counts the transactions begun. The inner store must
// outlive it.
#pragma once

#include "store/store.h"

namespace tactd {

class FaultyStore final : public Store {
 public:
  explicit FaultyStore(Store& inner) : inner_(inner) {}

  bool fail = false;     // refuse commits and verdicts while set
  int transactions = 0;  // begun
  int refused = 0;       // writes refused

  Sync sync() const override { return inner_.sync(); }
  int schema_version() const override { return inner_.schema_version(); }

  std::unique_ptr<Transaction> begin() override {
    ++transactions;
    return std::make_unique<Tx>(*this);
  }

  std::optional<Entity> entity(const EntityRef& ref) const override { return target().entity(ref); }
  void put_entity(const Entity& entity) override { target().put_entity(entity); }
  void touch_entity(const Entity& entity, Timestamp observed_at) override {
    target().touch_entity(entity, observed_at);
  }
  std::optional<Entity> latest_child(const EntityRef& parent, EntityType type) const override {
    return target().latest_child(parent, type);
  }
  std::size_t count_children(const EntityRef& parent, EntityType type, const std::string& status) const override {
    return target().count_children(parent, type, status);
  }
  std::vector<Entity> entities(EntityType type, const std::string& after_id, std::size_t limit) const override {
    return target().entities(type, after_id, limit);
  }

  using Store::enqueue;
  bool enqueue(const Notification& notification, const std::string& why) override {
    return target().enqueue(notification, why);
  }
  long long last_enqueued() const override { return target().last_enqueued(); }
  long long data_version() const override { return inner_.data_version(); }
  bool has_notification(const std::string& key) const override { return target().has_notification(key); }
  std::vector<Notification> notifications_since(const std::string& customer, Timestamp since) const override {
    return target().notifications_since(customer, since);
  }
  std::optional<Timestamp> latest_notification_at(const std::string& customer) const override {
    return target().latest_notification_at(customer);
  }
  std::optional<Notification> last_notification(const std::string& rule, const std::string& customer) const override {
    return target().last_notification(rule, customer);
  }
  std::vector<OutboxEntry> outbox(std::optional<OutboxStatus> status) const override { return target().outbox(status); }
  std::vector<Kind> kinds_about(const EntityRef& entity) const override { return target().kinds_about(entity); }
  std::vector<OutboxEntry> pending_about(const EntityRef& entity) const override {
    return target().pending_about(entity);
  }
  bool drop(long long id) override { return target().drop(id); }
  void mark_delivered(long long id, Timestamp at, const std::string& detail) override {
    refuse("mark outbox entry " + std::to_string(id) + " delivered");
    target().mark_delivered(id, at, detail);
  }
  void record_failure(long long id, Timestamp at, const std::string& detail,
                      std::optional<Timestamp> retry_at) override {
    refuse("record a failed delivery of outbox entry " + std::to_string(id));
    target().record_failure(id, at, detail, retry_at);
  }
  std::vector<OutboxEntry> claim_due_notifications(Channel channel, std::size_t limit, Timestamp now,
                                                   Duration lease) override {
    refuse("claim due " + std::string(to_string(channel)) + " notifications");
    return target().claim_due_notifications(channel, limit, now, lease);
  }
  void claim(const std::vector<long long>& ids, Timestamp at) override {
    if (ids.empty()) return;  // as the real store: nothing to write
    refuse("claim " + std::to_string(ids.size()) + " outbox entries");
    target().claim(ids, at);
  }
  std::vector<OutboxEntry> due_actions(Timestamp until, std::size_t limit) const override {
    return target().due_actions(until, limit);
  }
  std::optional<Timestamp> next_action() const override { return target().next_action(); }
  bool record_action(long long id, Timestamp at, ActionState state, const nlohmann::json& answer,
                     std::optional<Timestamp> retry_at, const std::string& detail) override {
    refuse("record the action of outbox entry " + std::to_string(id));
    return target().record_action(id, at, state, answer, retry_at, detail);
  }
  std::vector<OutboxEntry> interrupted() const override { return target().interrupted(); }
  bool settle_interrupted(long long id, Timestamp at, bool retry, const std::string& detail) override {
    refuse("settle the cut-off send of outbox entry " + std::to_string(id));
    return target().settle_interrupted(id, at, retry, detail);
  }
  bool resolve_delivered(long long id, Timestamp at, const std::string& note) override {
    return target().resolve_delivered(id, at, note);
  }
  bool mark_overtaken(long long id, Timestamp at, const std::string& reason) override {
    return target().mark_overtaken(id, at, reason);
  }
  void update_message(long long id, const Notification& notification) override {
    target().update_message(id, notification);
  }
  void record_decision(long long id, Timestamp at, const std::string& decision, const std::string& reason) override {
    target().record_decision(id, at, decision, reason);
  }
  std::vector<OutboxDecision> decisions(long long id) const override { return target().decisions(id); }
  bool retry(long long id, Timestamp now) override { return target().retry(id, now); }
  std::optional<OutboxEntry> outbox_entry(long long id) const override { return target().outbox_entry(id); }
  std::vector<DeliveryAttempt> attempts(long long id) const override { return target().attempts(id); }

  void schedule_timer(const Timer& timer) override { target().schedule_timer(timer); }
  void cancel_timer(const std::string& rule, const EntityRef& entity) override { target().cancel_timer(rule, entity); }
  std::vector<Timer> due_timers(Timestamp until, size_t limit) const override {
    return target().due_timers(until, limit);
  }
  std::optional<Timestamp> next_timer() const override { return target().next_timer(); }
  bool mark_timer_fired(const Timer& timer) override { return target().mark_timer_fired(timer); }
  CancelledTimers cancel_timers(const std::string& rule, std::size_t limit) override {
    return target().cancel_timers(rule, limit);
  }
  std::size_t pending_timers() const override { return target().pending_timers(); }

  std::vector<OutboxEntry> due_notifications(Timestamp until, std::optional<Channel> channel,
                                             std::size_t limit) const override {
    return target().due_notifications(until, channel, limit);
  }
  std::optional<Timestamp> next_notification() const override { return target().next_notification(); }
  OutboxDepth outbox_depth(Timestamp now) const override { return target().outbox_depth(now); }

  void add_waiting(const WaitingIntent& intent) override { target().add_waiting(intent); }
  std::vector<WaitingIntent> waiting_for(const EntityRef& ref) const override { return target().waiting_for(ref); }
  std::vector<WaitingIntent> expired_waiting(Timestamp now, std::size_t limit) const override {
    return target().expired_waiting(now, limit);
  }
  std::optional<Timestamp> next_waiting_expiry() const override { return target().next_waiting_expiry(); }
  void remove_waiting(long long id) override { target().remove_waiting(id); }

  std::optional<std::string> cursor(const std::string& source) const override { return target().cursor(source); }
  void set_cursor(const std::string& source, const std::string& value) override { target().set_cursor(source, value); }

  void record_contact(const Contact& contact) override { target().record_contact(contact); }
  std::vector<Contact> contacts(const std::string& customer) const override { return target().contacts(customer); }
  std::vector<Entity> customer_entities(const std::string& customer, std::size_t limit) const override {
    return target().customer_entities(customer, limit);
  }
  std::vector<OutboxEntry> customer_outbox(const std::string& customer, std::size_t limit) const override {
    return target().customer_outbox(customer, limit);
  }
  std::vector<std::string> customers_by_contact(const std::string& contact, std::size_t limit) const override {
    return target().customers_by_contact(contact, limit);
  }
  std::map<OutboxStatus, std::size_t> outbox_counts() const override { return target().outbox_counts(); }
  std::vector<OutboxEntry> latest_outbox(OutboxStatus status, std::size_t limit) const override {
    return target().latest_outbox(status, limit);
  }
  std::vector<OutboxActivity> outbox_activity(Timestamp since, std::size_t limit) const override {
    return target().outbox_activity(since, limit);
  }
  std::vector<RuleDecision> decisions_since(Timestamp since, std::size_t limit) const override {
    return target().decisions_since(since, limit);
  }
  void heartbeat(const std::string& replica, Timestamp now) override { target().heartbeat(replica, now); }
  std::size_t live_replicas(Timestamp since, Timestamp forget_before) override {
    return target().live_replicas(since, forget_before);
  }
  void leave(const std::string& replica) override { target().leave(replica); }
  std::vector<ShardLease> shard_leases() const override { return target().shard_leases(); }
  bool take_shard(int shard, const std::string& replica, Timestamp now, Timestamp until) override {
    return target().take_shard(shard, replica, now, until);
  }
  std::vector<int> take_shards(std::span<const int> shards, const std::string& replica, Timestamp now,
                               Timestamp until) override {
    return target().take_shards(shards, replica, now, until);
  }
  std::vector<int> renew_shards(const std::string& replica, Timestamp until) override {
    return target().renew_shards(replica, until);
  }
  void release_shards(const std::string& replica, std::span<const int> shards) override {
    target().release_shards(replica, shards);
  }
  bool take_source(const std::string& source, const std::string& replica, Timestamp now, Timestamp until) override {
    return target().take_source(source, replica, now, until);
  }
  void release_source(const std::string& replica, const std::string& source) override {
    target().release_source(replica, source);
  }
  void put_intake(int shard, const Observation& observation, Timestamp received_at) override {
    target().put_intake(shard, observation, received_at);
  }
  std::vector<IntakeEntry> claim_intake(std::span<const int> shards, std::size_t limit,
                                        std::vector<std::string>* unreadable) override {
    return target().claim_intake(shards, limit, unreadable);
  }
  void delete_intake(std::span<const long long> ids) override { target().delete_intake(ids); }
  std::size_t intake_size() const override { return target().intake_size(); }
  std::vector<int> intake_shards() const override { return target().intake_shards(); }
  std::vector<Reply> customer_replies(const std::string& customer, std::size_t limit) const override {
    return target().customer_replies(customer, limit);
  }
  void record_not_made(const NotMade& not_made) override { target().record_not_made(not_made); }
  std::vector<NotMade> customer_not_made(const std::string& customer, std::size_t limit) const override {
    return target().customer_not_made(customer, limit);
  }
  std::vector<NotMadeCount> not_made_counts(Timestamp since) const override { return target().not_made_counts(since); }
  std::vector<OptOut> customer_opt_outs(const std::string& customer) const override {
    return target().customer_opt_outs(customer);
  }
  long long add_reply(const Reply& reply) override { return target().add_reply(reply); }
  std::vector<Reply> replies(const std::string& customer) const override { return target().replies(customer); }
  std::vector<Reply> unforwarded_replies(std::size_t limit) const override {
    return target().unforwarded_replies(limit);
  }
  void mark_forwarded(long long reply_id, Timestamp at) override { target().mark_forwarded(reply_id, at); }
  RepliesAbout replies_about(const EntityRef& entity) const override { return target().replies_about(entity); }
  bool add_opt_out(const OptOut& opt_out) override { return target().add_opt_out(opt_out); }
  bool end_opt_out(const std::string& customer, Channel channel, const std::string& address, Timestamp at,
                   long long reply_id) override {
    return target().end_opt_out(customer, channel, address, at, reply_id);
  }
  std::optional<OptOut> opt_out(const std::string& customer, Channel channel,
                                const std::string& address) const override {
    return target().opt_out(customer, channel, address);
  }
  void pause(const EntityRef& entity, Timestamp until, const std::string& reason) override {
    target().pause(entity, until, reason);
  }
  std::optional<Pause> paused(const EntityRef& entity, Timestamp now) const override {
    return target().paused(entity, now);
  }
  std::optional<Notification> notification_by_message_ref(const std::string& message_ref) const override {
    return target().notification_by_message_ref(message_ref);
  }
  std::optional<Notification> latest_notification_to(Channel channel, const std::string& address) const override {
    return target().latest_notification_to(channel, address);
  }
  bool postpone(long long outbox_id, Timestamp now, Timestamp until, const std::string& reason) override {
    return target().postpone(outbox_id, now, until, reason);
  }

 private:
  // A transaction of the inner store; what is called through this one goes through it.
  class Tx final : public Transaction {
   public:
    explicit Tx(FaultyStore& store) : Transaction(store), store_(store), inner_(store.inner_.begin()) {
      store_.inner_transaction_ = inner_.get();
    }
    ~Tx() override { store_.inner_transaction_ = nullptr; }

   private:
    void do_commit() override {
      store_.refuse("commit");
      inner_->commit();
    }

    FaultyStore& store_;
    std::unique_ptr<Transaction> inner_;  // rolls back unless committed
  };

  // Where a call goes: the inner transaction when it came through this
  // store's own, else the inner store (which refuses it while one is open).
  StoreRoles& target() const {
    if (inner_transaction_ && through_transaction()) return *inner_transaction_;
    return inner_;
  }

  void refuse(const std::string& what) {
    if (!fail) return;
    ++refused;
    throw StoreError("cannot " + what + ": database or disk is full");
  }

  Store& inner_;
  Transaction* inner_transaction_ = nullptr;  // while a Tx is open
};

}  // namespace tactd
