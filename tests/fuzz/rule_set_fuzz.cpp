// Rule files: RuleSet::parse on the input as one file's text, then every
// rule that loads is used as the pipeline uses it: its trigger against an
// event, its deadline against fields, its condition against a scope.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "rules/rule_set.h"

namespace {

const nlohmann::json& fields() {
  static const nlohmann::json value = {{"status", "cancelled"},
                                       {"promised_by", "2026-11-20T18:00:00Z"},
                                       {"eta", "2026-11-21"},
                                       {"customer", "C-1"},
                                       {"order", "A-1001"},
                                       {"total", 49.95},
                                       {"situations", {"payment_difficulty"}},
                                       {"opt_out", false}};
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tactd;
  Diagnostics errors;
  auto rules = RuleSet::parse(fuzz::text_of(data, size), "fuzz.toml", errors);
  if (!rules) return 0;
  nlohmann::json scope = nlohmann::json::object();
  for (const char* type : {"customer", "order", "shipment", "subscription", "payment"}) scope[type] = fields();
  for (const Rule& rule : rules->rules()) {
    if (rule.trigger) {
      (void)rule.trigger->str();
      const Event event{EntityRef{rule.trigger->entity, "x"}, rule.trigger->field, nullptr,
                        fields().value(rule.trigger->field, nlohmann::json("cancelled")), Timestamp{}};
      (void)rules->triggered_by(event);
    }
    if (rule.deadline) (void)rule.deadline->due(fields());
    if (rule.when) (void)rule.when->test(scope);
    (void)rules->find(rule.id);
  }
  return 0;
}
