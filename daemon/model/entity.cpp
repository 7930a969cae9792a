#include "model/entity.h"

#include <array>
#include <set>

#include "model/json_text.h"

namespace tactd {
namespace {

constexpr std::array<std::pair<EntityType, std::string_view>, 5> kEntityTypes{{
    {EntityType::kCustomer, "customer"},
    {EntityType::kOrder, "order"},
    {EntityType::kShipment, "shipment"},
    {EntityType::kSubscription, "subscription"},
    {EntityType::kPayment, "payment"},
}};

const nlohmann::json kNull = nullptr;

std::optional<std::string> string_field(const Fields& fields, const char* name) {
  std::string text = text_field(fields, name);
  if (text.empty()) return std::nullopt;
  return text;
}

}  // namespace

std::string text_field(const Fields& fields, std::string_view name) {
  auto it = fields.find(name);
  return it != fields.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string_view to_string(EntityType type) {
  for (const auto& [t, name] : kEntityTypes)
    if (t == type) return name;
  return "?";
}

std::optional<EntityType> parse_entity_type(std::string_view text) {
  for (const auto& [t, name] : kEntityTypes)
    if (name == text) return t;
  return std::nullopt;
}

std::string_view entity_type_list() { return "customer, order, shipment, subscription, payment"; }

std::string EntityRef::str() const { return std::string(to_string(type)) + "/" + id; }

std::optional<EntityRef> parse_entity_ref(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash + 1 == text.size()) return std::nullopt;
  auto type = parse_entity_type(text.substr(0, slash));
  if (!type) return std::nullopt;
  return EntityRef{*type, std::string(text.substr(slash + 1))};
}

namespace {

// observation_from_json(); with `owned` (the same document, which the
// caller gives up: parse_observation) `fields` is moved out of it instead
// of copied. The copies were the most memory held while pushes wait for
// their group commit (docs/performance.md, Memory).
std::optional<Observation> observation_of(const nlohmann::json& doc, nlohmann::json* owned, std::string& error);

}  // namespace

std::optional<Observation> parse_observation(std::string_view json_text, std::string& error) {
  auto doc = parse_json_text(json_text, error);
  if (!doc) return std::nullopt;
  return observation_of(*doc, &*doc, error);
}

std::optional<Observation> observation_from_json(const nlohmann::json& doc, std::string& error) {
  return observation_of(doc, nullptr, error);
}

namespace {

std::optional<Observation> observation_of(const nlohmann::json& doc, nlohmann::json* owned, std::string& error) {
  if (!doc.is_object()) {
    error = "an observation must be a JSON object with type, id, observed_at and fields";
    return std::nullopt;
  }
  Observation out;
  auto type = doc.find("type");
  if (type == doc.end() || !type->is_string()) {
    error = "field 'type' is missing or not a string (expected one of " + std::string(entity_type_list()) + ")";
    return std::nullopt;
  }
  auto parsed_type = parse_entity_type(type->get_ref<const std::string&>());
  if (!parsed_type) {
    error = "field 'type': '" + type->get<std::string>() + "' is not an entity type (expected one of " +
            std::string(entity_type_list()) + ")";
    return std::nullopt;
  }
  out.ref.type = *parsed_type;
  auto id = doc.find("id");
  auto id_value = id_text(id == doc.end() ? nlohmann::json() : *id, "field 'id'", error);
  if (!id_value) return std::nullopt;
  out.ref.id = std::move(*id_value);
  auto observed = doc.find("observed_at");
  if (observed == doc.end() || !observed->is_string()) {
    error = "field 'observed_at' is missing or not a string (expected an RFC 3339 date-time)";
    return std::nullopt;
  }
  std::string time_error;
  auto at = parse_rfc3339(observed->get_ref<const std::string&>(), &time_error);
  if (!at) {
    error = "field 'observed_at': " + time_error;
    return std::nullopt;
  }
  out.observed_at = *at;
  auto fields = doc.find("fields");
  if (fields == doc.end() || !fields->is_object()) {
    error = "field 'fields' is missing or not an object";
    return std::nullopt;
  }
  if (owned)
    out.fields = std::move((*owned)["fields"]);
  else
    out.fields = *fields;
  if (auto partial = doc.find("partial"); partial != doc.end()) {
    if (!partial->is_boolean()) {
      error = "field 'partial' must be true (only the fields named change) or false (a full snapshot)";
      return std::nullopt;
    }
    out.partial = partial->get<bool>();
  }
  for (const char* link : {"customer", "order"}) {
    auto l = out.fields.find(link);
    if (l != out.fields.end() && !l->is_string() && !l->is_null()) {
      error = std::string("field 'fields.") + link + "' must be a string id";
      return std::nullopt;
    }
  }
  return out;
}

}  // namespace

nlohmann::json to_json(const Observation& observation) {
  nlohmann::json doc{{"type", to_string(observation.ref.type)},
                     {"id", observation.ref.id},
                     {"observed_at", format_rfc3339(observation.observed_at)},
                     {"fields", observation.fields}};
  if (observation.partial) doc["partial"] = *observation.partial;
  return doc;
}

const nlohmann::json& Entity::field(std::string_view name) const {
  auto it = fields.find(name);
  return it == fields.end() ? kNull : *it;
}

std::optional<std::string> Entity::customer_id() const {
  if (ref.type == EntityType::kCustomer) return ref.id;
  return string_field(fields, "customer");
}

std::optional<EntityRef> Entity::parent() const {
  switch (ref.type) {
    case EntityType::kCustomer:
      return std::nullopt;
    case EntityType::kShipment:
      if (auto order = string_field(fields, "order")) return EntityRef{EntityType::kOrder, *order};
      if (auto customer = string_field(fields, "customer")) return EntityRef{EntityType::kCustomer, *customer};
      return std::nullopt;
    default:
      if (auto customer = string_field(fields, "customer")) return EntityRef{EntityType::kCustomer, *customer};
      return std::nullopt;
  }
}

std::vector<Event> diff(const Entity* previous, const Observation& observation) {
  const Entity current = merge(previous, observation);
  std::set<std::string> names;  // in field-name order
  for (const Fields* fields : {previous ? &previous->fields : nullptr, &current.fields})
    if (fields)
      for (auto it = fields->begin(); it != fields->end(); ++it) names.insert(it.key());
  std::vector<Event> events;
  for (const std::string& name : names) {
    const nlohmann::json& old_value = previous ? previous->field(name) : kNull;
    const nlohmann::json& new_value = current.field(name);
    if (old_value != new_value)
      events.push_back(Event{observation.ref, name, old_value, new_value, observation.observed_at});
  }
  return events;
}

Entity merge(const Entity* previous, const Observation& observation) {
  Entity out{observation.ref, observation.observed_at,
             previous && observation.is_partial() ? previous->fields : Fields::object(),
             previous ? previous->first_seen : std::nullopt, previous ? previous->version : 0};
  for (auto it = observation.fields.begin(); it != observation.fields.end(); ++it) {
    if (it.value().is_null())
      out.fields.erase(it.key());
    else
      out.fields[it.key()] = it.value();
  }
  return out;
}

}  // namespace tactd
