#include "app/observation_file.h"

#include <iostream>

namespace tactd {

bool ObservationFile::open(const std::filesystem::path& path, std::ostream& err) {
  if (path == "-") {
    input_ = &std::cin;
    source_ = "<stdin>";
    return true;
  }
  file_.open(path, std::ios::binary);
  if (!file_) {
    err << path.string() << ": cannot read the observations file\n";
    return false;
  }
  input_ = &file_;
  source_ = path.string();
  return true;
}

std::optional<Observation> ObservationFile::next(std::ostream& err) {
  for (std::string line; input_ && std::getline(*input_, line);) {
    ++line_;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    where_ = source_ + ":" + std::to_string(line_) + ": ";
    std::string error;
    if (auto observation = parse_observation(line, error)) return observation;
    err << where_ << "rejected: " << error << "\n";
    ++rejected_;
  }
  return std::nullopt;
}

bool ObservationFile::failed() const { return input_ && input_->bad(); }

}  // namespace tactd
