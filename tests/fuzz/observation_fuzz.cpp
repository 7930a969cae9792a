// Observation JSON, as spool files, `simulate` and the push endpoint read
// it: each line of the input through parse_observation. An observation that
// parses must survive its own JSON (to_json, then parse_observation again)
// unchanged: what the store writes back must read back the same.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "model/entity.h"
#include "model/json_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tactd;
  std::string_view rest = fuzz::text_of(data, size);
  std::string error;
  if (auto doc = parse_json_text(rest, error)) (void)id_text(*doc, "field 'id'", error);
  while (!rest.empty()) {
    const auto [line, after] = fuzz::split(rest, "\n");
    rest = after;
    auto observation = parse_observation(line, error);
    if (!observation) continue;
    const nlohmann::json json = to_json(*observation);
    const std::string text = json.dump();
    auto again = parse_observation(text, error);
    if (!again || to_json(*again) != json) {
      std::fprintf(stderr, "an observation does not read back as written: %s\n%s\n", text.c_str(), error.c_str());
      std::abort();
    }
    (void)merge(nullptr, *observation);
    (void)diff(nullptr, *observation);
  }
  return 0;
}
