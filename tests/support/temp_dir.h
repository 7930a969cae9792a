// A fresh temporary directory per test, removed with everything in it when
// the TempDir goes out of scope.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace tactd::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to `relative` (creating folders) and returns its path.
  std::filesystem::path write(const std::filesystem::path& relative, std::string_view content) const;

 private:
  std::filesystem::path path_;
};

// The checkout's root, for shipped config/ and templates/.
std::filesystem::path source_dir();

}  // namespace tactd::test
