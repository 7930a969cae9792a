#include "sources/spool_source.h"

#include <algorithm>
#include <fstream>

namespace tactd {
namespace {

// `dir/name`, or `dir/name.N` when that is taken: a moved file never
// overwrites an earlier one of the same name.
std::filesystem::path free_name(const std::filesystem::path& dir, const std::string& name) {
  std::filesystem::path target = dir / name;
  for (int n = 1; std::filesystem::exists(target); ++n) target = dir / (name + "." + std::to_string(n));
  return target;
}

}  // namespace

SpoolSource::Scan SpoolSource::scan(Intake& intake) const {
  Scan result;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".jsonl") files.push_back(entry.path());
  if (ec) {
    result.problems.push_back(dir_.string() + ": cannot read the spool folder: " + ec.message());
    return result;
  }
  std::sort(files.begin(), files.end());

  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      result.problems.push_back(path.string() + ": cannot read");
      continue;
    }
    std::vector<Observation> observations;
    std::string failures;
    int line_number = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::string error;
      if (auto observation = parse_observation(line, error))
        observations.push_back(std::move(*observation));
      else
        failures += "line " + std::to_string(line_number) + ": " + error + "\n";
    }
    if (in.bad()) {
      result.problems.push_back(path.string() + ": read error; left in place");
      continue;
    }
    std::string error;
    if (!observations.empty() && !intake.commit(observations, nullptr, error)) {
      result.problems.push_back(path.string() + ": not committed, left in place to retry: " + error);
      return result;  // the store is in trouble: do not race through the other files
    }
    const bool failed = !failures.empty();
    const auto target_dir = dir_ / (failed ? "failed" : "done");
    std::filesystem::create_directories(target_dir, ec);
    const auto target = free_name(target_dir, path.filename().string());
    if (failed) {
      std::ofstream report(target.string() + ".errors", std::ios::binary);
      report << failures;
      result.rejected += static_cast<int>(std::count(failures.begin(), failures.end(), '\n'));
      result.problems.push_back(path.string() + ": malformed lines, see " + target.string() + ".errors");
    }
    std::filesystem::rename(path, target, ec);
    if (ec) {
      // Committed but not moved: the next scan re-reads it, which changes nothing (same data, no new events).
      result.problems.push_back(path.string() + ": committed but could not be moved: " + ec.message());
      continue;
    }
    ++result.files;
    result.observations += static_cast<int>(observations.size());
  }
  return result;
}

}  // namespace tactd
