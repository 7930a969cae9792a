// Applying a source's mapping (config.h) to one foreign record.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "model/entity.h"

namespace tactd {

// Turns one record (a JSON object) into an observation; `now` is its time
// when the mapping names no `observed_at`. A field whose pointer finds
// nothing is left out. Returns nullopt, with `error` naming the field and
// what is wrong, when the id is missing, the time is not RFC 3339, or a
// value has no entry in its value map and the map has no "*" default.
std::optional<Observation> map_record(const Mapping& mapping, const nlohmann::json& record, Timestamp now,
                                      std::string& error);

}  // namespace tactd
