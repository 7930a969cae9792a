// Wrong admin tokens, wherever they are given (the console's login form,
// `Authorization: Bearer` on the admin endpoint's /v1/ routes): at most
// kMaxFailures in any kWindow. Once that many lie within the last kWindow,
// every attempt (with the right token too) is refused until the oldest of
// them is kWindow old, so that guessing the token goes no faster than
// kMaxFailures a minute. One count for everyone: the admin endpoint is
// reached over loopback (an SSH tunnel), where every client has the same
// address. Header-only: values and a deque, no I/O; not thread-safe (the
// loop's).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>

#include "model/time.h"

namespace tactd {

class TokenThrottle {
 public:
  static constexpr std::size_t kMaxFailures = 5;
  static constexpr auto kWindow = std::chrono::minutes{1};

  // How long an attempt must wait at `now`: zero when it may be made.
  Duration wait(Timestamp now) {
    while (!failures_.empty() && failures_.front() + kWindow <= now) failures_.pop_front();
    if (failures_.size() < kMaxFailures) return Duration::zero();
    return failures_.front() + kWindow - now;
  }
  // A wrong token was given at `now`; true when that made the throttle
  // engage (for the log).
  bool failed(Timestamp now) {
    failures_.push_back(now);
    while (failures_.size() > kMaxFailures) failures_.pop_front();
    return wait(now) > Duration::zero();
  }
  // `wait` in whole seconds, rounded up: a Retry-After.
  static long long seconds(Duration wait) { return std::chrono::ceil<std::chrono::seconds>(wait).count(); }

 private:
  std::deque<Timestamp> failures_;  // the last kMaxFailures, oldest first
};

}  // namespace tactd
