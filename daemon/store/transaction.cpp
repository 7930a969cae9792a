// Store::Transaction (store.h): the role calls made through a transaction,
// forwarded to its Store marked as made through it; the refusal of those
// made on the Store past it.
#include <stdexcept>
#include <string>
#include <string_view>

#include "store/store.h"

namespace tactd {

namespace {

// The member function's own name in a compiler's full signature
// ("virtual void tactd::{anonymous}::SqliteStore::put_entity(const tactd::Entity&)").
std::string_view function_name(std::string_view signature) {
  signature = signature.substr(0, signature.find('('));
  if (const auto colons = signature.rfind("::"); colons != std::string_view::npos) signature.remove_prefix(colons + 2);
  if (const auto space = signature.rfind(' '); space != std::string_view::npos) signature.remove_prefix(space + 1);
  return signature;
}

}  // namespace

void Store::refuse_call(const std::string& what, const std::source_location& where) {
  throw std::logic_error("store call '" + std::string(function_name(where.function_name())) + "' (" + what +
                         ") made outside the open transaction: call it through the Transaction");
}

// Marks the Store's calls as made through `tx` while it lives; throws
// std::logic_error when `tx` has ended. Restores the mark it found, so that
// it may nest.
class Store::Transaction::Through {
 public:
  Through(const Transaction& tx, const char* call) : store_(tx.store_), was_(store_.through_) {
    if (store_.open_ != &tx) [[unlikely]]
      throw std::logic_error(std::string("store call '") + call + "' made through a transaction that has ended");
    store_.through_ = true;
  }
  ~Through() { store_.through_ = was_; }
  Through(const Through&) = delete;
  Through& operator=(const Through&) = delete;

 private:
  Store& store_;
  bool was_;
};

Store::Transaction::Transaction(Store& store) : store_(store) {
  if (store_.open_ != nullptr) throw StoreError("a transaction is already open (transactions do not nest)");
  store_.open_ = this;
}

Store::Transaction::~Transaction() {
  if (store_.open_ == this) store_.open_ = nullptr;
}

void Store::Transaction::commit() {
  {
    const Through through(*this, "commit");
    do_commit();
  }
  store_.open_ = nullptr;
}

std::optional<Entity> Store::Transaction::entity(const EntityRef& ref) const {
  const Through through(*this, "entity");
  return store_.entity(ref);
}

void Store::Transaction::put_entity(const Entity& entity) {
  const Through through(*this, "put_entity");
  store_.put_entity(entity);
}

void Store::Transaction::touch_entity(const Entity& entity, Timestamp observed_at) {
  const Through through(*this, "touch_entity");
  store_.touch_entity(entity, observed_at);
}

std::optional<Entity> Store::Transaction::latest_child(const EntityRef& parent, EntityType type) const {
  const Through through(*this, "latest_child");
  return store_.latest_child(parent, type);
}

std::size_t Store::Transaction::count_children(const EntityRef& parent, EntityType type,
                                               const std::string& status) const {
  const Through through(*this, "count_children");
  return store_.count_children(parent, type, status);
}

std::vector<Entity> Store::Transaction::entities(EntityType type, const std::string& after_id,
                                                 std::size_t limit) const {
  const Through through(*this, "entities");
  return store_.entities(type, after_id, limit);
}

std::vector<Entity> Store::Transaction::customer_entities(const std::string& customer, std::size_t limit) const {
  const Through through(*this, "customer_entities");
  return store_.customer_entities(customer, limit);
}

std::vector<std::string> Store::Transaction::customers_by_contact(const std::string& contact, std::size_t limit) const {
  const Through through(*this, "customers_by_contact");
  return store_.customers_by_contact(contact, limit);
}

bool Store::Transaction::enqueue(const Notification& notification, const std::string& why) {
  const Through through(*this, "enqueue");
  return store_.enqueue(notification, why);
}

long long Store::Transaction::last_enqueued() const {
  const Through through(*this, "last_enqueued");
  return store_.last_enqueued();
}

bool Store::Transaction::has_notification(const std::string& idempotency_key) const {
  const Through through(*this, "has_notification");
  return store_.has_notification(idempotency_key);
}

std::vector<Notification> Store::Transaction::notifications_since(const std::string& customer, Timestamp since) const {
  const Through through(*this, "notifications_since");
  return store_.notifications_since(customer, since);
}

std::optional<Timestamp> Store::Transaction::latest_notification_at(const std::string& customer) const {
  const Through through(*this, "latest_notification_at");
  return store_.latest_notification_at(customer);
}

std::optional<Notification> Store::Transaction::last_notification(const std::string& rule,
                                                                  const std::string& customer) const {
  const Through through(*this, "last_notification");
  return store_.last_notification(rule, customer);
}

std::vector<OutboxEntry> Store::Transaction::outbox(std::optional<OutboxStatus> status) const {
  const Through through(*this, "outbox");
  return store_.outbox(status);
}

std::vector<Kind> Store::Transaction::kinds_about(const EntityRef& entity) const {
  const Through through(*this, "kinds_about");
  return store_.kinds_about(entity);
}

std::vector<OutboxEntry> Store::Transaction::pending_about(const EntityRef& entity) const {
  const Through through(*this, "pending_about");
  return store_.pending_about(entity);
}

bool Store::Transaction::drop(long long outbox_id) {
  const Through through(*this, "drop");
  return store_.drop(outbox_id);
}

void Store::Transaction::mark_delivered(long long outbox_id, Timestamp at, const std::string& detail) {
  const Through through(*this, "mark_delivered");
  store_.mark_delivered(outbox_id, at, detail);
}

void Store::Transaction::record_failure(long long outbox_id, Timestamp at, const std::string& detail,
                                        std::optional<Timestamp> retry_at) {
  const Through through(*this, "record_failure");
  store_.record_failure(outbox_id, at, detail, retry_at);
}

bool Store::Transaction::mark_overtaken(long long outbox_id, Timestamp at, const std::string& reason) {
  const Through through(*this, "mark_overtaken");
  return store_.mark_overtaken(outbox_id, at, reason);
}

void Store::Transaction::update_message(long long outbox_id, const Notification& notification) {
  const Through through(*this, "update_message");
  store_.update_message(outbox_id, notification);
}

void Store::Transaction::record_decision(long long outbox_id, Timestamp at, const std::string& decision,
                                         const std::string& reason) {
  const Through through(*this, "record_decision");
  store_.record_decision(outbox_id, at, decision, reason);
}

std::vector<OutboxDecision> Store::Transaction::decisions(long long outbox_id) const {
  const Through through(*this, "decisions");
  return store_.decisions(outbox_id);
}

bool Store::Transaction::retry(long long outbox_id, Timestamp now) {
  const Through through(*this, "retry");
  return store_.retry(outbox_id, now);
}

bool Store::Transaction::resolve_delivered(long long outbox_id, Timestamp at, const std::string& note) {
  const Through through(*this, "resolve_delivered");
  return store_.resolve_delivered(outbox_id, at, note);
}

std::vector<OutboxEntry> Store::Transaction::claim_due_notifications(Channel channel, std::size_t limit, Timestamp now,
                                                                     Duration lease) {
  const Through through(*this, "claim_due_notifications");
  return store_.claim_due_notifications(channel, limit, now, lease);
}

void Store::Transaction::claim(const std::vector<long long>& outbox_ids, Timestamp at) {
  const Through through(*this, "claim");
  store_.claim(outbox_ids, at);
}

std::vector<OutboxEntry> Store::Transaction::interrupted() const {
  const Through through(*this, "interrupted");
  return store_.interrupted();
}

bool Store::Transaction::settle_interrupted(long long outbox_id, Timestamp at, bool retry, const std::string& detail) {
  const Through through(*this, "settle_interrupted");
  return store_.settle_interrupted(outbox_id, at, retry, detail);
}

std::optional<OutboxEntry> Store::Transaction::outbox_entry(long long outbox_id) const {
  const Through through(*this, "outbox_entry");
  return store_.outbox_entry(outbox_id);
}

std::vector<DeliveryAttempt> Store::Transaction::attempts(long long outbox_id) const {
  const Through through(*this, "attempts");
  return store_.attempts(outbox_id);
}

std::vector<OutboxEntry> Store::Transaction::due_actions(Timestamp until, std::size_t limit) const {
  const Through through(*this, "due_actions");
  return store_.due_actions(until, limit);
}

std::optional<Timestamp> Store::Transaction::next_action() const {
  const Through through(*this, "next_action");
  return store_.next_action();
}

bool Store::Transaction::record_action(long long outbox_id, Timestamp at, ActionState state,
                                       const nlohmann::json& answer, std::optional<Timestamp> retry_at,
                                       const std::string& detail) {
  const Through through(*this, "record_action");
  return store_.record_action(outbox_id, at, state, answer, retry_at, detail);
}

std::vector<OutboxEntry> Store::Transaction::due_notifications(Timestamp until, std::optional<Channel> channel,
                                                               std::size_t limit) const {
  const Through through(*this, "due_notifications");
  return store_.due_notifications(until, channel, limit);
}

std::optional<Timestamp> Store::Transaction::next_notification() const {
  const Through through(*this, "next_notification");
  return store_.next_notification();
}

OutboxStore::OutboxDepth Store::Transaction::outbox_depth(Timestamp now) const {
  const Through through(*this, "outbox_depth");
  return store_.outbox_depth(now);
}

std::optional<Notification> Store::Transaction::notification_by_message_ref(const std::string& message_ref) const {
  const Through through(*this, "notification_by_message_ref");
  return store_.notification_by_message_ref(message_ref);
}

std::optional<Notification> Store::Transaction::latest_notification_to(Channel channel,
                                                                       const std::string& address) const {
  const Through through(*this, "latest_notification_to");
  return store_.latest_notification_to(channel, address);
}

bool Store::Transaction::postpone(long long outbox_id, Timestamp now, Timestamp until, const std::string& reason) {
  const Through through(*this, "postpone");
  return store_.postpone(outbox_id, now, until, reason);
}

std::vector<OutboxEntry> Store::Transaction::customer_outbox(const std::string& customer, std::size_t limit) const {
  const Through through(*this, "customer_outbox");
  return store_.customer_outbox(customer, limit);
}

void Store::Transaction::record_not_made(const NotMade& not_made) {
  const Through through(*this, "record_not_made");
  store_.record_not_made(not_made);
}

std::vector<NotMade> Store::Transaction::customer_not_made(const std::string& customer, std::size_t limit) const {
  const Through through(*this, "customer_not_made");
  return store_.customer_not_made(customer, limit);
}

std::vector<NotMadeCount> Store::Transaction::not_made_counts(Timestamp since) const {
  const Through through(*this, "not_made_counts");
  return store_.not_made_counts(since);
}

std::map<OutboxStatus, std::size_t> Store::Transaction::outbox_counts() const {
  const Through through(*this, "outbox_counts");
  return store_.outbox_counts();
}

std::vector<OutboxEntry> Store::Transaction::latest_outbox(OutboxStatus status, std::size_t limit) const {
  const Through through(*this, "latest_outbox");
  return store_.latest_outbox(status, limit);
}

std::vector<OutboxStore::OutboxActivity> Store::Transaction::outbox_activity(Timestamp since, std::size_t limit) const {
  const Through through(*this, "outbox_activity");
  return store_.outbox_activity(since, limit);
}

std::vector<OutboxStore::RuleDecision> Store::Transaction::decisions_since(Timestamp since, std::size_t limit) const {
  const Through through(*this, "decisions_since");
  return store_.decisions_since(since, limit);
}

void Store::Transaction::schedule_timer(const Timer& timer) {
  const Through through(*this, "schedule_timer");
  store_.schedule_timer(timer);
}

void Store::Transaction::cancel_timer(const std::string& rule, const EntityRef& entity) {
  const Through through(*this, "cancel_timer");
  store_.cancel_timer(rule, entity);
}

std::vector<Timer> Store::Transaction::due_timers(Timestamp until, size_t limit) const {
  const Through through(*this, "due_timers");
  return store_.due_timers(until, limit);
}

std::optional<Timestamp> Store::Transaction::next_timer() const {
  const Through through(*this, "next_timer");
  return store_.next_timer();
}

bool Store::Transaction::mark_timer_fired(const Timer& timer) {
  const Through through(*this, "mark_timer_fired");
  return store_.mark_timer_fired(timer);
}

CancelledTimers Store::Transaction::cancel_timers(const std::string& rule, std::size_t limit) {
  const Through through(*this, "cancel_timers");
  return store_.cancel_timers(rule, limit);
}

std::size_t Store::Transaction::pending_timers() const {
  const Through through(*this, "pending_timers");
  return store_.pending_timers();
}

void Store::Transaction::add_waiting(const WaitingIntent& intent) {
  const Through through(*this, "add_waiting");
  store_.add_waiting(intent);
}

std::vector<WaitingIntent> Store::Transaction::waiting_for(const EntityRef& ref) const {
  const Through through(*this, "waiting_for");
  return store_.waiting_for(ref);
}

std::vector<WaitingIntent> Store::Transaction::expired_waiting(Timestamp now, std::size_t limit) const {
  const Through through(*this, "expired_waiting");
  return store_.expired_waiting(now, limit);
}

std::optional<Timestamp> Store::Transaction::next_waiting_expiry() const {
  const Through through(*this, "next_waiting_expiry");
  return store_.next_waiting_expiry();
}

void Store::Transaction::remove_waiting(long long id) {
  const Through through(*this, "remove_waiting");
  store_.remove_waiting(id);
}

std::optional<std::string> Store::Transaction::cursor(const std::string& source) const {
  const Through through(*this, "cursor");
  return store_.cursor(source);
}

void Store::Transaction::set_cursor(const std::string& source, const std::string& value) {
  const Through through(*this, "set_cursor");
  store_.set_cursor(source, value);
}

void Store::Transaction::record_contact(const Contact& contact) {
  const Through through(*this, "record_contact");
  store_.record_contact(contact);
}

std::vector<Contact> Store::Transaction::contacts(const std::string& customer) const {
  const Through through(*this, "contacts");
  return store_.contacts(customer);
}

long long Store::Transaction::add_reply(const Reply& reply) {
  const Through through(*this, "add_reply");
  return store_.add_reply(reply);
}

std::vector<Reply> Store::Transaction::replies(const std::string& customer) const {
  const Through through(*this, "replies");
  return store_.replies(customer);
}

std::vector<Reply> Store::Transaction::unforwarded_replies(std::size_t limit) const {
  const Through through(*this, "unforwarded_replies");
  return store_.unforwarded_replies(limit);
}

void Store::Transaction::mark_forwarded(long long reply_id, Timestamp at) {
  const Through through(*this, "mark_forwarded");
  store_.mark_forwarded(reply_id, at);
}

RepliesAbout Store::Transaction::replies_about(const EntityRef& entity) const {
  const Through through(*this, "replies_about");
  return store_.replies_about(entity);
}

bool Store::Transaction::add_opt_out(const OptOut& opt_out) {
  const Through through(*this, "add_opt_out");
  return store_.add_opt_out(opt_out);
}

std::optional<OptOut> Store::Transaction::opt_out(const std::string& customer, Channel channel,
                                                  const std::string& address) const {
  const Through through(*this, "opt_out");
  return store_.opt_out(customer, channel, address);
}

bool Store::Transaction::end_opt_out(const std::string& customer, Channel channel, const std::string& address,
                                     Timestamp at, long long reply_id) {
  const Through through(*this, "end_opt_out");
  return store_.end_opt_out(customer, channel, address, at, reply_id);
}

void Store::Transaction::pause(const EntityRef& entity, Timestamp until, const std::string& reason) {
  const Through through(*this, "pause");
  store_.pause(entity, until, reason);
}

std::optional<Pause> Store::Transaction::paused(const EntityRef& entity, Timestamp now) const {
  const Through through(*this, "paused");
  return store_.paused(entity, now);
}

std::vector<Reply> Store::Transaction::customer_replies(const std::string& customer, std::size_t limit) const {
  const Through through(*this, "customer_replies");
  return store_.customer_replies(customer, limit);
}

std::vector<OptOut> Store::Transaction::customer_opt_outs(const std::string& customer) const {
  const Through through(*this, "customer_opt_outs");
  return store_.customer_opt_outs(customer);
}

void Store::Transaction::heartbeat(const std::string& replica, Timestamp now) {
  const Through through(*this, "heartbeat");
  store_.heartbeat(replica, now);
}

std::size_t Store::Transaction::live_replicas(Timestamp since, Timestamp forget_before) {
  const Through through(*this, "live_replicas");
  return store_.live_replicas(since, forget_before);
}

void Store::Transaction::leave(const std::string& replica) {
  const Through through(*this, "leave");
  store_.leave(replica);
}

std::vector<ShardLease> Store::Transaction::shard_leases() const {
  const Through through(*this, "shard_leases");
  return store_.shard_leases();
}

bool Store::Transaction::take_shard(int shard, const std::string& replica, Timestamp now, Timestamp until) {
  const Through through(*this, "take_shard");
  return store_.take_shard(shard, replica, now, until);
}

std::vector<int> Store::Transaction::take_shards(std::span<const int> shards, const std::string& replica, Timestamp now,
                                                 Timestamp until) {
  const Through through(*this, "take_shards");
  return store_.take_shards(shards, replica, now, until);
}

std::vector<int> Store::Transaction::renew_shards(const std::string& replica, Timestamp until) {
  const Through through(*this, "renew_shards");
  return store_.renew_shards(replica, until);
}

void Store::Transaction::release_shards(const std::string& replica, std::span<const int> shards) {
  const Through through(*this, "release_shards");
  store_.release_shards(replica, shards);
}

bool Store::Transaction::take_source(const std::string& source, const std::string& replica, Timestamp now,
                                     Timestamp until) {
  const Through through(*this, "take_source");
  return store_.take_source(source, replica, now, until);
}

void Store::Transaction::release_source(const std::string& replica, const std::string& source) {
  const Through through(*this, "release_source");
  store_.release_source(replica, source);
}

void Store::Transaction::put_intake(int shard, const Observation& observation, Timestamp received_at) {
  const Through through(*this, "put_intake");
  store_.put_intake(shard, observation, received_at);
}

std::vector<IntakeEntry> Store::Transaction::claim_intake(std::span<const int> shards, std::size_t limit,
                                                          std::vector<std::string>* unreadable) {
  const Through through(*this, "claim_intake");
  return store_.claim_intake(shards, limit, unreadable);
}

void Store::Transaction::delete_intake(std::span<const long long> ids) {
  const Through through(*this, "delete_intake");
  store_.delete_intake(ids);
}

std::size_t Store::Transaction::intake_size() const {
  const Through through(*this, "intake_size");
  return store_.intake_size();
}

std::vector<int> Store::Transaction::intake_shards() const {
  const Through through(*this, "intake_shards");
  return store_.intake_shards();
}
}  // namespace tactd
