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

  pid_t pid() const { return pid_; }
  // Sends `signal` and returns at once.
  void signal(int signal) const;
  // Waits for the exit; its status (-1 when it did not exit normally, or
  // was already waited for).
  int wait();
  // SIGTERM, then the exit status.
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

// Drops a spool file into the folder `spool` the way writers should:
// written aside, then renamed.
void drop(const std::filesystem::path& spool, const std::string& name, const std::string& lines);

// What a run of the tactd binary as a command (`check`, `simulate`,
// `timeline`, ...) gave.
struct CliResult {
  int status = -1;
  std::string out;
  std::string err;
};

// Runs the tactd binary with `args` (already shell-quoted where needed) and
// nothing on its standard input; its output is kept in files in `folder`.
// Throws when it did not exit (a signal).
CliResult run_tactd(const std::filesystem::path& folder, const std::string& args);

// Runs `command` through the shell with `input` on its standard input;
// returns its exit status and what it printed (standard output and error).
std::pair<int, std::string> run_with_input(const std::string& command, const std::string& input);

// The port a daemon says it listens on: the number after the first match
// of `pattern` (e.g. "push: listening on 127.0.0.1:") in the log at `log`,
// waited for; 0 when it never appears.
int logged_port(const std::filesystem::path& log, const std::string& pattern);

}  // namespace tactd::test
