// Conditions (`when`): the first line of the input is parsed as an
// expression and, when it parses, tested against a scope: the rest of the
// input when it is a JSON object, else a fixed one.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "model/json_text.h"
#include "rules/expression.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tactd;
  const auto [text, rest] = fuzz::split(fuzz::text_of(data, size), "\n");
  Diagnostics errors;
  auto expression = Expression::parse(text, SourceSpot{"fuzz.toml", 3, 8}, errors);
  if (!expression) return 0;
  std::string error;
  auto scope = parse_json_text(rest, error);
  if (!scope || !scope->is_object())
    scope = nlohmann::json{{"order", {{"status", "cancelled"}, {"promised_by", "2026-11-20T18:00:00Z"}, {"n", 3}}},
                           {"customer", {{"situations", {"payment_difficulty"}}, {"opt_out", false}}},
                           {"shipment", {{"eta", "2026-11-20T19:00:00+01:00"}}}};
  (void)expression->test(*scope);
  (void)expression->paths();
  return 0;
}
