#include "support/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace tactd::test {

Process::Process(const std::vector<std::string>& argv, const std::filesystem::path& log, const Environment& env) {
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execvp(args[0], args.data());
    _exit(127);
  }
}

Process::~Process() { stop(); }

void Process::signal(int signal) const {
  if (pid_ > 0) kill(pid_, signal);
}

int Process::wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int Process::stop() {
  signal(SIGTERM);
  return wait();
}

bool eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  return done();
}

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void drop(const std::filesystem::path& spool, const std::string& name, const std::string& lines) {
  const auto tmp = spool / (name + ".tmp");
  std::ofstream(tmp, std::ios::binary) << lines;
  std::filesystem::rename(tmp, spool / name);
}

CliResult run_tactd(const std::filesystem::path& folder, const std::string& args) {
  const auto out = folder / "stdout";
  const auto err = folder / "stderr";
  const std::string command =
      std::string("'") + TACTD_BINARY + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
  const int raw = std::system(command.c_str());
  if (!WIFEXITED(raw)) throw std::runtime_error("tactd " + args + " did not exit (status " + std::to_string(raw) + ")");
  return CliResult{WEXITSTATUS(raw), slurp(out), slurp(err)};
}

std::pair<int, std::string> run_with_input(const std::string& command, const std::string& input) {
  char name[] = "/tmp/tactd-input-XXXXXX";
  const int fd = mkstemp(name);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  close(fd);
  std::ofstream(name, std::ios::binary) << input;
  const std::string line = command + " < '" + name + "' 2>&1";
  FILE* pipe = popen(line.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::string output;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  const int status = pclose(pipe);
  std::filesystem::remove(name);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

int logged_port(const std::filesystem::path& log, const std::string& pattern) {
  int port = 0;
  eventually([&] {
    const std::string text = slurp(log);
    const size_t at = text.find(pattern);
    if (at == std::string::npos) return false;
    port = std::atoi(text.c_str() + at + pattern.size());
    return true;
  });
  return port;
}

}  // namespace tactd::test
