// The timer role of the store: when rules look at entities again (`at`
// rules), and the intents that wait for linked data to be observed.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "model/entity.h"

namespace tactd {

// A scheduled time at which a rule looks at an entity again (an `at` rule).
struct Timer {
  std::string rule;
  EntityRef entity;
  Timestamp due;
};

// What one TimerStore::cancel_timers() call removed.
struct CancelledTimers {
  std::size_t removed = 0;  // timers removed, fired or not
  std::size_t unfired = 0;  // of those, the ones still to fire
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

// Implementations throw StoreError (store_error.h). Through a
// Store::Transaction, each call runs within it; on the Store, in a
// transaction of its own (refused, std::logic_error, while a Transaction is
// open: store.h).
class TimerStore {
 public:
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
  // Fires the timer scheduled for exactly `timer.due`, as a compare-and-set:
  // true for the one caller that turned it from unfired to fired; false,
  // changing nothing, when it already fired or was set to another time
  // since it was read (due_timers()), so that no schedule fires twice.
  virtual bool mark_timer_fired(const Timer& timer) = 0;
  // Removes up to `limit` timers of `rule` (a rule removed or changed by a
  // reload), fired or not, in no particular order. A rule may have a timer
  // per entity (millions): call again until fewer than `limit` were
  // removed, so that each call is a short transaction.
  virtual CancelledTimers cancel_timers(const std::string& rule, std::size_t limit) = 0;
  // How many timers are still to fire.
  virtual std::size_t pending_timers() const = 0;

 protected:
  ~TimerStore() = default;
};

// Implementations throw StoreError (store_error.h). Through a
// Store::Transaction, each call runs within it; on the Store, in a
// transaction of its own (refused, std::logic_error, while a Transaction is
// open: store.h).
class WaitingStore {
 public:
  // Adds the intent, or, for the same rule, entity and trigger, updates what
  // it waits for and why (its `since` and `until` stay).
  virtual void add_waiting(const WaitingIntent& intent) = 0;
  // Intents waiting for `ref`, oldest first.
  virtual std::vector<WaitingIntent> waiting_for(const EntityRef& ref) const = 0;
  // Intents whose wait ended at or before `now`, oldest first, at most `limit`.
  virtual std::vector<WaitingIntent> expired_waiting(Timestamp now, std::size_t limit) const = 0;
  virtual std::optional<Timestamp> next_waiting_expiry() const = 0;
  virtual void remove_waiting(long long id) = 0;

 protected:
  ~WaitingStore() = default;
};

}  // namespace tactd
