// The entity-snapshot role of the store: the latest snapshot of each
// customer, order, shipment and subscription, and how they link.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "model/entity.h"

namespace tactd {

// Implementations throw StoreError (store_error.h).
class EntityStore {
 public:
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

 protected:
  ~EntityStore() = default;
};

}  // namespace tactd
