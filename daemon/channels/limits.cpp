#include "channels/limits.h"

#include <algorithm>
#include <utility>

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

std::size_t TokenBucket::available(Timestamp now) {
  refill(now);
  return tokens_ < 1.0 ? 0 : static_cast<std::size_t>(tokens_);
}

std::size_t CircuitBreaker::room(Timestamp now, std::size_t want) const {
  if (!open_until_) return want;
  if (now < *open_until_ || probe_in_flight_) return 0;
  return std::min<std::size_t>(want, 1);
}

bool CircuitBreaker::allows(Timestamp now) {
  if (!open_until_) return true;
  if (now < *open_until_ || probe_in_flight_) return false;
  probe_in_flight_ = true;  // half-open: one attempt decides
  return true;
}

CircuitBreaker::State CircuitBreaker::state(Timestamp now) const {
  if (!open_until_) return State::kClosed;
  return now < *open_until_ ? State::kOpen : State::kHalfOpen;
}

namespace {
long long whole_seconds(Duration d) {
  return std::max<long long>(
      1, std::chrono::duration_cast<std::chrono::seconds>(d + std::chrono::milliseconds{999}).count());
}
}  // namespace

CircuitBreaker::Change CircuitBreaker::record(bool ok, Timestamp now) {
  const bool probe = std::exchange(probe_in_flight_, false);
  if (ok && open_until_) {
    window_.clear();
    open_for_ = kOpenFor;
    why_.clear();
    open_until_.reset();
    return Change::kClosed;
  }
  if (open_until_) {
    if (!probe) return Change::kNone;  // an attempt started before it opened
    open_for_ = std::min(open_for_ * 2, kMaxOpenFor);
    open_until_ = now + open_for_;
    why_ = "the probe failed; next probe in " + std::to_string(whole_seconds(open_for_)) + " s";
    return Change::kProbeFailed;
  }
  window_.push_back({now, ok});
  while (static_cast<int>(window_.size()) > kWindow || (!window_.empty() && now - window_.front().at > kWindowAge))
    window_.pop_front();
  const auto failures = std::count_if(window_.begin(), window_.end(), [](const Outcome& o) { return !o.ok; });
  const auto attempts = static_cast<long>(window_.size());
  if (ok || attempts < kMinAttempts || static_cast<double>(failures) < kOpenRatio * static_cast<double>(attempts))
    return Change::kNone;
  open_until_ = now + open_for_;
  why_ = std::to_string(failures) + " of the last " + std::to_string(attempts) + " attempts within " +
         std::to_string(whole_seconds(kWindowAge)) + " s failed; next probe in " +
         std::to_string(whole_seconds(open_for_)) + " s";
  window_.clear();
  return Change::kOpened;
}

Duration retry_delay(Duration base, Duration max, int attempt, double random01, std::optional<Duration> retry_after) {
  Duration ceiling = base;
  for (int i = 1; i < attempt && ceiling < max; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max);
  const Duration jittered{static_cast<Duration::rep>(static_cast<double>(ceiling.count()) * random01)};
  return std::max(jittered, retry_after.value_or(Duration{}));
}

}  // namespace tactd
