#include "pipeline/pipeline.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <functional>
#include <string_view>

#include "pipeline/linked.h"
#include "rules/policy.h"

namespace tactd {
namespace {

// How the firing of an `at` rule is named: "at@<due time>".
constexpr std::string_view kTimerTrigger = "at@";

std::string choose_locale(const nlohmann::json& customer, const Config& config) {
  const std::string wanted = text_field(customer, "locale");
  const auto supported = [&](const std::string& locale) {
    return std::find(config.locales.begin(), config.locales.end(), locale) != config.locales.end();
  };
  if (supported(wanted)) return wanted;
  const std::string language = wanted.substr(0, wanted.find_first_of("-_"));
  if (supported(language)) return language;
  return config.default_locale;
}

std::string choose_merchant(const nlohmann::json& scope, const Config& config) {
  for (const char* type : {"order", "subscription", "payment", "shipment"}) {
    if (!scope.contains(type)) continue;
    std::string merchant = text_field(scope[type], "merchant");
    if (!merchant.empty()) return merchant;
  }
  return config.merchant;
}

// The entities of a scope, as references.
std::vector<EntityRef> linked_refs(const nlohmann::json& scope) {
  std::vector<EntityRef> out;
  for (auto it = scope.begin(); it != scope.end(); ++it) {
    auto type = parse_entity_type(it.key());
    auto id = it.value().find("id");
    if (type && id != it.value().end() && id->is_string()) out.push_back(EntityRef{*type, id->get<std::string>()});
  }
  return out;
}

// "12 days", "5 hours", "40 minutes": for messages to operators.
std::string describe(Duration d) {
  using namespace std::chrono;
  if (d >= days{2}) return std::to_string(duration_cast<days>(d).count()) + " days";
  if (d >= hours{2}) return std::to_string(duration_cast<hours>(d).count()) + " hours";
  return std::to_string(duration_cast<minutes>(d).count()) + " minutes";
}

// Why a rule with a minimum notice must not send now, or nullopt when the
// change is far enough away.
std::optional<std::string> notice_shortfall(const Rule& rule, const nlohmann::json& scope, Timestamp now) {
  const auto dot = rule.notice_field.find('.');
  const std::string type = rule.notice_field.substr(0, dot);
  const std::string field = rule.notice_field.substr(dot + 1);
  const nlohmann::json* value = nullptr;
  if (scope.contains(type) && scope[type].contains(field)) value = &scope[type][field];
  std::optional<Timestamp> effective;
  if (value && value->is_string()) effective = parse_date_or_time(value->get<std::string>());
  if (!effective) return rule.notice_field + " is not a date, so the notice cannot be checked; not sent";
  const Duration notice = *effective - now;
  if (notice >= rule.min_notice) return std::nullopt;
  return "the change takes effect " + format_rfc3339(*effective) + ", only " +
         (notice > Duration::zero() ? describe(notice) : std::string("0 minutes")) +
         " from now; the minimum notice is " + describe(rule.min_notice) + " (short by " +
         describe(rule.min_notice - notice) + "). Not sent to the customer: contact them personally or move the date";
}

// What of `required` the entities in `scope` lack, for operators
// ("subscription/SUB-1 has no price_reason"), or "" when nothing: a field
// is missing when it is absent, null, or text that is empty or blank.
std::string missing_fields(const std::vector<FieldRef>& required, const nlohmann::json& scope) {
  std::vector<std::pair<std::string, std::vector<std::string>>> lacking;  // entity type -> fields, in rule order
  for (const FieldRef& ref : required) {
    const std::string type(to_string(ref.entity));
    const auto entity = scope.find(type);
    if (entity != scope.end()) {
      const auto value = entity->find(ref.field);
      const bool present = value != entity->end() && !value->is_null() &&
                           (!value->is_string() ||
                            value->get_ref<const std::string&>().find_first_not_of(" \t\r\n") != std::string::npos);
      if (present) continue;
    }
    auto it = std::find_if(lacking.begin(), lacking.end(), [&](const auto& l) { return l.first == type; });
    if (it == lacking.end()) it = lacking.insert(lacking.end(), {type, {}});
    it->second.push_back(ref.field);
  }
  std::string text;
  for (const auto& [type, fields] : lacking) {
    std::string list;
    for (size_t i = 0; i < fields.size(); ++i)
      list += (i == 0 ? "" : i + 1 == fields.size() ? " or " : ", ") + fields[i];
    if (!text.empty()) text += "; ";
    const auto entity = scope.find(type);
    if (entity == scope.end())
      text += "no " + type + " is linked (the message needs its " + list + ")";
    else
      text += type + "/" + text_field(*entity, "id") + " has no " + list;
  }
  return text;
}

nlohmann::json event_json(const Event& event) {
  return {{"field", event.field}, {"old", event.old_value}, {"new", event.new_value}};
}

// A message `rule` decided about `entity` and did not make, held back on
// purpose or for a problem: told in `outcome` and recorded in the store (for
// the customer's timeline and the console), within the caller's transaction.
struct NotMadeRecorder {
  Outcome& outcome;
  OutboxStore& store;
  Timestamp now;
  const std::string& rule;
  const EntityRef& entity;
  const std::string& customer;

  void held_back(std::string code, std::string reason) const {
    store.record_not_made(NotMade{now, rule, customer, entity, code, reason});
    outcome.held_back.push_back({rule, entity, std::move(code), std::move(reason)});
  }
  void problem(std::string code, std::string text) const {
    store.record_not_made(NotMade{now, rule, customer, entity, code, text});
    outcome.problems.push_back({rule, std::move(code), std::move(text)});
  }
};

}  // namespace

Pipeline::Pipeline(Snapshot snapshot, Store& store, const Clock& clock)
    : snapshot_(std::move(snapshot)), store_(store), clock_(clock) {}

Outcome Pipeline::apply(const Observation& observation) { return apply(std::span(&observation, 1)); }

Outcome Pipeline::apply(std::span<const Observation> observations, const SourceCursor* cursor) {
  Outcome outcome;
  auto transaction = store_.begin();
  // Shards whose shared intake is not empty: what this replica receives
  // for them, even for its own, goes there behind what waits, so that an
  // observation received later is never applied before one received
  // earlier (a stale check cannot tell two of the same second apart).
  std::bitset<kShards> waiting;
  if (cluster_)
    for (const int shard : transaction->intake_shards()) waiting.set(static_cast<std::size_t>(shard));
  for (const Observation& observation : observations) {
    if (cluster_) {
      const std::string key = shard_key(*transaction, observation.ref, observation.fields);
      const int shard = shard_of(key);
      if (!cluster_->owns(shard) || waiting.test(static_cast<std::size_t>(shard))) {
        transaction->put_intake(shard, observation, clock_.now());
        ++outcome.forwarded;
        // Even for a shard not owned: a renewal (on its own connection) may
        // hand it to this replica before the batch ends.
        waiting.set(static_cast<std::size_t>(shard));
        continue;
      }
    }
    apply_one(*transaction, observation, outcome);
  }
  if (cursor) transaction->set_cursor(cursor->source, cursor->value);
  transaction->commit();
  return outcome;
}

std::string Pipeline::shard_key(const EntityStore& store, const EntityRef& ref, const nlohmann::json& fields) const {
  if (ref.type == EntityType::kCustomer) return ref.id;
  const auto text = [](const nlohmann::json& f, const char* name) -> std::optional<std::string> {
    const auto it = f.find(name);
    if (it == f.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return std::nullopt;
    return it->get<std::string>();
  };
  if (auto customer = text(fields, "customer")) return *customer;
  const auto stored = store.entity(ref);
  if (stored)
    if (auto customer = stored->customer_id()) return *customer;
  if (ref.type == EntityType::kShipment) {
    auto order = text(fields, "order");
    if (!order && stored)
      if (auto parent = stored->parent(); parent && parent->type == EntityType::kOrder) order = parent->id;
    if (order) {
      const EntityRef order_ref{EntityType::kOrder, *order};
      if (const auto known = store.entity(order_ref))
        if (auto customer = known->customer_id()) return *customer;
      return order_ref.str();
    }
  }
  return ref.str();
}

Outcome Pipeline::apply_intake(std::size_t limit) {
  Outcome outcome;
  if (!cluster_) return outcome;
  const std::vector<int> shards = cluster_->owned();
  if (shards.empty()) return outcome;
  auto transaction = store_.begin();
  std::vector<std::string> unreadable;
  const std::vector<IntakeEntry> entries = transaction->claim_intake(shards, limit, &unreadable);
  std::vector<long long> ids;
  ids.reserve(entries.size());
  for (const IntakeEntry& entry : entries) {
    apply_one(*transaction, entry.observation, outcome);
    ids.push_back(entry.id);
  }
  if (!ids.empty()) transaction->delete_intake(ids);
  transaction->commit();
  outcome.from_intake = ids.size();
  for (std::string& text : unreadable)
    outcome.problems.push_back({"", "unreadable_intake", text + "; removed from the shared intake"});
  return outcome;
}

void Pipeline::apply_one(StoreRoles& store, const Observation& observation, Outcome& outcome) {
  const auto previous = store.entity(observation.ref);
  // Time goes forward per entity (DESIGN.md invariant 7): what is older than
  // the known snapshot changes nothing; of equal times the later applied wins.
  if (previous && observation.observed_at < previous->observed_at) {
    outcome.stale.push_back({observation.ref, observation.observed_at, previous->observed_at});
    return;
  }
  Entity entity = merge(previous ? &*previous : nullptr, observation);
  if (!entity.first_seen) entity.first_seen = clock_.now();
  const std::vector<Event> events = diff(previous ? &*previous : nullptr, observation);
  outcome.events.insert(outcome.events.end(), events.begin(), events.end());
  if (previous && events.empty() && entity.fields == previous->fields) {
    store.touch_entity(*previous, entity.observed_at);  // seen again, unchanged
    // Its parent now sees it as its latest child (an order its shipment).
    if (entity.parent()) entity_written(store, entity, &*previous);
  } else {
    store.put_entity(entity);
    entity_written(store, entity, previous ? &*previous : nullptr);
  }
  // What waited for this entity (or for this customer's address) may go now.
  if (!events.empty() || !previous) resume_waiting(store, entity.ref, outcome);
  if (events.empty()) return;
  // A change no rule reads (a payment note, a tracking ping) fires nothing
  // and moves no timer; a new entity may still get timers from what it lacks
  // (a silence counted from its first sighting).
  const RuleSet& rules = *snapshot_.rules;
  if (previous && std::none_of(events.begin(), events.end(),
                               [&](const Event& event) { return rules.reads(event.entity.type, event.field); }))
    return;

  const Linked linked = link(entity, store);
  const std::size_t decided = outcome.notifications.size() + outcome.held_back.size();
  for (const Event& event : events) {
    for (const Rule* rule : rules.triggered_by(event)) {
      if (rule->when && !rule->when->test(linked.scope)) continue;
      const std::string trigger = event.field + "=" + event.new_value.dump() + "@" + format_rfc3339(event.at);
      consider(store, *rule, entity, linked, trigger, event_json(event), outcome);
    }
  }
  // What the rules saw is still the world unless a message was enqueued or
  // overtaken meanwhile (that changes `sent`): then the timers look again.
  const bool still_current = outcome.notifications.size() + outcome.held_back.size() == decided;
  reschedule(store, entity, still_current ? &linked : nullptr);
  // An order's timers may depend on its shipment (order rules see it). When
  // this is the shipment the order sees, the order sees what the rules just
  // saw: the same order, shipment and customer.
  if (auto parent = entity.parent(); parent && parent->type == EntityType::kOrder)
    if (auto order = store.entity(*parent)) {
      const auto seen = still_current ? store.latest_child(order->ref, EntityType::kShipment) : std::nullopt;
      const bool same = seen && seen->ref == entity.ref && order->customer_id().value_or("") == linked.customer;
      reschedule(store, *order, same ? &linked : nullptr);
    }
}

Outcome Pipeline::fire_due(std::size_t limit, const std::set<std::string>& cancelling) {
  Outcome outcome;
  const Timestamp now = clock_.now();
  const auto expired = store_.expired_waiting(now, limit);
  if (!expired.empty()) {
    auto transaction = store_.begin();  // one commit for them all: a burst of ends costs one sync
    for (const WaitingIntent& w : expired) {
      transaction->remove_waiting(w.id);
      outcome.problems.push_back({w.rule, "gave_up_waiting",
                                  w.entity.str() + ": rule '" + w.rule + "' waited since " + format_rfc3339(w.since) +
                                      " for " + w.waiting_for.str() + " (" + w.reason + "); given up, nothing sent"});
    }
    transaction->commit();
  }
  if (expired.size() >= limit) return outcome;
  for (const Timer& timer : store_.due_timers(now, limit - expired.size())) {
    if (cancelling.count(timer.rule)) {
      // Fired under the rule as it is now, an old timer of a changed rule
      // could send what its new definition would not, or twice; the new
      // definition's timer is set after the cancellation.
      store_.cancel_timer(timer.rule, timer.entity);
      continue;
    }
    if (cluster_) {
      // Another replica's customer: its owner fires it (mark_timer_fired()
      // keeps it to one firing should both try while a shard changes hands).
      const auto stored = store_.entity(timer.entity);
      if (!owns_key(shard_key(timer.entity, stored ? stored->fields : nlohmann::json::object()))) {
        ++outcome.skipped_timers;
        continue;
      }
    }
    auto transaction = store_.begin();
    if (!transaction->mark_timer_fired(timer)) continue;  // fired or set again since it was read: not this one
    const Rule* rule = snapshot_.rules->find(timer.rule);
    auto entity = transaction->entity(timer.entity);
    if (!rule || !rule->deadline || !entity) {
      transaction->commit();  // the rule or entity is gone: nothing to say any more
      continue;
    }
    if (now - timer.due > snapshot_.config->timer_grace) {
      const std::string customer = entity->customer_id().value_or("");
      NotMadeRecorder{outcome, *transaction, now, rule->id, timer.entity, customer}.problem(
          "timer_late", timer.entity.str() + ": rule '" + rule->id + "' was due at " + format_rfc3339(timer.due) +
                            ", longer ago than [timers] grace allows; skipped");
      transaction->commit();
      continue;
    }
    // The time may have moved since the timer was set (a silence ended by a
    // contact): then the timer is set again instead of fired.
    const auto current = rule->deadline->due(timed_fields(*entity, *transaction));
    if (current && *current > timer.due) {
      transaction->schedule_timer(Timer{rule->id, entity->ref, *current});
      transaction->commit();
      continue;
    }
    const Linked linked = link(*entity, *transaction);
    if (current && (!rule->when || rule->when->test(linked.scope)))
      consider(*transaction, *rule, *entity, linked, std::string(kTimerTrigger) + format_rfc3339(timer.due), nullptr,
               outcome);
    transaction->commit();
  }
  return outcome;
}

std::optional<Timestamp> Pipeline::next_timer() const {
  auto timer = store_.next_timer();
  auto expiry = store_.next_waiting_expiry();
  if (!timer || (expiry && *expiry < *timer)) return expiry;
  return timer;
}

std::optional<std::string> Pipeline::overtaken_by(const StoreRoles& store, const Notification& n, Timestamp now,
                                                  std::optional<Linked>* view) const {
  const Rule* rule = snapshot_.rules->find(n.rule);
  if (!rule) return "rule '" + n.rule + "' no longer exists";
  const auto entity = store.entity(n.entity);
  if (!entity) return n.entity.str() + " is no longer known";
  Linked linked = link(*entity, store);
  const auto seen = [&](const char* type) -> std::string {
    const auto ref = linked_refs(linked.scope);
    for (const EntityRef& r : ref)
      if (to_string(r.type) == type)
        if (auto e = store.entity(r)) return " (observed " + format_rfc3339(e->observed_at, n.time_zone) + ")";
    return {};
  };
  if (const auto customer = linked.scope.find("customer"); customer != linked.scope.end()) {
    if (auto opt_out = customer->find("opt_out"); opt_out != customer->end() && *opt_out == true)
      return "the customer opted out" + seen("customer");
  }
  if (auto o = store.opt_out(n.customer, n.channel, address_key(n.channel, n.to)))
    return "the customer opted out of " + std::string(to_string(n.channel)) + " (replied STOP at " +
           format_rfc3339(o->at, n.time_zone) + ")";
  if (rule->trigger && rule->trigger->target == Trigger::Target::kValues) {
    const std::string type(to_string(rule->trigger->entity));
    nlohmann::json value;
    if (auto scope = linked.scope.find(type); scope != linked.scope.end())
      if (auto field = scope->find(rule->trigger->field); field != scope->end()) value = *field;
    if (!rule->trigger->matches(Event{n.entity, rule->trigger->field, nullptr, value, now}))
      return "its trigger was undone: " + type + "." + rule->trigger->field + " is now " +
             (value.is_null() ? std::string("unset") : value.dump()) + seen(type.c_str());
  }
  if (rule->when && !rule->when->test(linked.scope)) {
    std::string latest;
    Timestamp newest{};
    for (const EntityRef& r : linked_refs(linked.scope))
      if (auto e = store.entity(r); e && e->observed_at >= newest) {
        newest = e->observed_at;
        latest = r.str() + " observed " + format_rfc3339(e->observed_at, n.time_zone);
      }
    return "its condition no longer holds (" + rule->when->text() + "), as of " + latest;
  }
  if (view) *view = std::move(linked);
  return std::nullopt;
}

std::optional<Notification> Pipeline::release(StoreRoles& store, const OutboxEntry& entry, Outcome& outcome) {
  const Notification& n = entry.notification;
  // A message with an action was rendered before its answer came: always rendered again.
  if (n.action.empty() && unchanged_since_rendered(entry)) return n;  // the slow way would come to the same message
  const Timestamp now = clock_.now();
  // tactd's own messages (an opt-out's confirmation) follow no rule.
  if (n.rule.starts_with(kOwnRulePrefix)) return n;
  std::optional<Linked> view;
  if (auto why = overtaken_by(store, n, now, &view)) {
    if (store.mark_overtaken(entry.id, now, *why)) {
      outcome.held_back.push_back({n.rule, n.entity, "overtaken", *why});
      reschedule_customer(store, n.customer);  // what was never sent ends no silence
    }
    return std::nullopt;
  }
  // A person is talking with the customer about it (they replied): it
  // waits until the pause ends, and is looked at again then.
  if (auto pause = store.paused(n.entity, now)) {
    const std::string why = "waits until " + format_rfc3339(pause->until, n.time_zone) + " (paused): " + pause->reason;
    if (store.postpone(entry.id, now, pause->until, why)) outcome.deferred.push_back({n.rule, n.entity, "paused", why});
    return std::nullopt;
  }
  // Still right: rendered again with what is known now (a newer ETA, a
  // corrected name), to the customer's current address on the same channel.
  const Rule& rule = *snapshot_.rules->find(n.rule);
  const Linked& linked = *view;
  MessageContext context = message_context(store, rule, n.entity, linked, n.event);
  context.locale = n.locale;         // the language it was decided in stays
  context.action = n.action_answer;  // what its action answered, stored with the row
  std::string error;
  auto rendered =
      snapshot_.templates->render(context.locale, rule.template_name, n.channel, template_data(context), error);
  if (!rendered) return n;  // the message as decided is still better than none
  Notification current = n;
  current.subject = rendered->subject;
  current.body = rendered->body;
  if (const auto customer = linked.scope.find("customer"); customer != linked.scope.end()) {
    std::string to = text_field(*customer, n.channel == Channel::kEmail ? "email" : "phone");
    if (!to.empty()) current.to = std::move(to);
  }
  if (current.body != n.body || current.subject != n.subject || current.to != n.to) {
    store.update_message(entry.id, current);
    store.record_decision(entry.id, now, "re-rendered", "rendered again with the data known at release");
  }
  return current;
}

void Pipeline::message_died(const std::string& customer) {
  auto transaction = store_.begin();
  reschedule_customer(*transaction, customer);
  transaction->commit();
}

std::optional<std::string> Pipeline::reschedule_known(EntityType type, const std::string& after_id, std::size_t limit) {
  auto transaction = store_.begin();
  const std::vector<Entity> page = transaction->entities(type, after_id, limit);
  for (const Entity& entity : page) reschedule(*transaction, entity);
  transaction->commit();
  if (page.empty()) return std::nullopt;
  return page.back().ref.id;
}

void Pipeline::reschedule_customer(StoreRoles& store, const std::string& customer) {
  if (auto entity = store.entity(EntityRef{EntityType::kCustomer, customer})) reschedule(store, *entity);
}

void Pipeline::reschedule(StoreRoles& store, const Entity& entity, const Linked* known) {
  std::optional<Linked> read;  // when not `known`, read once when a rule needs it
  std::optional<Fields> fields;
  for (const Rule& rule : snapshot_.rules->rules()) {
    if (!rule.deadline || rule.deadline->entity != entity.ref.type) continue;
    if (!fields) fields = timed_fields(entity, store);
    const auto due = rule.deadline->due(*fields);
    if (due && rule.when) {
      if (!known && !read) read = link(entity, store);
      if (!rule.when->test((known ? *known : *read).scope)) {
        store.cancel_timer(rule.id, entity.ref);  // no longer qualifies
        continue;
      }
    }
    if (due)
      store.schedule_timer(Timer{rule.id, entity.ref, *due});
    else
      store.cancel_timer(rule.id, entity.ref);
  }
}

MessageContext Pipeline::message_context(const StoreRoles& store, const Rule& rule, const EntityRef& entity,
                                         const Linked& linked, const nlohmann::json& event) const {
  const Config& config = *snapshot_.config;
  const nlohmann::json null;
  const nlohmann::json& customer = linked.scope.contains("customer") ? linked.scope["customer"] : null;
  MessageContext context;
  context.rule = rule.id;
  context.kind = rule.kind;
  context.entity = entity;
  context.entities = linked.scope;
  context.event = event;
  context.history = store.contacts(linked.customer);
  context.locale = choose_locale(customer, config);
  context.time_zone = customer_time_zone(customer, config);
  context.merchant = choose_merchant(linked.scope, config);
  return context;
}

std::optional<MessageContext> Pipeline::preview_context(const Rule& rule, const EntityRef& entity) const {
  auto known = store_.entity(entity);
  if (!known) return std::nullopt;
  // The entity must be in a state the rule fires into: its trigger's value,
  // or its deadline's time set.
  if (rule.trigger) {
    const auto& value = known->field(rule.trigger->field);
    if (value.is_null() ||
        !rule.trigger->matches(Event{entity, rule.trigger->field, nullptr, value, known->observed_at}))
      return std::nullopt;
  } else if (!rule.deadline || !rule.deadline->due(timed_fields(*known, store_))) {
    return std::nullopt;
  }
  const Linked linked = link(*known, store_);
  if (rule.when && !rule.when->test(linked.scope)) return std::nullopt;
  return message_context(store_, rule, entity, linked, nullptr);
}

bool Pipeline::consider(StoreRoles& store, const Rule& rule, const Entity& entity, const Linked& linked,
                        const std::string& trigger, const nlohmann::json& event, Outcome& outcome) {
  const Timestamp now = clock_.now();
  const Config& config = *snapshot_.config;
  const NotMadeRecorder not_made{outcome, store, now, rule.id, entity.ref, linked.customer};
  if (linked.customer.empty()) {
    if (auto missing = missing_link(entity, store))
      return wait_for(store, rule, entity, trigger, event, *missing, missing->str() + " has not been observed yet",
                      outcome);
    not_made.problem("no_customer", entity.ref.str() + ": rule '" + rule.id +
                                        "' fired, but the entity names no customer (fields.customer, or fields.order "
                                        "for a shipment)");
    return false;
  }
  if (rule.min_notice > Duration::zero()) {
    if (auto problem = notice_shortfall(rule, linked.scope, now)) {
      not_made.problem("short_notice", entity.ref.str() + ": rule '" + rule.id + "': " + *problem);
      return false;
    }
  }
  // Supersession: a pending message of a rule that supersedes this one, about
  // the same or a linked entity, holds this one back.
  const std::vector<EntityRef> related = linked_refs(linked.scope);
  for (const EntityRef& ref : related) {
    for (const OutboxEntry& pending : store.pending_about(ref)) {
      const Rule* other = snapshot_.rules->find(pending.notification.rule);
      if (other && std::count(other->supersedes.begin(), other->supersedes.end(), rule.id)) {
        // A waiting message the world has overtaken holds nothing back. One
        // on its way (claimed, its request out) may reach the customer: it
        // is left to its verdict, or to the restart that finds it cut off,
        // which record what happened; a release check overtakes it if it
        // is ever sent again.
        if (auto why = overtaken_by(store, pending.notification, now)) {
          if (!pending.sending_since && store.mark_overtaken(pending.id, now, *why)) {
            outcome.held_back.push_back({other->id, pending.notification.entity, "overtaken", *why});
            reschedule_customer(store, pending.notification.customer);
          }
          continue;
        }
        not_made.held_back("superseded",
                           "superseded by the pending message of rule '" + other->id + "' about " + ref.str());
        return false;
      }
    }
  }
  const nlohmann::json null;
  const nlohmann::json& customer = linked.scope.contains("customer") ? linked.scope["customer"] : null;
  const Intent intent{rule.id, rule.kind, entity.ref, linked.customer, trigger, now};
  const Decision decision = Policy(config, store, store).decide(rule, intent, customer, now);
  if (decision.verdict == Decision::Verdict::kHeldBack) {
    // A duplicate's record is the message already in the outbox.
    if (decision.code == "duplicate")
      outcome.held_back.push_back({rule.id, entity.ref, decision.code, decision.reason});
    else
      not_made.held_back(decision.code, decision.reason);
    return false;
  }
  if (decision.verdict == Decision::Verdict::kUnreachable &&
      (decision.code == "unknown_customer" || decision.code == "no_channel"))
    return wait_for(store, rule, entity, trigger, event, EntityRef{EntityType::kCustomer, linked.customer},
                    decision.reason, outcome);
  if (decision.verdict == Decision::Verdict::kUnreachable) {
    not_made.problem(decision.code, entity.ref.str() + ": " + decision.reason);
    return false;
  }
  if (std::string missing = missing_fields(rule.required, linked.scope); !missing.empty()) {
    not_made.problem("missing_field", entity.ref.str() + ": rule '" + rule.id + "': " + missing +
                                          ", which the message cannot go without. Not sent to the customer: contact "
                                          "them personally, and complete the data at the source");
    return false;
  }
  const MessageContext context = message_context(store, rule, entity.ref, linked, event);
  std::string error;
  auto rendered =
      snapshot_.templates->render(context.locale, rule.template_name, decision.channel, template_data(context), error);
  if (!rendered) {
    not_made.problem("render_failed", entity.ref.str() + ": rule '" + rule.id + "': " + error);
    return false;
  }
  Notification notification{idempotency_key(intent, rule.once), decision.send_at, rule.id, rule.kind, linked.customer,
                            entity.ref, decision.channel, decision.to, rendered->subject, rendered->body,
                            context.locale, context.time_zone, event,
                            // Its action is taken by the delivery side when it falls due; until
                            // then it is rendered without one (an optional action not configured: never).
                            config.action(rule.action) ? rule.action : std::string(), nullptr};
  const std::string why = decision.code.empty()
                              ? std::string()
                              : "waits until " + format_rfc3339(decision.send_at, context.time_zone) + " (" +
                                    decision.code + ")" + (decision.reason.empty() ? "" : ": " + decision.reason);
  if (!store.enqueue(notification, why)) {
    outcome.held_back.push_back({rule.id, entity.ref, "duplicate", "already in the outbox"});
    return false;
  }
  // This message makes the pending ones of the rules it supersedes moot.
  for (const EntityRef& ref : related) {
    for (const OutboxEntry& pending : store.pending_about(ref)) {
      const auto& superseded = rule.supersedes;
      if (std::count(superseded.begin(), superseded.end(), pending.notification.rule) && store.drop(pending.id)) {
        const std::string reason = "superseded by rule '" + rule.id + "' about " + entity.ref.str();
        store.record_decision(pending.id, now, "dropped", reason);
        outcome.held_back.push_back(
            {pending.notification.rule, ref, "superseded", "pending message dropped: " + reason});
      }
    }
  }
  if (!decision.code.empty()) outcome.deferred.push_back({rule.id, entity.ref, decision.code, why});
  remember_rendered(store, rule, notification, linked);
  outcome.notifications.push_back(std::move(notification));
  reschedule_customer(store, linked.customer);  // a contact ends the customer's silence: their timers move
  return false;
}

void Pipeline::set_snapshot(Snapshot snapshot) {
  // What the release check and its rendering read of a snapshot: each
  // rule's definition, the templates' sources, and the settings that pick
  // a message's language, time zone and merchant.
  const auto alike = [](const Snapshot& a, const Snapshot& b) {
    const Config& x = *a.config;
    const Config& y = *b.config;
    if (x.merchant != y.merchant || x.default_locale != y.default_locale || x.locales != y.locales ||
        x.default_time_zone != y.default_time_zone)
      return false;
    if (a.rules->rules().size() != b.rules->rules().size()) return false;
    for (const Rule& rule : a.rules->rules()) {
      const Rule* other = b.rules->find(rule.id);
      if (!other || other->definition != rule.definition) return false;
    }
    return a.templates->same_sources(*b.templates);
  };
  if (!alike(snapshot_, snapshot)) changed_everything();
  snapshot_ = std::move(snapshot);
}

void Pipeline::changed(const std::string& customer) {
  if (customer_changed_.size() >= kMaxChanged) {
    // What changed before the oldest rendering still remembered matters no more.
    std::uint64_t oldest = generation_ + 1;
    for (std::size_t i = rendered_head_; i < rendered_.size(); ++i)
      if (rendered_[i].second != 0) oldest = std::min(oldest, rendered_[i].second);
    std::erase_if(customer_changed_, [&](const auto& change) { return change.second < oldest; });
    if (customer_changed_.size() >= kMaxChanged / 2) {  // still too many: forget them, and every shortcut with them
      customer_changed_.clear();
      changed_everything();
    }
  }
  customer_changed_[std::hash<std::string>{}(customer)] = ++generation_;
}

void Pipeline::entity_written(const EntityStore& store, const Entity& entity, const Entity* previous) {
  // Its links moved (another parent or customer): whose messages saw it
  // before is not known here.
  if (previous && (previous->parent() != entity.parent() || previous->customer_id() != entity.customer_id())) {
    changed_everything();
    return;
  }
  // The messages that see this entity are about it, its parent (an order
  // sees its latest shipment; a customer counts their delivered orders) or
  // its children, all of one customer (remember_rendered() makes sure):
  // the customer it names, or its parents' (a shipment names its order).
  if (entity.ref.type == EntityType::kCustomer) return changed(entity.ref.id);
  if (auto customer = entity.customer_id()) return changed(*customer);
  auto parent = entity.parent();
  for (int depth = 0; parent && depth < 4; ++depth) {  // as deep as link() looks
    if (parent->type == EntityType::kCustomer) return changed(parent->id);
    const auto known = store.entity(*parent);
    if (!known) break;
    if (auto customer = known->customer_id()) return changed(*customer);
    parent = known->parent();
  }
  changed_everything();  // no customer found: it may yet be linked to anyone's
}

void Pipeline::remember_rendered(const OutboxStore& store, const Rule& rule, const Notification& n,
                                 const Linked& linked) {
  if (!n.action.empty()) return;  // rendered again with its action's answer in any case
  // What the release check reads of the outbox changes with this very
  // enqueue (`sent`, last_contact_at) or with deliveries (`history`);
  // partials and changed delimiters may hide such a name.
  static constexpr std::array<std::string_view, 6> kOutboxNames = {"sent", "last_contact_at", "history", "{{>", "{{ >",
                                                                   "{{="};
  const auto mentions = [](std::string_view text) {
    return std::any_of(kOutboxNames.begin(), kOutboxNames.end(),
                       [&](std::string_view name) { return text.find(name) != std::string_view::npos; });
  };
  if (rule.when && mentions(rule.when->text())) return;
  if (rule.trigger && mentions(rule.trigger->field)) return;
  const TemplateSet::Template* source = snapshot_.templates->find(n.locale, rule.template_name, n.channel);
  if (!source || mentions(source->subject) || mentions(source->body)) return;
  // Every entity it sees names its customer, or none: a change of any of
  // them marks that customer (entity_written(store, )).
  for (const auto& [type, fields] : linked.scope.items()) {
    if (!fields.is_object()) return;
    const auto named = fields.find(type == "customer" ? "id" : "customer");
    if (named != fields.end() && (!named->is_string() || named->get<std::string>() != n.customer)) return;
  }
  // The release check takes the customer's current address: the same one.
  if (const auto customer = linked.scope.find("customer"); customer != linked.scope.end()) {
    const std::string to = text_field(*customer, n.channel == Channel::kEmail ? "email" : "phone");
    if (!to.empty() && to != n.to) return;
  }
  if (!data_version_) data_version_ = store_.data_version();
  const long long id = store.last_enqueued();
  if (!rendered_.empty() && rendered_.back().first >= id) return;
  if (rendered_.size() >= kMaxRendered) {  // drop the released ones; when all are waiting, remember no more
    std::erase_if(rendered_, [](const auto& entry) { return entry.second == 0; });
    rendered_head_ = 0;
    if (rendered_.size() >= kMaxRendered) return;
  }
  rendered_.emplace_back(id, generation_);
}

bool Pipeline::unchanged_since_rendered(const OutboxEntry& entry) {
  const auto first = rendered_.begin() + static_cast<std::ptrdiff_t>(rendered_head_);
  const auto found = std::lower_bound(first, rendered_.end(), entry.id,
                                      [](const auto& rendered, long long id) { return rendered.first < id; });
  if (found == rendered_.end() || found->first != entry.id || found->second == 0) return false;
  const std::uint64_t at = std::exchange(found->second, 0);  // released: a second look reads everything
  while (rendered_head_ < rendered_.size() && rendered_[rendered_head_].second == 0) ++rendered_head_;
  if (rendered_head_ == rendered_.size()) {
    rendered_.clear();
    rendered_head_ = 0;
  }
  if (const long long version = store_.data_version(); version != data_version_) {
    data_version_ = version;  // someone else wrote: whatever, whoever
    changed_everything();
  }
  if (at < everything_changed_at_) return false;
  const auto change = customer_changed_.find(std::hash<std::string>{}(entry.notification.customer));
  return change == customer_changed_.end() || change->second <= at;
}

bool Pipeline::wait_for(StoreRoles& store, const Rule& rule, const Entity& entity, const std::string& trigger,
                        const nlohmann::json& event, const EntityRef& missing, const std::string& reason,
                        Outcome& outcome) {
  const Timestamp now = clock_.now();
  // A timer waits within [timers] grace of its due time, a change within
  // [policy] wait_for_links of now.
  Timestamp until = now + snapshot_.config->wait_for_links;
  if (trigger.rfind(kTimerTrigger, 0) == 0)
    if (auto due = parse_rfc3339(trigger.substr(kTimerTrigger.size()))) until = *due + snapshot_.config->timer_grace;
  store.add_waiting(WaitingIntent{0, rule.id, entity.ref, trigger, event, missing, now, until, reason});
  outcome.deferred.push_back({rule.id, entity.ref, "waiting_for_link",
                              reason + "; waits for " + missing.str() + " until " + format_rfc3339(until)});
  return true;
}

void Pipeline::resume_waiting(StoreRoles& store, const EntityRef& arrived, Outcome& outcome) {
  for (const WaitingIntent& w : store.waiting_for(arrived)) {
    const Rule* rule = snapshot_.rules->find(w.rule);
    const auto entity = store.entity(w.entity);
    if (!rule || !entity) {
      store.remove_waiting(w.id);
      continue;
    }
    const Linked linked = link(*entity, store);
    if (rule->when && !rule->when->test(linked.scope)) {
      store.remove_waiting(w.id);
      outcome.held_back.push_back({rule->id, entity->ref, "overtaken",
                                   "while it waited for " + w.waiting_for.str() + ", its condition stopped holding (" +
                                       rule->when->text() + ")"});
      continue;
    }
    if (!consider(store, *rule, *entity, linked, w.trigger, w.event, outcome)) store.remove_waiting(w.id);
  }
}

}  // namespace tactd
