// Sources: where observations come from. A source reads its input and hands
// the observations to an Intake, which commits them; only after a commit
// does the source consider its input consumed (moves a file, advances a
// cursor), so a crash in between re-reads rather than loses.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "model/entity.h"

namespace tactd {

class FiberScheduler;  // store/state_runner.h

// A source's position, committed with the batch it ends.
struct SourceCursor {
  std::string source;
  std::string value;
};

class Intake {
 public:
  virtual ~Intake() = default;
  // Commits the observations together, and the cursor when given, or none
  // of them. Returns false, with the reason in `error`, when they could not
  // be committed.
  virtual bool commit(std::span<const Observation> observations, const SourceCursor* cursor, std::string& error) = 0;
  // The cursor last committed for `source`.
  virtual std::optional<std::string> cursor(const std::string& source) = 0;
  // Where commit() and cursor() must run when called from the loop: on
  // these fibers, through StateRunner (a store that waits on the network);
  // nullptr: call them directly.
  virtual FiberScheduler* fibers() const { return nullptr; }
};

}  // namespace tactd
