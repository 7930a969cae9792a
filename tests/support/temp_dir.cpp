#include "support/temp_dir.h"

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace tactd::test {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "tactd-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path TempDir::write(const std::filesystem::path& relative, std::string_view content) const {
  const auto target = path_ / relative;
  std::filesystem::create_directories(target.parent_path());
  std::ofstream out(target, std::ios::binary);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + target.string());
  return target;
}

std::filesystem::path source_dir() { return TACTD_SOURCE_DIR; }

}  // namespace tactd::test
