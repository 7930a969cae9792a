// The service manager's end of sd_notify for tests: a Unix datagram socket
// in a temporary folder of its own, read without blocking, that also
// learns each sender's PID (SO_PASSCRED), as systemd's NotifyAccess= does,
// and when the kernel received each datagram (SO_TIMESTAMP).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace tactd::test {

class NotifySocket {
 public:
  struct Datagram {
    std::string text;
    pid_t sender = 0;
    std::chrono::system_clock::time_point arrived;  // however late the test reads it
  };

  NotifySocket();
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // The value for NOTIFY_SOCKET.
  const std::string& path() const { return path_; }

  // Everything received so far, oldest first.
  const std::vector<Datagram>& received();
  // The texts received so far that start with `prefix`.
  std::vector<std::string> starting_with(const std::string& prefix);
  // The text of the next datagram not taken by next() before, or nullopt
  // when none has arrived.
  std::optional<std::string> next();

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::vector<Datagram> all_;
  std::size_t taken_ = 0;
};

}  // namespace tactd::test
