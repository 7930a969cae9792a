#include "pipeline/intake.h"

#include <vector>

namespace tactd {

bool PipelineIntake::commit(std::span<const Observation> observations, const SourceCursor* cursor, std::string& error) {
  // What does not say whether it is partial takes the source's default.
  std::vector<Observation> said(observations.begin(), observations.end());
  for (Observation& o : said)
    if (!o.partial) o.partial = partial_;
  Outcome outcome;
  try {
    outcome = pipeline_.apply(said, cursor);
  } catch (const StoreError& e) {
    error = e.what();
    if (on_failure_) on_failure_(error);
    return false;
  }
  if (on_outcome_) on_outcome_(observations, outcome);
  return true;
}

}  // namespace tactd
