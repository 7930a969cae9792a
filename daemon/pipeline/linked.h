// Derived facts: what rules and templates see of an entity besides its own
// snapshot -- the entities it links to, the kinds of message already sent
// about each, and for its customer the last contact and the number of
// delivered orders. Private to the pipeline component.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/entity.h"
#include "store/store.h"

namespace tactd {

// The entity and the entities it links to, keyed by type
// ({"shipment": {...}, "order": {...}, "customer": {...}}), and the id of
// the customer it belongs to (empty when none is named).
struct Linked {
  nlohmann::json scope = nlohmann::json::object();
  std::string customer;
};

// The first entity `entity` links to that is not in `store` (the order of
// a shipment, the customer of an order), or nullopt when every link is known.
std::optional<EntityRef> missing_link(const Entity& entity, const StoreRoles& store);

// Follows `entity`'s links in `store` (shipment -> order -> customer; an
// order also sees its most recently observed shipment). Reads only.
Linked link(const Entity& entity, const StoreRoles& store);

// The fields deadlines read: for a customer, with `last_contact_at` derived
// (the later of the source's value and the newest pending or delivered
// notification; without either, `customer_since` or when tactd first saw
// the customer), so that `at = "customer.last_contact_at + 180d"` is a
// silence.
Fields timed_fields(const Entity& entity, const StoreRoles& store);

}  // namespace tactd
