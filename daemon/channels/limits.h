// The manners of delivery: a token bucket per channel (rate limit), a
// circuit breaker per endpoint, and the retry schedule. Plain values driven
// by the caller's clock, so that tests step them with a VirtualClock.
#pragma once

#include <optional>

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

 private:
  void refill(Timestamp now);

  double rate_;
  double burst_;
  double tokens_;
  Timestamp last_;
};

// Stops sending to an endpoint that keeps failing: after kThreshold
// failures in a row it opens for a cooldown, then lets one attempt through
// (half-open); its success closes it, its failure opens it again for twice
// as long, up to kMaxCooldown.
class CircuitBreaker {
 public:
  static constexpr int kThreshold = 5;
  static constexpr Duration kCooldown = std::chrono::seconds{30};
  static constexpr Duration kMaxCooldown = std::chrono::minutes{10};

  // Whether an attempt may start now; in half-open state only one at a time.
  bool allows(Timestamp now);
  // The end of an attempt: `ok` when the endpoint answered as a healthy
  // endpoint does (also a permanent 4xx), false for timeouts and 5xx.
  void record(bool ok, Timestamp now);
  bool open(Timestamp now) const { return open_until_ && now < *open_until_; }
  // When it lets an attempt through again, while open.
  std::optional<Timestamp> open_until() const { return open_until_; }

 private:
  int failures_ = 0;
  Duration cooldown_ = kCooldown;
  std::optional<Timestamp> open_until_;
  bool trial_in_flight_ = false;
};

// The wait before retry number `attempt` + 1 after `attempt` failed
// attempts: full jitter, uniform in [0, min(max, base * 2^(attempt-1))),
// with `random01` uniform in [0, 1); never shorter than `retry_after`.
Duration retry_delay(Duration base, Duration max, int attempt, double random01,
                     std::optional<Duration> retry_after = std::nullopt);

}  // namespace tactd
