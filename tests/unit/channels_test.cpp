#include "channels/limits.h"

#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "channels/actions.h"
#include "signing/signing.h"

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

TEST_CASE("the circuit breaker opens when most recent attempts fail, then lets one probe through") {
  Timestamp now = at("2026-11-20T10:00:00Z");
  CircuitBreaker breaker;
  using Change = CircuitBreaker::Change;
  for (int i = 0; i < CircuitBreaker::kMinAttempts - 1; ++i) {
    CHECK(breaker.allows(now));
    CHECK(breaker.record(false, now) == Change::kNone);  // too few to judge
  }
  CHECK(breaker.record(false, now) == Change::kOpened);
  CHECK(breaker.state(now) == CircuitBreaker::State::kOpen);
  CHECK(breaker.why() == "20 of the last 20 attempts within 60 s failed; next probe in 2 s");
  CHECK_FALSE(breaker.allows(now + 1s));
  CHECK(breaker.record(false, now + 1s) == Change::kNone);  // an attempt started before it opened
  CHECK(breaker.open_until() == now + CircuitBreaker::kOpenFor);
  now += CircuitBreaker::kOpenFor;
  CHECK(breaker.state(now) == CircuitBreaker::State::kHalfOpen);
  CHECK(breaker.allows(now));                                 // the probe
  CHECK_FALSE(breaker.allows(now));                           // only one at a time
  CHECK(breaker.record(false, now) == Change::kProbeFailed);  // open twice as long
  CHECK(breaker.why() == "the probe failed; next probe in 4 s");
  CHECK(breaker.open(now + 3s));
  now += 4s;
  CHECK(breaker.allows(now));
  CHECK(breaker.record(true, now) == Change::kClosed);
  CHECK(breaker.state(now) == CircuitBreaker::State::kClosed);
  CHECK(breaker.why().empty());
  CHECK(breaker.allows(now));
  CHECK(breaker.allows(now));
  // Closed again, it starts counting afresh and opens for the short time again.
  for (int i = 0; i < CircuitBreaker::kMinAttempts; ++i) breaker.record(false, now);
  CHECK(breaker.open_until() == now + CircuitBreaker::kOpenFor);
}

TEST_CASE("the circuit breaker's open time grows only while probes fail, up to its maximum") {
  Timestamp now = at("2026-11-20T10:00:00Z");
  CircuitBreaker breaker;
  for (int i = 0; i < CircuitBreaker::kMinAttempts; ++i) breaker.record(false, now);
  Duration open_for = CircuitBreaker::kOpenFor;
  for (int probe = 0; probe < 10; ++probe) {
    now = *breaker.open_until();
    REQUIRE(breaker.allows(now));
    breaker.record(false, now);
    open_for = std::min(open_for * 2, CircuitBreaker::kMaxOpenFor);
    CHECK(*breaker.open_until() - now == open_for);
  }
  CHECK(open_for == CircuitBreaker::kMaxOpenFor);
}

TEST_CASE("a provider that fails four requests in ten does not trip the circuit breaker") {
  Timestamp now = at("2026-11-20T10:00:00Z");
  CircuitBreaker breaker;
  std::mt19937 random(12);
  std::bernoulli_distribution fails(0.4);
  for (int i = 0; i < 10'000; ++i) {
    REQUIRE(breaker.allows(now));
    REQUIRE(breaker.record(!fails(random), now) == CircuitBreaker::Change::kNone);
    now += 10ms;
  }
}

TEST_CASE("failures spread over a long time do not add up in the circuit breaker") {
  Timestamp now = at("2026-11-20T10:00:00Z");
  CircuitBreaker breaker;
  for (int i = 0; i < 5 * CircuitBreaker::kMinAttempts; ++i) {
    CHECK(breaker.record(false, now) == CircuitBreaker::Change::kNone);
    now += CircuitBreaker::kWindowAge / (CircuitBreaker::kMinAttempts - 2);
  }
}

TEST_CASE("a success while the circuit breaker is open closes it: the endpoint answers") {
  Timestamp now = at("2026-11-20T10:00:00Z");
  CircuitBreaker breaker;
  for (int i = 0; i < CircuitBreaker::kMinAttempts; ++i) breaker.record(false, now);
  REQUIRE(breaker.open(now));
  CHECK(breaker.record(true, now + 1s) == CircuitBreaker::Change::kClosed);
  CHECK(breaker.allows(now + 1s));
}

TEST_CASE("retries back off exponentially with full jitter, capped, and never before Retry-After") {
  CHECK(retry_delay(2s, 1h, 1, 0.0) == Duration{});
  CHECK(retry_delay(2s, 1h, 1, 0.5) == 1s);
  CHECK(retry_delay(2s, 1h, 3, 0.5) == 4s);      // ceiling 8s
  CHECK(retry_delay(2s, 1h, 30, 0.5) == 30min);  // ceiling capped at 1h
  CHECK(retry_delay(2s, 1h, 1, 0.5, 7s) == 7s);
  CHECK(retry_delay(2s, 1h, 5, 0.99, 7s) > 7s);
}

TEST_CASE("an action's request is signed JSON with a key derived from the notification's") {
  ActionConfig action;
  action.name = "voucher";
  action.url = "https://shop.example/api/vouchers";
  action.secret = "k";
  action.timeout = 3s;
  Notification n;
  n.idempotency_key = "delivery-promise-broken|order/A-1|at";
  n.rule = "delivery-promise-broken";
  n.customer = "c-1";
  n.entity = EntityRef{EntityType::kOrder, "A-1"};
  n.at = at("2026-11-20T10:00:00Z");
  const Timestamp now = at("2026-11-20T10:00:05Z");
  const HttpClientRequest request = action_request(action, n, {{"total", 42}}, now);
  CHECK(request.method == "POST");
  CHECK(request.url == action.url);
  CHECK(request.timeout == 3s);
  std::map<std::string, std::string> headers(request.headers.begin(), request.headers.end());
  CHECK(headers["Idempotency-Key"] == action_idempotency_key(n.idempotency_key));
  CHECK(headers["Idempotency-Key"].size() == std::string("tactd-action-").size() + 32);
  CHECK(action_idempotency_key(n.idempotency_key) != action_idempotency_key(n.idempotency_key + "x"));
  CHECK(headers["X-Tactd-Timestamp"] == "1795168805");
  CHECK(headers["X-Tactd-Signature"] == webhook_signature("k", "1795168805", request.body));
  const auto body = nlohmann::json::parse(request.body);
  CHECK(body["entity"] == nlohmann::json{{"type", "order"}, {"id", "A-1"}, {"fields", {{"total", 42}}}});
  CHECK(body["customer"] == "c-1");
  CHECK(body["idempotency_key"] == n.idempotency_key);
}

TEST_CASE("an action's answer is taken as a JSON object, retried when it may come later, else failed") {
  const Timestamp now = at("2026-11-20T10:00:00Z");
  const auto judged = [&](long status, std::string body, std::string error = "") {
    HttpClientResponse response;
    response.status = status;
    response.body = std::move(body);
    response.error = std::move(error);
    return judge_action(response, now);
  };
  auto ok = judged(201, R"({"code": "SORRY-1", "amount": "EUR 5"})");
  CHECK(ok.state == ActionState::kDone);
  CHECK(ok.answer["code"] == "SORRY-1");
  CHECK(ok.detail == "HTTP 201, answered amount, code");
  CHECK(judged(0, "", "Timeout was reached").state == ActionState::kPending);
  CHECK(judged(503, "busy").state == ActionState::kPending);
  CHECK(judged(429, "").state == ActionState::kPending);
  auto refused = judged(422, R"({"error": "not eligible"})");
  CHECK(refused.state == ActionState::kFailed);
  CHECK_THAT(refused.detail, Catch::Contains("refused: HTTP 422"));
  auto invalid = judged(200, "[1, 2]");
  CHECK(invalid.state == ActionState::kFailed);
  CHECK_THAT(invalid.detail, Catch::StartsWith("invalid answer: HTTP 200"));
  CHECK(judged(200, "not json").state == ActionState::kFailed);
  CHECK(judged(302, "").state == ActionState::kFailed);
}
