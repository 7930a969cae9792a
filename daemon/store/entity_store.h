// The entity-snapshot role of the store: the latest snapshot of each
// customer, order, shipment and subscription, and how they link.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/entity.h"

namespace tactd {

// A phone number as the search by contact detail compares it: without the
// characters people write between its digits (kPhoneSeparators). The index
// of migration 23 holds the same of every customer's fields.phone (SQLite:
// nested replace(); PostgreSQL: translate()), so both sides are normalised
// the same way. Empty when nothing is left.
inline constexpr std::string_view kPhoneSeparators = " -+()./";
inline std::string phone_key(std::string_view phone) {
  std::string out;
  for (const char c : phone)
    if (kPhoneSeparators.find(c) == std::string_view::npos) out += c;
  return out;
}

// Implementations throw StoreError (store_error.h). Through a
// Store::Transaction, each call runs within it; on the Store, in a
// transaction of its own (refused, std::logic_error, while a Transaction is
// open: store.h).
class EntityStore {
 public:
  virtual std::optional<Entity> entity(const EntityRef& ref) const = 0;
  // Inserts or replaces the snapshot, as a compare-and-set on its version:
  // with `entity.version` 0 it must not be stored yet; else the stored one
  // must still be that version. Otherwise another writer stored it since it
  // was read, and StoreError says so, writing nothing (the transaction is
  // to be run again from a fresh read). The stored version is then one
  // higher. Records its parent (Entity::parent()) so that latest_child()
  // and count_children() can find it. `first_seen` is recorded when the
  // entity is new (unset: its observed_at) and kept afterwards.
  virtual void put_entity(const Entity& entity) = 0;
  // The snapshot `entity` (as read) was observed again, unchanged, at
  // `observed_at`: only its time moves (a re-observation; cheaper than
  // rewriting the whole row). A compare-and-set on the version like
  // put_entity(), which it leaves as it is.
  virtual void touch_entity(const Entity& entity, Timestamp observed_at) = 0;
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

  // The customer's own entity and the entities linked to it (its orders,
  // subscriptions and payments, and those orders' shipments), the most
  // recently observed first: at most `limit`, the newest, through an index
  // on the customer, so that the cost follows `limit`, not the history.
  virtual std::vector<Entity> customer_entities(const std::string& customer, std::size_t limit) const = 0;
  // The ids of the customers whose entity has `contact` as fields.email
  // (compared without regard to ASCII case) or whose fields.phone has the
  // same phone_key() as `contact` ("+31 6 1234 5678" finds "+31612345678"),
  // in id order, at most `limit`: through indexes on both (migrations 18
  // and 23), for the operators' console's search by contact detail.
  virtual std::vector<std::string> customers_by_contact(const std::string& contact, std::size_t limit) const = 0;

 protected:
  ~EntityStore() = default;
};

}  // namespace tactd
