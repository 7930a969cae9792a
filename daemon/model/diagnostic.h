// A problem found in operator input, with the place it was found.
#pragma once

#include <string>
#include <vector>

namespace tactd {

struct Diagnostic {
  std::string file;  // as the operator named it, e.g. "config/rules/orders.toml"
  int line = 0;      // 1-based; 0 when the problem concerns the whole file
  int column = 0;    // 1-based; 0 when unknown
  std::string message;

  // "file:line:column: message", leaving out what is unknown.
  std::string str() const;
};

using Diagnostics = std::vector<Diagnostic>;

}  // namespace tactd
