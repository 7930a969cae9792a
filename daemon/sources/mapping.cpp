#include "sources/mapping.h"

#include "model/json_text.h"

namespace tactd {
namespace {

// The value at `pointer`, or nullptr when there is none.
const nlohmann::json* find(const nlohmann::json& record, const std::string& pointer) {
  try {
    const nlohmann::json::json_pointer at(pointer);
    return record.contains(at) ? &record.at(at) : nullptr;
  } catch (const nlohmann::json::exception&) {
    return nullptr;  // e.g. "/items/x" into an array
  }
}

std::string as_text(const nlohmann::json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

}  // namespace

std::optional<Observation> map_record(const Mapping& mapping, const nlohmann::json& record, Timestamp now,
                                      std::string& error) {
  Observation out;
  out.ref.type = mapping.type;
  const nlohmann::json* id = find(record, mapping.id);
  if (!id || id->is_null()) {
    error = "no id at " + mapping.id;
    return std::nullopt;
  }
  auto id_value = id_text(*id, "id at " + mapping.id, error);
  if (!id_value) return std::nullopt;
  out.ref.id = std::move(*id_value);
  out.observed_at = now;
  if (!mapping.observed_at.empty()) {
    const nlohmann::json* at = find(record, mapping.observed_at);
    std::string time_error;
    auto parsed = at && at->is_string() ? parse_rfc3339(at->get<std::string>(), &time_error) : std::nullopt;
    if (!parsed) {
      error = "observed_at (" + mapping.observed_at +
              "): " + (at ? (time_error.empty() ? "not a string" : time_error) : std::string("missing"));
      return std::nullopt;
    }
    out.observed_at = *parsed;
  }
  for (const auto& field : mapping.fields) {
    const nlohmann::json* value = nullptr;
    for (const auto& pointer : field.pointers) {
      value = find(record, pointer);
      if (value && !value->is_null()) break;
    }
    if (!value) continue;
    if (field.values.empty() || value->is_null()) {
      out.fields[field.name] = *value;
      continue;
    }
    auto mapped = field.values.find(as_text(*value));
    if (mapped == field.values.end()) mapped = field.values.find("*");
    if (mapped == field.values.end()) {
      error =
          "field '" + field.name + "': '" + as_text(*value) + "' is not in its value map, which has no \"*\" default";
      return std::nullopt;
    }
    out.fields[field.name] = mapped->second;
  }
  for (const char* link : {"customer", "order"}) {
    auto it = out.fields.find(link);
    if (it == out.fields.end() || !it->is_number()) continue;
    auto link_id = id_text(*it, "field '" + std::string(link) + "'", error);  // database ids are often numbers
    if (!link_id) return std::nullopt;
    *it = std::move(*link_id);
  }
  return out;
}

bool map_records(const std::vector<Mapping>& mappings, const nlohmann::json& record, Timestamp now,
                 std::vector<Observation>& out, std::string& error) {
  const size_t before = out.size();
  for (const auto& mapping : mappings) {
    auto observation = map_record(mapping, record, now, error);
    if (!observation) {
      out.resize(before);
      if (mappings.size() > 1) error = std::string(to_string(mapping.type)) + " mapping: " + error;
      return false;
    }
    out.push_back(std::move(*observation));
  }
  return true;
}

}  // namespace tactd
