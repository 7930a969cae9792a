// Helpers for the story tests: observations as JSON lines, and a run of
// `simulate` with the shipped configuration whose output is parsed.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/time.h"

namespace tactd::test {

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
