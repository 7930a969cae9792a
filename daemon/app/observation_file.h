// Reading observations from a JSON Lines file, one at a time, for the verbs
// that replay them (simulate, preview).
#pragma once

#include <filesystem>
#include <fstream>
#include <iosfwd>
#include <optional>
#include <string>

#include "model/entity.h"

namespace tactd {

class ObservationFile {
 public:
  // Opens `path` ("-" reads standard input). Returns false, having said why
  // on `err`, when the file cannot be read.
  bool open(const std::filesystem::path& path, std::ostream& err);

  // The next valid observation, or nullopt at the end. Blank lines are
  // skipped; a malformed line is reported on `err` as
  // "file:line: rejected: what is wrong", counted, and skipped.
  std::optional<Observation> next(std::ostream& err);

  // "file:line: " of the observation next() returned last.
  const std::string& where() const { return where_; }
  const std::string& source() const { return source_; }
  int rejected() const { return rejected_; }
  // True when reading failed (not at a malformed line, at the device).
  bool failed() const;

 private:
  std::ifstream file_;
  std::istream* input_ = nullptr;
  std::string source_;
  std::string where_;
  int line_ = 0;
  int rejected_ = 0;
};

}  // namespace tactd
