// Child processes for integration tests: the real tactd binary started with
// `run --config`, and the loopback servers it talks to; each stopped by its
// own PID with SIGTERM.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace tactd::test {

using Environment = std::vector<std::pair<std::string, std::string>>;

// A program started with `argv`, its standard output and error appended to
// `log`; `env` is set in the child only.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::filesystem::path& log, const Environment& env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // SIGTERM, then the exit status (-1 when it did not exit normally).
  int stop();

 private:
  pid_t pid_ = -1;
};

// `tactd run --config <config>`; its standard error is the log.
class Daemon : public Process {
 public:
  Daemon(const std::filesystem::path& config, const std::filesystem::path& log, const Environment& env = {})
      : Process({TACTD_BINARY, "run", "--config", config.string()}, log, env) {}
};

// The bound on every wait for a daemon.
constexpr auto kPatience = std::chrono::seconds{20};

// Polls `done` every 20 ms until it holds or kPatience passes.
bool eventually(const std::function<bool()>& done);

std::string slurp(const std::filesystem::path& path);

}  // namespace tactd::test
