// Observations, entities and the events that diffing them yields.
//
// Field values are JSON values (nlohmann::json): strings, numbers, booleans,
// lists and objects, exactly as a source reported them. A field that is
// absent and a field that is null are the same to rules and templates.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/time.h"

namespace tactd {

using Fields = nlohmann::json;  // always a JSON object

enum class EntityType { kCustomer, kOrder, kShipment, kSubscription, kPayment };

// The string field `name` of `fields`, or "" when absent or not a string.
std::string text_field(const Fields& fields, std::string_view name);

std::string_view to_string(EntityType type);
std::optional<EntityType> parse_entity_type(std::string_view text);
// "customer, order, shipment, subscription, payment" for error messages.
std::string_view entity_type_list();

// Identifies one entity: `order/A-1001`.
struct EntityRef {
  EntityType type = EntityType::kCustomer;
  std::string id;

  std::string str() const;
  friend bool operator==(const EntityRef&, const EntityRef&) = default;
};

std::optional<EntityRef> parse_entity_ref(std::string_view text);

// A snapshot of one entity as a source sees it now.
struct Observation {
  EntityRef ref;
  Timestamp observed_at;
  Fields fields = Fields::object();
  // A partial update names only some fields: those it leaves out keep their
  // value. A full snapshot names them all: those it leaves out are cleared.
  // Unset: the source's default (docs/observations.md), else partial.
  std::optional<bool> partial;

  bool is_partial() const { return partial.value_or(true); }
};

// Parses one JSON observation (the contract in DESIGN.md). On failure returns
// nullopt and sets `error` to what is wrong, e.g.
// "field 'observed_at': '2026-13-01' is not an RFC 3339 date-time".
// The text is read by parse_json_text (json_text.h): its depth and number
// limits apply.
std::optional<Observation> parse_observation(std::string_view json_text, std::string& error);
std::optional<Observation> observation_from_json(const nlohmann::json& doc, std::string& error);
nlohmann::json to_json(const Observation& observation);

// The last known snapshot of an entity.
struct Entity {
  EntityRef ref;
  Timestamp observed_at;
  Fields fields = Fields::object();
  // When tactd first stored the entity (not the source's observed_at); unset
  // for one not stored yet.
  std::optional<Timestamp> first_seen;
  // The store's version of the snapshot this one was read as or derived
  // from (merge() keeps it): 0 for an entity not stored yet. Writing it
  // back checks the stored one is still that version (EntityStore), so
  // that two writers cannot both build on the same snapshot.
  long long version = 0;

  // The value of `field`, or null when absent.
  const nlohmann::json& field(std::string_view name) const;
  // The customer this entity belongs to: its own id for a customer, else
  // `fields.customer` when it is a string. Shipments have none of their own.
  std::optional<std::string> customer_id() const;
  // The linked parent: a shipment's order (`fields.order`), an order's,
  // subscription's or payment's customer.
  std::optional<EntityRef> parent() const;
};

// One field of one entity that changed value. `old_value` is null when the
// field was absent (and always for an entity seen for the first time).
struct Event {
  EntityRef entity;
  std::string field;
  nlohmann::json old_value;
  nlohmann::json new_value;
  Timestamp at;
};

// A field set to null is cleared; a field the observation leaves out keeps
// its last known value when it is partial (Observation::is_partial) and is
// cleared when it is a full snapshot.
//
// Compares a new observation with the last known snapshot (nullptr when the
// entity is new) and returns one event per changed field (a cleared field's
// new value is null), in field-name order. Identical data yields no events.
std::vector<Event> diff(const Entity* previous, const Observation& observation);

// The snapshot after applying `observation` to `previous` (nullptr if new);
// it keeps `previous->first_seen`.
Entity merge(const Entity* previous, const Observation& observation);

}  // namespace tactd
