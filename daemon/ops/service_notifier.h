// Tells systemd how the service is doing over the sd_notify protocol
// (Type=notify, WatchdogSec=): ready, reloading, stopping, a status line,
// and watchdog keep-alives. libsystemd stays behind this header.
//
// Without NOTIFY_SOCKET in the environment (not started by systemd, or the
// unit is not Type=notify) every call is a silent no-op. The environment is
// read on every call and never changed. A failed send is logged (once until
// a send works again) and otherwise ignored: the service keeps running.
//
// Each call sends one datagram on a Unix socket and does not wait for an
// answer; call on the loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tactd {

class ServiceNotifier {
 public:
  // A status line longer than this is cut at a UTF-8 character boundary.
  static constexpr std::size_t kMaxStatusBytes = 256;

  // "READY=1\nSTATUS=<status>": start-up is complete.
  void ready(std::string_view status);
  // "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>": a reload began;
  // send ready() when it is done. systemd 253 and later want the timestamp.
  void reloading();
  // "STOPPING=1": shutdown began.
  void stopping();
  // "STATUS=<status>", shown by `systemctl status`. Control characters
  // (newlines among them) become spaces, so a status never adds another
  // assignment.
  void status(std::string_view status);
  // "WATCHDOG=1": the loop is alive. Send it every watchdog_interval() / 2.
  void watchdog();

  // The interval within which systemd expects watchdog(), when the unit has
  // WatchdogSec= and it is meant for this process (WATCHDOG_USEC, and
  // WATCHDOG_PID when set, equal to our PID); nullopt otherwise.
  std::optional<std::chrono::microseconds> watchdog_interval() const;

 private:
  void send(const std::string& message);

  bool failing_ = false;
};

}  // namespace tactd
