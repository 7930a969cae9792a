// The loopback servers of tests/support (recording_server.py,
// smtp_server.py), started as child processes for integration tests. Tests
// that include this link nlohmann_json.
#pragma once

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "support/daemon.h"
#include "support/temp_dir.h"

namespace tactd::test {

// The path of a script in tests/support.
inline std::string support_script(const char* script) { return (source_dir() / "tests/support" / script).string(); }

// A loopback server of tests/support started with `argv` + its folder
// `dir/<name>`: it writes `port` there once it listens, takes the answers
// a test scripts from `answers.json`, and records what it receives, one JSON
// line each.
class ScriptedServer {
 public:
  ScriptedServer(const TempDir& dir, const std::string& name, std::vector<std::string> argv)
      : folder_(dir.path() / name) {
    std::filesystem::create_directories(folder_);
    argv.insert(argv.begin() + 2, folder_.string());
    server_ = std::make_unique<Process>(argv, dir.path() / (name + ".log"));
    REQUIRE(eventually([&] { return std::filesystem::exists(folder_ / "port"); }));
  }
  std::string port() const { return slurp(folder_ / "port"); }
  void script(const nlohmann::json& answers) const {
    std::ofstream(folder_ / "answers.json.tmp") << answers.dump();
    std::filesystem::rename(folder_ / "answers.json.tmp", folder_ / "answers.json");
  }

 protected:
  std::vector<nlohmann::json> records(const std::string& file) const {
    std::vector<nlohmann::json> out;
    std::istringstream lines(slurp(folder_ / file));
    for (std::string line; std::getline(lines, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  std::filesystem::path folder_;

 private:
  std::unique_ptr<Process> server_;
};

// The recording HTTP server (recording_server.py): the stand-in for
// providers, webhook sinks and polled APIs.
class Provider : public ScriptedServer {
 public:
  explicit Provider(const TempDir& dir, const std::string& name = "provider")
      : ScriptedServer(dir, name, {"python3", support_script("recording_server.py")}),
        base_("http://127.0.0.1:" + port()) {}
  const std::string& base() const { return base_; }
  std::vector<nlohmann::json> requests() const { return records("requests.jsonl"); }

 private:
  std::string base_;
};

}  // namespace tactd::test
