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
    return std::make_unique<Tx>(*this, inner_.begin());
  }

  std::optional<Entity> entity(const EntityRef& ref) const override { return inner_.entity(ref); }
  void put_entity(const Entity& entity) override { inner_.put_entity(entity); }
  void touch_entity(const Entity& entity, Timestamp observed_at) override { inner_.touch_entity(entity, observed_at); }
  std::optional<Entity> latest_child(const EntityRef& parent, EntityType type) const override {
    return inner_.latest_child(parent, type);
  }
  std::size_t count_children(const EntityRef& parent, EntityType type, const std::string& status) const override {
    return inner_.count_children(parent, type, status);
  }
  std::vector<Entity> entities(EntityType type, const std::string& after_id, std::size_t limit) const override {
    return inner_.entities(type, after_id, limit);
  }

  using Store::enqueue;
  bool enqueue(const Notification& notification, const std::string& why) override {
    return inner_.enqueue(notification, why);
  }
  long long last_enqueued() const override { return inner_.last_enqueued(); }
  long long data_version() const override { return inner_.data_version(); }
  bool has_notification(const std::string& key) const override { return inner_.has_notification(key); }
  std::vector<Notification> notifications_since(const std::string& customer, Timestamp since) const override {
    return inner_.notifications_since(customer, since);
  }
  std::optional<Timestamp> latest_notification_at(const std::string& customer) const override {
    return inner_.latest_notification_at(customer);
  }
  std::optional<Notification> last_notification(const std::string& rule, const std::string& customer) const override {
    return inner_.last_notification(rule, customer);
  }
  std::vector<OutboxEntry> outbox(std::optional<OutboxStatus> status) const override { return inner_.outbox(status); }
  std::vector<Kind> kinds_about(const EntityRef& entity) const override { return inner_.kinds_about(entity); }
  std::vector<OutboxEntry> pending_about(const EntityRef& entity) const override {
    return inner_.pending_about(entity);
  }
  bool drop(long long id) override { return inner_.drop(id); }
  void mark_delivered(long long id, Timestamp at, const std::string& detail) override {
    refuse("mark outbox entry " + std::to_string(id) + " delivered");
    inner_.mark_delivered(id, at, detail);
  }
  void record_failure(long long id, Timestamp at, const std::string& detail,
                      std::optional<Timestamp> retry_at) override {
    refuse("record a failed delivery of outbox entry " + std::to_string(id));
    inner_.record_failure(id, at, detail, retry_at);
  }
  std::vector<OutboxEntry> claim_due_notifications(Channel channel, std::size_t limit, Timestamp now,
                                                   Duration lease) override {
    refuse("claim due " + std::string(to_string(channel)) + " notifications");
    return inner_.claim_due_notifications(channel, limit, now, lease);
  }
  void claim(const std::vector<long long>& ids, Timestamp at) override {
    if (ids.empty()) return;  // as the real store: nothing to write
    refuse("claim " + std::to_string(ids.size()) + " outbox entries");
    inner_.claim(ids, at);
  }
  std::vector<OutboxEntry> due_actions(Timestamp until, std::size_t limit) const override {
    return inner_.due_actions(until, limit);
  }
  std::optional<Timestamp> next_action() const override { return inner_.next_action(); }
  bool record_action(long long id, Timestamp at, ActionState state, const nlohmann::json& answer,
                     std::optional<Timestamp> retry_at, const std::string& detail) override {
    refuse("record the action of outbox entry " + std::to_string(id));
    return inner_.record_action(id, at, state, answer, retry_at, detail);
  }
  std::vector<OutboxEntry> interrupted() const override { return inner_.interrupted(); }
  bool settle_interrupted(long long id, Timestamp at, bool retry, const std::string& detail) override {
    refuse("settle the cut-off send of outbox entry " + std::to_string(id));
    return inner_.settle_interrupted(id, at, retry, detail);
  }
  bool resolve_delivered(long long id, Timestamp at, const std::string& note) override {
    return inner_.resolve_delivered(id, at, note);
  }
  bool mark_overtaken(long long id, Timestamp at, const std::string& reason) override {
    return inner_.mark_overtaken(id, at, reason);
  }
  void update_message(long long id, const Notification& notification) override {
    inner_.update_message(id, notification);
  }
  void record_decision(long long id, Timestamp at, const std::string& decision, const std::string& reason) override {
    inner_.record_decision(id, at, decision, reason);
  }
  std::vector<OutboxDecision> decisions(long long id) const override { return inner_.decisions(id); }
  bool retry(long long id, Timestamp now) override { return inner_.retry(id, now); }
  std::optional<OutboxEntry> outbox_entry(long long id) const override { return inner_.outbox_entry(id); }
  std::vector<DeliveryAttempt> attempts(long long id) const override { return inner_.attempts(id); }

  void schedule_timer(const Timer& timer) override { inner_.schedule_timer(timer); }
  void cancel_timer(const std::string& rule, const EntityRef& entity) override { inner_.cancel_timer(rule, entity); }
  std::vector<Timer> due_timers(Timestamp until, size_t limit) const override {
    return inner_.due_timers(until, limit);
  }
  std::optional<Timestamp> next_timer() const override { return inner_.next_timer(); }
  bool mark_timer_fired(const Timer& timer) override { return inner_.mark_timer_fired(timer); }
  std::size_t cancel_timers(const std::string& rule) override { return inner_.cancel_timers(rule); }
  std::size_t pending_timers() const override { return inner_.pending_timers(); }

  std::vector<OutboxEntry> due_notifications(Timestamp until, std::optional<Channel> channel,
                                             std::size_t limit) const override {
    return inner_.due_notifications(until, channel, limit);
  }
  std::optional<Timestamp> next_notification() const override { return inner_.next_notification(); }
  OutboxDepth outbox_depth(Timestamp now) const override { return inner_.outbox_depth(now); }

  void add_waiting(const WaitingIntent& intent) override { inner_.add_waiting(intent); }
  std::vector<WaitingIntent> waiting_for(const EntityRef& ref) const override { return inner_.waiting_for(ref); }
  std::vector<WaitingIntent> expired_waiting(Timestamp now, std::size_t limit) const override {
    return inner_.expired_waiting(now, limit);
  }
  std::optional<Timestamp> next_waiting_expiry() const override { return inner_.next_waiting_expiry(); }
  void remove_waiting(long long id) override { inner_.remove_waiting(id); }

  std::optional<std::string> cursor(const std::string& source) const override { return inner_.cursor(source); }
  void set_cursor(const std::string& source, const std::string& value) override { inner_.set_cursor(source, value); }

  void record_contact(const Contact& contact) override { inner_.record_contact(contact); }
  std::vector<Contact> contacts(const std::string& customer) const override { return inner_.contacts(customer); }
  std::vector<Entity> customer_entities(const std::string& customer, std::size_t limit) const override {
    return inner_.customer_entities(customer, limit);
  }
  std::vector<OutboxEntry> customer_outbox(const std::string& customer, std::size_t limit) const override {
    return inner_.customer_outbox(customer, limit);
  }
  std::vector<std::string> customers_by_contact(const std::string& contact, std::size_t limit) const override {
    return inner_.customers_by_contact(contact, limit);
  }
  std::map<OutboxStatus, std::size_t> outbox_counts() const override { return inner_.outbox_counts(); }
  std::vector<OutboxEntry> latest_outbox(OutboxStatus status, std::size_t limit) const override {
    return inner_.latest_outbox(status, limit);
  }
  std::vector<OutboxActivity> outbox_activity(Timestamp since, std::size_t limit) const override {
    return inner_.outbox_activity(since, limit);
  }
  std::vector<RuleDecision> decisions_since(Timestamp since, std::size_t limit) const override {
    return inner_.decisions_since(since, limit);
  }
  void heartbeat(const std::string& replica, Timestamp now) override { inner_.heartbeat(replica, now); }
  std::size_t live_replicas(Timestamp since, Timestamp forget_before) override {
    return inner_.live_replicas(since, forget_before);
  }
  void leave(const std::string& replica) override { inner_.leave(replica); }
  std::vector<ShardLease> shard_leases() const override { return inner_.shard_leases(); }
  bool take_shard(int shard, const std::string& replica, Timestamp now, Timestamp until) override {
    return inner_.take_shard(shard, replica, now, until);
  }
  std::vector<int> take_shards(std::span<const int> shards, const std::string& replica, Timestamp now,
                               Timestamp until) override {
    return inner_.take_shards(shards, replica, now, until);
  }
  std::vector<int> renew_shards(const std::string& replica, Timestamp until) override {
    return inner_.renew_shards(replica, until);
  }
  void release_shards(const std::string& replica, std::span<const int> shards) override {
    inner_.release_shards(replica, shards);
  }
  bool take_source(const std::string& source, const std::string& replica, Timestamp now, Timestamp until) override {
    return inner_.take_source(source, replica, now, until);
  }
  void release_source(const std::string& replica, const std::string& source) override {
    inner_.release_source(replica, source);
  }
  void put_intake(int shard, const Observation& observation, Timestamp received_at) override {
    inner_.put_intake(shard, observation, received_at);
  }
  std::vector<IntakeEntry> claim_intake(std::span<const int> shards, std::size_t limit,
                                        std::vector<std::string>* unreadable) override {
    return inner_.claim_intake(shards, limit, unreadable);
  }
  void delete_intake(std::span<const long long> ids) override { inner_.delete_intake(ids); }
  std::size_t intake_size() const override { return inner_.intake_size(); }
  std::vector<int> intake_shards() const override { return inner_.intake_shards(); }
  std::vector<Reply> customer_replies(const std::string& customer, std::size_t limit) const override {
    return inner_.customer_replies(customer, limit);
  }
  void record_not_made(const NotMade& not_made) override { inner_.record_not_made(not_made); }
  std::vector<NotMade> customer_not_made(const std::string& customer, std::size_t limit) const override {
    return inner_.customer_not_made(customer, limit);
  }
  std::vector<NotMadeCount> not_made_counts(Timestamp since) const override { return inner_.not_made_counts(since); }
  std::vector<OptOut> customer_opt_outs(const std::string& customer) const override {
    return inner_.customer_opt_outs(customer);
  }
  long long add_reply(const Reply& reply) override { return inner_.add_reply(reply); }
  std::vector<Reply> replies(const std::string& customer) const override { return inner_.replies(customer); }
  std::vector<Reply> unforwarded_replies(std::size_t limit) const override { return inner_.unforwarded_replies(limit); }
  void mark_forwarded(long long reply_id, Timestamp at) override { inner_.mark_forwarded(reply_id, at); }
  RepliesAbout replies_about(const EntityRef& entity) const override { return inner_.replies_about(entity); }
  bool add_opt_out(const OptOut& opt_out) override { return inner_.add_opt_out(opt_out); }
  bool end_opt_out(const std::string& customer, Channel channel, const std::string& address, Timestamp at,
                   long long reply_id) override {
    return inner_.end_opt_out(customer, channel, address, at, reply_id);
  }
  std::optional<OptOut> opt_out(const std::string& customer, Channel channel,
                                const std::string& address) const override {
    return inner_.opt_out(customer, channel, address);
  }
  void pause(const EntityRef& entity, Timestamp until, const std::string& reason) override {
    inner_.pause(entity, until, reason);
  }
  std::optional<Pause> paused(const EntityRef& entity, Timestamp now) const override {
    return inner_.paused(entity, now);
  }
  std::optional<Notification> notification_by_message_ref(const std::string& message_ref) const override {
    return inner_.notification_by_message_ref(message_ref);
  }
  std::optional<Notification> latest_notification_to(Channel channel, const std::string& address) const override {
    return inner_.latest_notification_to(channel, address);
  }
  bool postpone(long long outbox_id, Timestamp now, Timestamp until, const std::string& reason) override {
    return inner_.postpone(outbox_id, now, until, reason);
  }

 private:
  class Tx final : public Transaction {
   public:
    Tx(FaultyStore& store, std::unique_ptr<Transaction> inner) : store_(store), inner_(std::move(inner)) {}
    void commit() override {
      store_.refuse("commit");
      inner_->commit();
    }

   private:
    FaultyStore& store_;
    std::unique_ptr<Transaction> inner_;  // rolls back unless committed
  };

  void refuse(const std::string& what) {
    if (!fail) return;
    ++refused;
    throw StoreError("cannot " + what + ": database or disk is full");
  }

  Store& inner_;
};

}  // namespace tactd
