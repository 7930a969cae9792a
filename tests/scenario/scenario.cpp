#include "scenario/scenario.h"

#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "app/commands.h"
#include "pipeline/snapshot.h"
#include "store/pg_store.h"

namespace tactd::test {

namespace {

bool on_postgres() {
  const char* backend = std::getenv("TACTD_SCENARIO_BACKEND");
  const std::string name = backend ? backend : "";
  if (name.empty() || name == "sqlite") return false;
  if (name == "postgresql") return true;
  throw std::invalid_argument("TACTD_SCENARIO_BACKEND: '" + name + "' is neither sqlite nor postgresql");
}

Snapshot shipped_snapshot() {
  Diagnostics errors;
  auto snapshot = load_snapshot(source_dir() / "config/tactd.toml", errors);
  if (!snapshot) throw std::runtime_error("the shipped configuration does not load");
  return std::move(*snapshot);
}

}  // namespace

PipelineStory::PipelineStory(const char* start)
    : snapshot(shipped_snapshot()), clock(*parse_rfc3339(start)), pipeline(snapshot, *store, clock) {}

Outcome PipelineStory::apply(const std::string& line) {
  std::string error;
  auto observation = parse_observation(line, error);
  if (!observation) throw std::invalid_argument("observation: " + error + ": " + line);
  return pipeline.apply(*observation);
}

StoryState::StoryState() {
  if (on_postgres()) db_.emplace();
  store_ = open_again();
}

std::unique_ptr<Store> StoryState::open_again() const {
  if (db_) return open_postgres_store(db_->conninfo());
  return Store::open(dir_.path() / "state.db", Sync::kNormal);
}

std::string obs(const char* type, const char* id, const char* at, const nlohmann::json& fields) {
  return nlohmann::json{{"type", type}, {"id", id}, {"observed_at", at}, {"fields", fields}}.dump();
}

std::string order(const char* id, const char* customer, const char* at, const char* status, nlohmann::json extra) {
  nlohmann::json fields = {{"customer", customer},
                           {"status", status},
                           {"total", 31.40},
                           {"currency", "EUR"},
                           {"merchant", "Trattoria Da Marco"}};
  fields.update(extra);
  return obs("order", id, at, fields);
}

namespace {

Run simulate(const std::vector<std::string>& lines, std::optional<Timestamp> until, bool text) {
  TempDir dir;
  std::string input;
  for (const auto& line : lines) input += line + "\n";
  StoryState state;
  SimulateOptions options{source_dir() / "config/tactd.toml", dir.write("input.jsonl", input), until, text,
                          state.get()};
  std::ostringstream out, err;
  Run run;
  run.status = tactd::simulate(options, out, err);
  run.err = err.str();
  if (text) {
    run.text = out.str();
    return run;
  }
  std::istringstream lines_out(out.str());
  for (std::string line; std::getline(lines_out, line);) run.sent.push_back(nlohmann::json::parse(line));
  return run;
}

}  // namespace

Run simulate_lines(const std::vector<std::string>& lines, std::optional<Timestamp> until) {
  return simulate(lines, until, false);
}

Run simulate_text(const std::vector<std::string>& lines, std::optional<Timestamp> until) {
  return simulate(lines, until, true);
}

const std::string kAnna = obs("customer", "c-42", "2026-11-20T09:00:00+01:00",
                              {{"name", "Anna de Vries"},
                               {"email", "anna@example.nl"},
                               {"phone", "+31612345678"},
                               {"locale", "nl"},
                               {"timezone", "Europe/Amsterdam"},
                               {"prefers", "sms"}});
const std::string kBen = obs("customer", "c-7", "2026-11-20T09:00:00+01:00",
                             {{"name", "Ben Carter"},
                              {"email", "ben@example.com"},
                              {"locale", "en"},
                              {"timezone", "Europe/London"},
                              {"prefers", "email"}});

nlohmann::json anna_at(const char* at) {
  nlohmann::json anna = nlohmann::json::parse(kAnna);
  anna["observed_at"] = at;
  return anna;
}

}  // namespace tactd::test
