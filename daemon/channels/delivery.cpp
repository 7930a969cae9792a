#include "channels/delivery.h"

#include "ops/logging.h"

#include <spdlog/spdlog.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace tactd {
namespace asio = boost::asio;

Delivery::Delivery(Store& store, const Clock& clock, std::vector<Lane> lanes, Observer observer, ReleaseCheck release)
    : store_(store), clock_(clock), observer_(std::move(observer)), release_(std::move(release)) {
  reconfigure(std::move(lanes));
}

void Delivery::reconfigure(std::vector<Lane> lanes) {
  std::map<Channel, std::shared_ptr<Route>> routes;
  for (auto& lane : lanes) {
    const Channel channel = lane.config.channel;
    if (auto old = routes_.find(channel); old != routes_.end() && old->second->lane.config == lane.config) {
      routes[channel] = old->second;  // unchanged: keeps its bucket and breaker
      continue;
    }
    const double rate = lane.config.rate;
    const int burst = lane.config.burst;
    routes[channel] = std::make_shared<Route>(Route{std::move(lane), TokenBucket(rate, burst, clock_.now()), {}});
  }
  routes_ = std::move(routes);
  wake();
}

void Delivery::wake() {
  if (wake_)
    wake_->cancel();
  else
    again_ = true;
}

void Delivery::start_shutdown(Timestamp deadline) {
  stop_deadline_ = deadline;
  wake();
}

int Delivery::in_flight(Channel channel) const {
  return static_cast<int>(std::count_if(in_flight_.begin(), in_flight_.end(),
                                        [channel](const auto& attempt) { return attempt.second == channel; }));
}

std::vector<Delivery::ChannelState> Delivery::channels() const {
  const Timestamp now = clock_.now();
  std::vector<ChannelState> out;
  for (const auto& [channel, route] : routes_)
    out.push_back({channel, route->lane.config.provider, route->breaker.open(now), route->breaker.state(now),
                   route->breaker.why(), route->openings, in_flight(channel)});
  return out;
}

asio::awaitable<void> Delivery::run() {
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  for (;;) {
    Duration wait = kMaxSleep;
    if (stop_deadline_) {
      if (in_flight_.empty()) co_return;
      const Timestamp now = clock_.now();
      if (now >= *stop_deadline_) {
        spdlog::warn("delivery: stop grace over with {} attempts in flight; they stay pending for the next start",
                     in_flight_.size());
        co_return;
      }
      wait = std::min(wait, *stop_deadline_ - now);
    } else {
      try {
        wait = std::min(wait, start_due());
      } catch (const std::exception& e) {  // one round failed (the store, a bug): the next one tries again
        spdlog::error("delivery: {} {}", kv("error", e.what()),
                      kv("next_try_s",
                         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kFailureBackoff).count())));
        wait = kFailureBackoff;
        again_ = false;
      }
    }
    if (std::exchange(again_, false)) wait = Duration::zero();
    sleep.expires_after(std::max(wait, Duration{1}));
    wake_ = &sleep;
    boost::system::error_code ec;  // cancelled: an attempt ended
    co_await sleep.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    wake_ = nullptr;
  }
}

Duration Delivery::start_due() {
  const Timestamp now = clock_.now();
  Duration wait = kMaxSleep;
  for (auto& [channel, route_ptr] : routes_) {
    Route& route = *route_ptr;
    const std::shared_ptr<Route> keep = route_ptr;
    const int concurrency = route.lane.config.concurrency;
    if (in_flight(channel) >= concurrency) continue;
    // The entries in flight are still pending and due, so `concurrency`
    // rows hold every one that may start now.
    for (const OutboxEntry& entry : store_.due_notifications(now, channel, static_cast<std::size_t>(concurrency))) {
      if (in_flight_.count(entry.id)) continue;
      if (in_flight(channel) >= concurrency) break;
      if (route.breaker.open(now)) {
        wait = std::min(wait, *route.breaker.open_until() - now);
        break;
      }
      if (const Duration token = route.bucket.wait(now); token > Duration{}) {
        wait = std::min(wait, token);
        break;
      }
      std::optional<Notification> message = entry.notification;
      if (release_) {
        try {
          message = release_(entry);
        } catch (const std::exception& e) {
          spdlog::error("delivery: release check failed {} {}", kv("outbox", std::to_string(entry.id)),
                        kv("error", e.what()));
          continue;
        }
        if (!message) {
          again_ = true;  // its place this round is free for the next one
          continue;
        }
      }
      if (!route.breaker.allows(now)) break;  // half-open, its trial still out
      route.bucket.take(now);
      in_flight_.emplace(entry.id, channel);
      const int attempt = entry.attempts + 1;
      spdlog::debug("delivery: attempt {} {} {}", kv("outbox", std::to_string(entry.id)),
                    kv("attempt", std::to_string(attempt)), kv("channel", to_string(channel)));
      route.lane.sender->send(
          *message, [this, entry, attempt, keep](Verdict verdict) { finish(entry, attempt, *keep, verdict); });
    }
  }
  // Notifications of a channel without a lane wait (run.cpp says so once).
  if (auto next = store_.next_notification(); next && *next > now) wait = std::min(wait, *next - now);
  return wait;
}

void Delivery::finish(const OutboxEntry& entry, int attempt, Route& route, const Verdict& verdict) {
  const long long id = entry.id;
  const Timestamp due = entry.notification.at;
  in_flight_.erase(id);
  AttemptEnd end{route.lane.config.channel,
                 entry.notification.rule,
                 entry.notification.kind,
                 verdict.kind,
                 false,
                 {},
                 id,
                 entry.notification.entity,
                 entry.notification.customer,
                 {}};
  const Timestamp now = clock_.now();
  const ChannelConfig& config = route.lane.config;
  // A retry the provider timed (Retry-After, typically a 429) is pacing,
  // honoured per entry below, not a sign that the endpoint is down.
  const bool healthy = verdict.kind != Verdict::kRetry || verdict.retry_after.has_value();
  switch (route.breaker.record(healthy, now)) {
    case CircuitBreaker::Change::kNone:
      break;
    case CircuitBreaker::Change::kOpened:
    case CircuitBreaker::Change::kProbeFailed:
      ++route.openings;
      spdlog::warn("delivery: circuit breaker open {} {} {} {}", kv("channel", to_string(config.channel)),
                   kv("provider", config.provider), kv("why", route.breaker.why()),
                   kv("last_answer", verdict.reason.substr(0, kMaxDetail)));
      break;
    case CircuitBreaker::Change::kClosed:
      spdlog::info("delivery: circuit breaker closed {} {} {}", kv("channel", to_string(config.channel)),
                   kv("provider", config.provider), kv("why", "an attempt succeeded"));
      break;
  }
  const std::string detail = verdict.reason.substr(0, kMaxDetail);
  try {
    switch (verdict.kind) {
      case Verdict::kDelivered:
        store_.mark_delivered(id, now, detail);
        end.latency = now - due;
        spdlog::info("delivery: delivered {} {} {} {} {}", kv("outbox", std::to_string(id)),
                     kv("rule", entry.notification.rule), kv("customer", entry.notification.customer),
                     kv("provider", config.provider), kv("attempt", std::to_string(attempt)));
        break;
      case Verdict::kPermanent:
        store_.record_failure(id, now, detail, std::nullopt);
        end.dead = true;
        end.detail = detail;
        spdlog::warn("delivery: dead letter {} {} {} {} {}", kv("outbox", std::to_string(id)),
                     kv("rule", entry.notification.rule), kv("customer", entry.notification.customer),
                     kv("provider", config.provider), kv("answer", detail));
        break;
      case Verdict::kRetry: {
        std::optional<Timestamp> retry_at;
        std::string why = detail;
        if (attempt >= config.max_attempts)
          why += "; gave up after " + std::to_string(attempt) + " attempts";
        else if (now - due >= config.max_age)
          why += "; gave up: older than max_age";
        else
          retry_at = now + retry_delay(config.backoff, config.max_backoff, attempt,
                                       std::uniform_real_distribution<double>(0.0, 1.0)(random_), verdict.retry_after);
        store_.record_failure(id, now, why, retry_at);
        end.dead = !retry_at;
        end.detail = why;
        if (retry_at)
          spdlog::warn("delivery: retry {} {} {} {}", kv("outbox", std::to_string(id)),
                       kv("attempt", std::to_string(attempt)), kv("answer", detail),
                       kv("retry_at", format_rfc3339(*retry_at, "UTC")));
        else
          spdlog::warn("delivery: dead letter {} {} {} {}", kv("outbox", std::to_string(id)),
                       kv("rule", entry.notification.rule), kv("customer", entry.notification.customer),
                       kv("answer", why));
        break;
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("delivery: verdict not stored {} {}", kv("outbox", std::to_string(id)), kv("error", e.what()));
  }
  if (observer_) observer_(end);
  wake();  // its capacity is free now
}

}  // namespace tactd
