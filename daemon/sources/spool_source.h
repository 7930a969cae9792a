// The spool directory source: JSON Lines files of canonical observations
// dropped into a folder. Only `*.jsonl` files are read, so writers should
// write `name.jsonl.tmp` (or into another folder) and rename when complete.
//
// Each file is committed as one batch. A file whose lines all parse moves to
// `done/`; a file with malformed lines moves to `failed/`, next to a
// `<file>.errors` that names each such line and what is wrong with it (its
// valid lines are committed). A file whose batch cannot be committed stays
// where it is and is tried again on the next scan.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "sources/source.h"

namespace tactd {

class SpoolSource {
 public:
  // `dir` must exist; done/ and failed/ are created in it when needed.
  explicit SpoolSource(std::filesystem::path dir) : dir_(std::move(dir)) {}

  struct Scan {
    int files = 0;                      // files consumed (moved to done/ or failed/)
    int observations = 0;               // observations committed
    int rejected = 0;                   // malformed lines
    std::vector<std::string> problems;  // for the log: "file: what"
  };

  // Reads every waiting file, oldest name first, and commits each through
  // `intake`. Never throws for bad input or I/O trouble: it reports it.
  Scan scan(Intake& intake) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace tactd
