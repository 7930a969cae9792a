// Sources: where observations come from. A source reads its input and hands
// the observations to an Intake, which commits them; only after a commit
// does the source consider its input consumed (moves a file, advances a
// cursor), so a crash in between re-reads rather than loses.
#pragma once

#include <span>
#include <string>

#include "model/entity.h"

namespace tactd {

class Intake {
 public:
  virtual ~Intake() = default;
  // Commits the observations together, or none of them. Returns false, with
  // the reason in `error`, when they could not be committed.
  virtual bool commit(std::span<const Observation> observations, std::string& error) = 0;
};

}  // namespace tactd
