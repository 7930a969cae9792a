#include "channels/limits.h"

#include <algorithm>

namespace tactd {

TokenBucket::TokenBucket(double rate, int burst, Timestamp now)
    : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}

void TokenBucket::refill(Timestamp now) {
  if (now <= last_) return;
  const double seconds = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + seconds * rate_);
  last_ = now;
}

bool TokenBucket::take(Timestamp now) {
  refill(now);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Duration TokenBucket::wait(Timestamp now) {
  refill(now);
  if (tokens_ >= 1.0) return Duration{};
  const double seconds = (1.0 - tokens_) / rate_;
  return Duration{static_cast<Duration::rep>(seconds * 1000.0) + 1};
}

bool CircuitBreaker::allows(Timestamp now) {
  if (!open_until_) return true;
  if (now < *open_until_ || trial_in_flight_) return false;
  trial_in_flight_ = true;  // half-open: one attempt decides
  return true;
}

void CircuitBreaker::record(bool ok, Timestamp now) {
  const bool trial = trial_in_flight_;
  trial_in_flight_ = false;
  if (ok) {
    failures_ = 0;
    cooldown_ = kCooldown;
    open_until_.reset();
    return;
  }
  ++failures_;
  if (trial) {
    cooldown_ = std::min(cooldown_ * 2, kMaxCooldown);
    open_until_ = now + cooldown_;
  } else if (!open_until_ && failures_ >= kThreshold) {
    open_until_ = now + cooldown_;
  }
}

Duration retry_delay(Duration base, Duration max, int attempt, double random01, std::optional<Duration> retry_after) {
  Duration ceiling = base;
  for (int i = 1; i < attempt && ceiling < max; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max);
  const Duration jittered{static_cast<Duration::rep>(static_cast<double>(ceiling.count()) * random01)};
  return std::max(jittered, retry_after.value_or(Duration{}));
}

}  // namespace tactd
