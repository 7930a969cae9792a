#include "model/diagnostic.h"

namespace tactd {

std::string Diagnostic::str() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  return out + ": " + message;
}

}  // namespace tactd
