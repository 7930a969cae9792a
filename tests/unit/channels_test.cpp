#include "channels/limits.h"

#include <catch2/catch.hpp>

using namespace tactd;
using namespace std::chrono_literals;

namespace {
Timestamp at(const char* text) { return *parse_rfc3339(text); }
}  // namespace

TEST_CASE("the token bucket lets a burst through, then the rate") {
  Timestamp now = at("2026-11-20T10:00:00Z");
  TokenBucket bucket(2.0, 3, now);  // 2 a second, 3 saved up
  CHECK(bucket.take(now));
  CHECK(bucket.take(now));
  CHECK(bucket.take(now));
  CHECK_FALSE(bucket.take(now));
  CHECK(bucket.wait(now) > 490ms);
  CHECK(bucket.wait(now) <= 501ms);
  now += 500ms;
  CHECK(bucket.wait(now) == Duration{});
  CHECK(bucket.take(now));
  CHECK_FALSE(bucket.take(now));
  now += 1h;  // a quiet spell saves up no more than the burst
  for (int i = 0; i < 3; ++i) CHECK(bucket.take(now));
  CHECK_FALSE(bucket.take(now));
}

TEST_CASE("the circuit breaker opens after failures in a row, then lets one trial through") {
  Timestamp now = at("2026-11-20T10:00:00Z");
  CircuitBreaker breaker;
  for (int i = 0; i < CircuitBreaker::kThreshold - 1; ++i) {
    CHECK(breaker.allows(now));
    breaker.record(false, now);
  }
  breaker.record(true, now);  // a success in between starts the count again
  for (int i = 0; i < CircuitBreaker::kThreshold; ++i) breaker.record(false, now);
  CHECK(breaker.open(now));
  CHECK_FALSE(breaker.allows(now + 29s));
  now += CircuitBreaker::kCooldown;
  CHECK(breaker.allows(now));        // the trial
  CHECK_FALSE(breaker.allows(now));  // only one at a time
  breaker.record(false, now);        // it failed: open twice as long
  CHECK(breaker.open(now + 59s));
  now += 60s;
  CHECK(breaker.allows(now));
  breaker.record(true, now);
  CHECK_FALSE(breaker.open(now));
  CHECK(breaker.allows(now));
  CHECK(breaker.allows(now));
}

TEST_CASE("retries back off exponentially with full jitter, capped, and never before Retry-After") {
  CHECK(retry_delay(2s, 1h, 1, 0.0) == Duration{});
  CHECK(retry_delay(2s, 1h, 1, 0.5) == 1s);
  CHECK(retry_delay(2s, 1h, 3, 0.5) == 4s);      // ceiling 8s
  CHECK(retry_delay(2s, 1h, 30, 0.5) == 30min);  // ceiling capped at 1h
  CHECK(retry_delay(2s, 1h, 1, 0.5, 7s) == 7s);
  CHECK(retry_delay(2s, 1h, 5, 0.99, 7s) > 7s);
}
