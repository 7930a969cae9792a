#include "pipeline/intake.h"

namespace tactd {

bool PipelineIntake::commit(std::span<const Observation> observations, const SourceCursor* cursor, std::string& error) {
  Outcome outcome;
  try {
    outcome = pipeline_.apply(observations, cursor);
  } catch (const StoreError& e) {
    error = e.what();
    return false;
  }
  if (on_outcome_) on_outcome_(observations, outcome);
  return true;
}

}  // namespace tactd
