// Source mappings: the input is the [[source.mapping]] tables of a sqlite
// source, then a line "%%", then records, one JSON object per line. The
// tables are appended to a configuration and read by load_config (which
// also reads what else the input adds); every record is then mapped by
// map_records, as the sqlite and http sources do.
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "fuzz_support.h"
#include "model/json_text.h"
#include "sources/mapping.h"

namespace {

constexpr std::string_view kPrefix = R"([tactd]
rules = "rules"
templates = "templates"
state = "state.db"

[[source]]
name = "fuzz"
type = "sqlite"
path = "source.db"
query = "SELECT * FROM t WHERE c > :cursor ORDER BY c"
cursor_column = "c"

)";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tactd;
  const auto [mappings, records] = fuzz::split(fuzz::text_of(data, size), "\n%%\n");
  const auto dir = fuzz::scratch();
  std::filesystem::create_directories(dir / "rules");
  std::filesystem::create_directories(dir / "templates");
  fuzz::write_file(dir / "tactd.toml", std::string(kPrefix) + std::string(mappings));
  Diagnostics errors;
  // Secrets are not read: a fuzzed `token_file = "/dev/zero"` would only
  // test the machine.
  auto config = load_config(dir / "tactd.toml", errors, Secrets::kSkip);
  if (!config) return 0;
  const Timestamp now{std::chrono::milliseconds{1'795'000'000'000}};
  std::string_view rest = records;
  while (!rest.empty()) {
    const auto [line, after] = fuzz::split(rest, "\n");
    rest = after;
    std::string error;
    auto record = parse_json_text(line, error);
    if (!record) continue;
    for (const SourceConfig& source : config->sources) {
      std::vector<Observation> out;
      (void)map_records(source.mappings, *record, now, out, error);
      for (const Mapping& mapping : source.mappings) (void)map_record(mapping, *record, now, error);
    }
  }
  return 0;
}
