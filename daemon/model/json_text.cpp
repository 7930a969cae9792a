#include "model/json_text.h"

#include <limits>

namespace tactd {
namespace {

// Thrown from the parser callback to stop at the first level too deep.
struct TooDeep {};

// e.what() without nlohmann's "[json.exception.parse_error.101] parse error
// at line 1, column 9: " prefix: "syntax error while parsing value - ...".
std::string explanation(const nlohmann::json::exception& e) {
  std::string what = e.what();
  if (const auto bracket = what.find("] "); bracket != std::string::npos) what.erase(0, bracket + 2);
  if (const auto colon = what.find(": "); what.starts_with("parse error") && colon != std::string::npos)
    what.erase(0, colon + 2);
  return what;
}

}  // namespace

std::optional<nlohmann::json> parse_json_text(std::string_view text, std::string& error) {
  const auto limit_depth = [](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    const bool opens =
        event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth) throw TooDeep{};
    return true;
  };
  try {
    return nlohmann::json::parse(text, limit_depth);
  } catch (const TooDeep&) {
    error = "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " arrays and objects";
  } catch (const nlohmann::json::parse_error& e) {
    error = "malformed JSON at column " + std::to_string(e.byte) + ": " + explanation(e);
  } catch (const nlohmann::json::exception& e) {  // out_of_range 406: a number beyond a double
    error = "JSON number out of range: " + explanation(e);
  }
  return std::nullopt;
}

std::optional<std::string> id_text(const nlohmann::json& value, std::string_view what, std::string& error) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (value.is_string() && !value.get_ref<const std::string&>().empty()) return value.get<std::string>();
  if (value.is_number_integer() && !(value.is_number_unsigned() && value.get<std::uint64_t>() > kMax))
    return value.dump();
  if (value.is_number())
    error = std::string(what) + ": " + value.dump() + " is not a whole number within the 64-bit range (at most " +
            std::to_string(kMax) + "); send such ids as strings";
  else if (value.is_string())
    error = std::string(what) + " is empty";
  else
    error = std::string(what) + " is missing or not a string";
  return std::nullopt;
}

}  // namespace tactd
