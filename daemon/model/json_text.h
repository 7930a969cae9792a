// JSON text from outside (push bodies, spool lines, HTTP source answers),
// parsed so that what comes in cannot hurt what handles it later.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace tactd {

// The deepest nesting of arrays and objects accepted. An observation is an
// object holding `fields`, whose values real sources nest a few levels at
// most; 64 leaves ample room for that, while the recursive code that copies,
// compares and serialises JSON values (nlohmann, the store) stays a few
// hundred bytes of stack per level: far from any stack limit.
inline constexpr int kMaxJsonDepth = 64;

// Parses `text` as one JSON document. Returns nullopt, with `error` saying
// what and where (byte offset), for malformed JSON, text that is not UTF-8,
// a number out of range (1e400), or nesting deeper than kMaxJsonDepth.
std::optional<nlohmann::json> parse_json_text(std::string_view text, std::string& error);

// The text of an id given as a JSON string or integer. Returns nullopt, with
// `error`, for an empty string, an integer beyond the signed 64-bit range
// (which would otherwise wrap, to -1 for 2^64 - 1), a fraction, or any other
// type. `what` names the id in the error ("field 'id'").
std::optional<std::string> id_text(const nlohmann::json& value, std::string_view what, std::string& error);

}  // namespace tactd
