// The daemon of `tactd run`: one object that owns the components and their
// order of start, reload, drain and stop.
//
//   start   store open -> pipeline -> timers -> delivery -> operators'
//           channel -> sources -> push endpoint -> admin endpoint -> READY=1
//   reload  (SIGHUP) a new snapshot of configuration, rules, templates, tone
//           and channels, validated whole and swapped on the loop; an invalid
//           one keeps the running snapshot and says why
//   stop    (SIGTERM, SIGINT) STOPPING=1 -> intake stops (push answers 503)
//           -> deliveries in flight, and the operators' digest of what
//           waits, finish within [tactd] stop_grace -> exit
//
// Everything runs on the daemon's own io_context, on the thread that calls
// run(); every coroutine it starts ends or is destroyed before the Daemon is.
#pragma once

#include <filesystem>
#include <memory>
#include <stdexcept>

#include "model/clock.h"
#include "pipeline/snapshot.h"

namespace tactd {

// A daemon that cannot start: the message says what and where, for people.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Daemon {
 public:
  // Opens the state and binds the endpoints of `snapshot`, which was loaded
  // from `config_file` (a reload reads that file again). Throws
  // StartupError. `clock` must outlive the Daemon.
  Daemon(std::filesystem::path config_file, Snapshot snapshot, const Clock& clock);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until a stop signal has drained it, or a loop died of a bug.
  // Returns the exit status: 0 after a clean stop, 1 after a failure.
  int run();

  // The same as the signals, for tests and embedding: call on the loop
  // (from a handler) or before run().
  void reload();
  void start_shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tactd
