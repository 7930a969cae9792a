// The spool directory source: JSON Lines files of canonical observations
// dropped into a folder. Only `*.jsonl` files are read, so writers should
// write `name.jsonl.tmp` (or into another folder) and rename when complete.
//
// A file is read and committed in batches of at most kBatchLines lines
// (kBatchBytes bytes), each batch in one transaction with the file's
// progress (the source's cursor: which file, how far), so that the caller
// can yield to the event loop between batches, and a restart resumes after
// the last committed batch: no line is lost, none applied twice. A file of
// at most kBatchLines lines is one batch, as before.
//
// After its last batch a file whose lines all parse moves to `done/`; a file
// with malformed lines moves to `failed/`, next to a `<file>.errors` that
// names each such line (by its line number in the file, whichever batch it
// was in) and what is wrong with it (its valid lines are committed). A batch
// that cannot be committed leaves the file where it is, to be resumed from
// its last committed batch on the next scan.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sources/source.h"

namespace tactd {

class SpoolSource {
 public:
  static constexpr std::size_t kBatchLines = 1000;
  static constexpr std::size_t kBatchBytes = 4 << 20;

  // `dir` must exist; done/ and failed/ are created in it when needed.
  // `cursor` names the source's cursor, where the progress through the file
  // being read is committed.
  SpoolSource(std::filesystem::path dir, std::string cursor);
  ~SpoolSource();
  SpoolSource(const SpoolSource&) = delete;
  SpoolSource& operator=(const SpoolSource&) = delete;

  struct Scan {
    int files = 0;                      // files consumed (moved to done/ or failed/)
    int observations = 0;               // observations committed
    int rejected = 0;                   // malformed lines
    std::vector<std::string> problems;  // for the log: "file: what"
  };

  // Does one bounded piece of a scan: lists the waiting files (oldest name
  // first) when a scan begins, or takes in one batch of at most `lines`
  // lines (1 to kBatchLines) of the file being read (moving it once its
  // last batch is committed). Adds what happened to
  // `scan`. Returns false when the scan is over: nothing (more) waits, or a
  // batch could not be committed (the store is in trouble: the other files
  // wait for the next scan). The next call begins a new scan. Never throws
  // for bad input or I/O trouble: it reports it.
  bool step(Intake& intake, Scan& scan, std::size_t lines = kBatchLines);

  // A whole scan at once: step() until it is over.
  Scan scan(Intake& intake);

  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct Reading;  // the file being read and how far
  void open_next(Intake& intake, Scan& scan);
  bool read_batch(Intake& intake, Scan& scan, std::size_t max_lines);
  void finish(Scan& scan);

  std::filesystem::path dir_;
  std::string cursor_;
  std::vector<std::filesystem::path> waiting_;  // listed, not yet read; the next one last
  bool scanning_ = false;
  std::unique_ptr<Reading> reading_;
};

}  // namespace tactd
