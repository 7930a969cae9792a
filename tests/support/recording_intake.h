// An Intake that records the batches and cursors a source commits, or
// refuses them like a full disk would.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sources/source.h"

namespace tactd::test {

class RecordingIntake final : public Intake {
 public:
  bool refuse = false;
  std::vector<std::vector<Observation>> batches;
  std::map<std::string, std::string> cursors;

  bool commit(std::span<const Observation> observations, const SourceCursor* cursor, std::string& error) override {
    if (refuse) {
      error = "disk full";
      return false;
    }
    batches.emplace_back(observations.begin(), observations.end());
    if (cursor) cursors[cursor->source] = cursor->value;
    return true;
  }
  std::optional<std::string> cursor(const std::string& source) override {
    auto it = cursors.find(source);
    return it == cursors.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
};

}  // namespace tactd::test
