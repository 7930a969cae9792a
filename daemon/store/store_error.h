// The one error every store operation throws.
#pragma once

#include <stdexcept>

namespace tactd {

// Thrown when a database cannot be opened or migrated (a start-up failure),
// or when a statement fails unexpectedly (a bug or a broken disk).
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace tactd
