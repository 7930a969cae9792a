// Helpers for the story tests: observations as JSON lines, and a run of
// `simulate` with the shipped configuration whose output is parsed.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/clock.h"
#include "model/time.h"
#include "pipeline/pipeline.h"
#include "store/store.h"
#include "support/postgres.h"
#include "support/temp_dir.h"

namespace tactd::test {

// The state a story runs on: a SQLite database in a temporary folder, or,
// when TACTD_SCENARIO_BACKEND=postgresql (the second CTest registration of
// scenario_test, "scenario_test[postgresql]: ..."), a PostgreSQL database of
// its own on the test run's server (support/postgres.h). So every story
// holds on both backends with nothing above the store knowing which.
class StoryState {
 public:
  StoryState();
  Store& operator*() const { return *store_; }
  Store* operator->() const { return store_.get(); }
  Store* get() const { return store_.get(); }
  // Another connection to the same state: a restarted daemon, an operator's
  // script.
  std::unique_ptr<Store> open_again() const;
  // Closes this connection (a daemon that stops); open_again() still works.
  void close() { store_.reset(); }

 private:
  TempDir dir_;
  std::optional<PgDatabase> db_;  // declared before store_: dropped after it is closed
  std::unique_ptr<Store> store_;
};

// The shipped configuration's pipeline on a StoryState, driven step by
// step on a virtual clock that starts at `start` (RFC 3339): for stories
// that look at what the pipeline decides at given moments (timers, the
// release check, an entry claimed meanwhile).
struct PipelineStory {
  explicit PipelineStory(const char* start);
  // Applies one observation (JSON); throws when it does not parse.
  Outcome apply(const std::string& line);

  Snapshot snapshot;  // as loaded; `pipeline` runs a copy
  StoryState store;
  VirtualClock clock;
  Pipeline pipeline;
};

struct Run {
  int status = -1;
  std::vector<nlohmann::json> sent;  // one per notification, in output order (not with --format text)
  std::string text;                  // standard output with --format text
  std::string err;
};

std::string obs(const char* type, const char* id, const char* at, const nlohmann::json& fields);

// An order of `customer` from Trattoria Da Marco, € 31,40, with `extra` fields.
std::string order(const char* id, const char* customer, const char* at, const char* status,
                  nlohmann::json extra = nlohmann::json::object());

Run simulate_lines(const std::vector<std::string>& lines, std::optional<Timestamp> until = std::nullopt);
// The same with `--format text`: what was sent, held back, queued or stale, in words.
Run simulate_text(const std::vector<std::string>& lines, std::optional<Timestamp> until = std::nullopt);

// Anna: Dutch, prefers SMS, Europe/Amsterdam. Ben: English, email only, Europe/London.
extern const std::string kAnna;
extern const std::string kBen;
// Anna's customer record observed at `at`.
nlohmann::json anna_at(const char* at);

}  // namespace tactd::test
