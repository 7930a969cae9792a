#include "sources/spool_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <fstream>

#include <nlohmann/json.hpp>

namespace tactd {
namespace {

// `dir/name`, or `dir/name.N` when that is taken: a moved file never
// overwrites an earlier one of the same name.
std::filesystem::path free_name(const std::filesystem::path& dir, const std::string& name) {
  std::filesystem::path target = dir / name;
  for (int n = 1; std::filesystem::exists(target); ++n) target = dir / (name + "." + std::to_string(n));
  return target;
}

// What tells one file from another of the same name dropped later: a
// committed progress applies only to the very file it was made in.
struct Identity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t modified_ns = 0;
  bool operator==(const Identity&) const = default;
};

bool identify(const std::filesystem::path& path, Identity& id) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  id.device = static_cast<std::uint64_t>(st.st_dev);
  id.inode = static_cast<std::uint64_t>(st.st_ino);
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.modified_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return true;
}

}  // namespace

struct SpoolSource::Reading {
  std::filesystem::path path;
  std::ifstream in;
  Identity id;
  std::uint64_t offset = 0;     // bytes read
  std::uint64_t line = 0;       // lines read
  std::uint64_t committed = 0;  // bytes committed by an earlier run: lines before it are only parsed again, for errors
  std::uint64_t bad = 0;        // malformed lines read
  std::string failures;         // "line N: what\n" for each of them

  // The progress as the source's cursor value.
  std::string progress() const {
    return nlohmann::json{
        {"file", path.filename().string()}, {"device", id.device}, {"inode", id.inode}, {"size", id.size},
        {"modified_ns", id.modified_ns},    {"offset", offset},    {"line", line},      {"bad", bad}}
        .dump();
  }
};

SpoolSource::SpoolSource(std::filesystem::path dir, std::string cursor)
    : dir_(std::move(dir)), cursor_(std::move(cursor)) {}

SpoolSource::~SpoolSource() = default;

SpoolSource::Scan SpoolSource::scan(Intake& intake) {
  Scan result;
  while (step(intake, result)) {
  }
  return result;
}

bool SpoolSource::step(Intake& intake, Scan& scan, std::size_t lines) {
  if (!reading_) {
    if (waiting_.empty()) {
      if (scanning_) {
        scanning_ = false;
        return false;
      }
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator(dir_, ec))
        if (entry.is_regular_file() && entry.path().extension() == ".jsonl") waiting_.push_back(entry.path());
      if (ec) {
        waiting_.clear();
        scan.problems.push_back(dir_.string() + ": cannot read the spool folder: " + ec.message());
        return false;
      }
      if (waiting_.empty()) return false;
      std::sort(waiting_.begin(), waiting_.end(), std::greater<>());  // the oldest name last
      scanning_ = true;
    }
    open_next(intake, scan);
    if (!reading_) return true;
  }
  return read_batch(intake, scan, std::clamp<std::size_t>(lines, 1, kBatchLines));
}

void SpoolSource::open_next(Intake& intake, Scan& scan) {
  auto reading = std::make_unique<Reading>();
  reading->path = waiting_.back();
  waiting_.pop_back();
  reading->in.open(reading->path, std::ios::binary);
  if (!reading->in || !identify(reading->path, reading->id)) {
    scan.problems.push_back(reading->path.string() + ": cannot read");
    return;
  }
  // Resume where an earlier run left this very file.
  const auto cursor = intake.cursor(cursor_);
  const auto progress = nlohmann::json::parse(cursor.value_or(""), nullptr, false);
  if (progress.is_object() && progress.value("file", "") == reading->path.filename().string()) {
    Identity id;
    id.device = progress.value("device", std::uint64_t{0});
    id.inode = progress.value("inode", std::uint64_t{0});
    id.size = progress.value("size", std::uint64_t{0});
    id.modified_ns = progress.value("modified_ns", std::int64_t{0});
    const auto offset = progress.value("offset", std::uint64_t{0});
    if (id == reading->id && offset <= id.size) {
      reading->committed = offset;
      if (progress.value("bad", std::uint64_t{0}) == 0) {
        // Nothing before it to report: skip what was committed.
        reading->in.seekg(static_cast<std::streamoff>(offset));
        reading->offset = offset;
        reading->line = progress.value("line", std::uint64_t{0});
      }
    }
  }
  reading_ = std::move(reading);
}

bool SpoolSource::read_batch(Intake& intake, Scan& scan, std::size_t max_lines) {
  Reading& r = *reading_;
  const bool replay = r.offset < r.committed;
  std::vector<Observation> observations;
  std::size_t lines = 0;
  std::size_t bytes = 0;
  std::string line;
  while (lines < max_lines && bytes < kBatchBytes && r.offset < r.id.size) {
    if (replay && r.offset >= r.committed) break;  // what was committed is only parsed again, in batches of its own
    if (!std::getline(r.in, line)) break;
    r.offset += line.size() + (r.in.eof() ? 0 : 1);
    ++r.line;
    ++lines;
    bytes += line.size();
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string error;
    if (auto observation = parse_observation(line, error)) {
      if (!replay) observations.push_back(std::move(*observation));
      continue;
    }
    r.failures += "line " + std::to_string(r.line) + ": " + error + "\n";
    ++r.bad;
    if (!replay) ++scan.rejected;
  }
  if (r.in.bad()) {
    scan.problems.push_back(r.path.string() + ": read error; left in place");
    reading_.reset();
    return true;
  }
  const bool at_end = r.offset >= r.id.size || r.in.eof();
  // A batch commits with the progress it ends at; the last one only when it
  // brings observations (the file is moved right after).
  if (!replay && (!observations.empty() || !at_end)) {
    const SourceCursor cursor{cursor_, r.progress()};
    std::string error;
    if (!intake.commit(observations, &cursor, error)) {
      scan.problems.push_back(r.path.string() + ": not committed, left in place to retry: " + error);
      reading_.reset();
      waiting_.clear();
      scanning_ = false;
      return false;  // the store is in trouble: do not race through the other files
    }
    r.committed = r.offset;
    scan.observations += static_cast<int>(observations.size());
  }
  if (at_end) finish(scan);
  return true;
}

void SpoolSource::finish(Scan& scan) {
  const Reading& r = *reading_;
  std::error_code ec;
  const bool failed = !r.failures.empty();
  const auto target_dir = dir_ / (failed ? "failed" : "done");
  std::filesystem::create_directories(target_dir, ec);
  const auto target = free_name(target_dir, r.path.filename().string());
  if (failed) {
    // Written aside and renamed: whoever sees the .errors file (an
    // operator's script, a test) sees all of it.
    const std::string errors = target.string() + ".errors";
    {
      std::ofstream report(errors + ".tmp", std::ios::binary);
      report << r.failures;
    }
    std::error_code written;
    std::filesystem::rename(errors + ".tmp", errors, written);
    scan.problems.push_back(r.path.string() + ": malformed lines, see " + errors +
                            (written ? " (could not be written: " + written.message() + ")" : ""));
  }
  std::filesystem::rename(r.path, target, ec);
  if (ec) {
    // Committed but not moved: the next scan finds its progress at the end,
    // or, if it cannot tell the file apart, reads it again, which changes
    // nothing (same data, no new events).
    scan.problems.push_back(r.path.string() + ": committed but could not be moved: " + ec.message());
  } else {
    ++scan.files;
  }
  reading_.reset();
}

}  // namespace tactd
