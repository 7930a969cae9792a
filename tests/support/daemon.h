// The real tactd binary as a child process, for integration tests: started
// with `run --config`, its standard error in a log file, stopped by its own
// PID with SIGTERM.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace tactd::test {

class Daemon {
 public:
  // `env` is set in the child only.
  Daemon(const std::filesystem::path& config, const std::filesystem::path& log,
         const std::vector<std::pair<std::string, std::string>>& env = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // SIGTERM, then the exit status (-1 when it did not exit normally).
  int stop();

 private:
  pid_t pid_ = -1;
};

// The bound on every wait for a daemon.
constexpr auto kPatience = std::chrono::seconds{20};

// Polls `done` every 20 ms until it holds or kPatience passes.
bool eventually(const std::function<bool()>& done);

std::string slurp(const std::filesystem::path& path);

}  // namespace tactd::test
