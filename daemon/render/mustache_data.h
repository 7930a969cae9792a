// The view kainjow::mustache renders from a JSON value, shared by the
// message templates and the console's pages: objects, lists, strings and
// booleans as they are; null and "" left out of an object, so that
// `{{#x}}` skips them and `{{^x}}` shows; numbers as JSON writes them.
#pragma once

#include <kainjow/mustache.hpp>
#include <nlohmann/json.hpp>

namespace tactd {

kainjow::mustache::data to_mustache(const nlohmann::json& value);

}  // namespace tactd
