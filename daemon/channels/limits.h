// The manners of delivery: a token bucket per channel (rate limit), a
// circuit breaker per endpoint, and the retry schedule. Plain values driven
// by the caller's clock, so that tests step them with a VirtualClock.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>

#include "model/time.h"

namespace tactd {

// `rate` tokens a second, at most `burst` saved up; starts full.
class TokenBucket {
 public:
  TokenBucket(double rate, int burst, Timestamp now);
  // Takes a token when there is one.
  bool take(Timestamp now);
  // How long until a token is there (zero when one is).
  Duration wait(Timestamp now);
  // How many tokens may be taken now.
  std::size_t available(Timestamp now);

 private:
  void refill(Timestamp now);

  double rate_;
  double burst_;
  double tokens_;
  Timestamp last_;
};

// Stops sending to an endpoint that is down, without stalling one that is
// up but flaky. Closed, it remembers the outcomes of the last kWindow
// attempts that ended within kWindowAge; it opens when at least kMinAttempts
// of them are there and kOpenRatio or more of them failed (a provider that
// fails four requests in ten almost never trips it). Open, it lets nothing
// through for kOpenFor; then it is half-open and lets one probe through.
// The probe's success closes it (the count starts afresh, the open time
// goes back to kOpenFor); its failure opens it again for twice as long, up
// to kMaxOpenFor. Any success closes it, also one of an attempt started
// before it opened: the endpoint answers.
class CircuitBreaker {
 public:
  static constexpr int kWindow = 30;
  static constexpr Duration kWindowAge = std::chrono::seconds{60};
  static constexpr int kMinAttempts = 20;
  static constexpr double kOpenRatio = 0.8;
  static constexpr Duration kOpenFor = std::chrono::seconds{2};
  static constexpr Duration kMaxOpenFor = std::chrono::seconds{60};

  enum class State { kClosed, kOpen, kHalfOpen };
  // What an attempt's end did to the breaker, for the caller's log.
  enum class Change { kNone, kOpened, kProbeFailed, kClosed };

  // Whether an attempt may start now; in half-open state only one at a time.
  bool allows(Timestamp now);
  // How many attempts may start now, without starting one: none while
  // open or while the half-open probe is out, one half-open, else `want`.
  std::size_t room(Timestamp now, std::size_t want) const;
  // The end of an attempt: `ok` when the endpoint answered as a healthy
  // endpoint does (also a permanent 4xx, or a 429 that says when to come
  // back), false for timeouts and 5xx.
  Change record(bool ok, Timestamp now);
  State state(Timestamp now) const;
  bool open(Timestamp now) const { return open_until_ && now < *open_until_; }
  // When it lets an attempt through again, while open.
  std::optional<Timestamp> open_until() const { return open_until_; }
  // Why it is open, for logs and /readyz: "9 of 10 attempts in the last
  // 60 s failed" or "the probe failed; next probe in 4 s". Empty while closed.
  const std::string& why() const { return why_; }

 private:
  struct Outcome {
    Timestamp at;
    bool ok;
  };
  std::deque<Outcome> window_;  // at most kWindow, oldest first
  Duration open_for_ = kOpenFor;
  std::optional<Timestamp> open_until_;
  bool probe_in_flight_ = false;
  std::string why_;
};

// The wait before retry number `attempt` + 1 after `attempt` failed
// attempts: full jitter, uniform in [0, min(max, base * 2^(attempt-1))),
// with `random01` uniform in [0, 1); never shorter than `retry_after`.
Duration retry_delay(Duration base, Duration max, int attempt, double random01,
                     std::optional<Duration> retry_after = std::nullopt);

}  // namespace tactd
