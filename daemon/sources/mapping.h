// Applying a source's mapping (config.h) to one foreign record.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "model/entity.h"

namespace tactd {

// Turns one record (a JSON object) into an observation; `now` is its time
// when the mapping names no `observed_at`. A field whose pointer finds
// nothing is left out. Returns nullopt, with `error` naming the field and
// what is wrong, when the id is missing or not a usable id (id_text), the time is not RFC 3339, or a
// value has no entry in its value map and the map has no "*" default.
std::optional<Observation> map_record(const Mapping& mapping, const nlohmann::json& record, Timestamp now,
                                      std::string& error);

// Applies every mapping to `record`, appending its observations to `out`:
// all of them, or none (returning false with `error`) when one fails.
bool map_records(const std::vector<Mapping>& mappings, const nlohmann::json& record, Timestamp now,
                 std::vector<Observation>& out, std::string& error);

}  // namespace tactd
