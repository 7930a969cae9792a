// The one error every store operation throws.
#pragma once

#include <stdexcept>

namespace tactd {

// Thrown when a database cannot be opened or migrated (a start-up failure),
// or when a statement fails unexpectedly (a bug or a broken disk).
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;

  // Whether running the transaction again (from a fresh read) can succeed:
  // PostgreSQL's serialization failures, deadlocks and lost connections,
  // SQLite's busy or locked database. False for everything else (a bug, a
  // broken disk, a constraint the data breaks).
  bool retryable = false;
};

}  // namespace tactd
