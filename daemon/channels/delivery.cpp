#include "channels/delivery.h"

#include <spdlog/spdlog.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace tactd {
namespace asio = boost::asio;

Delivery::Delivery(Store& store, const Clock& clock, std::vector<Lane> lanes) : store_(store), clock_(clock) {
  for (auto& lane : lanes) {
    const Channel channel = lane.config.channel;
    const double rate = lane.config.rate;
    const int burst = lane.config.burst;
    routes_[channel] = std::make_unique<Route>(Route{std::move(lane), TokenBucket(rate, burst, clock.now()), {}, 0});
  }
}

asio::awaitable<void> Delivery::run() {
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  for (;;) {
    Duration wait = kMaxSleep;
    try {
      wait = std::min(wait, start_due());
      if (std::exchange(again_, false)) wait = Duration::zero();
    } catch (const StoreError& e) {
      spdlog::error("delivery: {}", e.what());
    }
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
    const int concurrency = route.lane.config.concurrency;
    if (route.in_flight >= concurrency) continue;
    // The entries in flight are still pending and due, so `concurrency`
    // rows hold every one that may start now.
    for (const OutboxEntry& entry : store_.due_notifications(now, channel, static_cast<std::size_t>(concurrency))) {
      if (in_flight_.count(entry.id)) continue;
      if (route.in_flight >= concurrency) break;
      if (route.breaker.open(now)) {
        wait = std::min(wait, *route.breaker.open_until() - now);
        break;
      }
      if (const Duration token = route.bucket.wait(now); token > Duration{}) {
        wait = std::min(wait, token);
        break;
      }
      if (!route.breaker.allows(now)) break;  // half-open, its trial still out
      route.bucket.take(now);
      ++route.in_flight;
      in_flight_.insert(entry.id);
      const int attempt = entry.attempts + 1;
      const long long id = entry.id;
      const Timestamp due = entry.notification.at;
      spdlog::debug("delivery: outbox {} attempt {} to {}", id, attempt, to_string(channel));
      route.lane.sender->send(entry.notification, [this, id, attempt, due, &route](Verdict verdict) {
        finish(id, attempt, due, route, verdict);
      });
    }
  }
  // Notifications of a channel without a lane wait (run.cpp says so once).
  if (auto next = store_.next_notification(); next && *next > now) wait = std::min(wait, *next - now);
  return wait;
}

void Delivery::finish(long long id, int attempt, Timestamp due, Route& route, const Verdict& verdict) {
  --route.in_flight;
  in_flight_.erase(id);
  const Timestamp now = clock_.now();
  const ChannelConfig& config = route.lane.config;
  route.breaker.record(verdict.kind != Verdict::kRetry, now);
  const std::string detail = verdict.reason.substr(0, kMaxDetail);
  try {
    switch (verdict.kind) {
      case Verdict::kDelivered:
        store_.mark_delivered(id, now, detail);
        spdlog::info("delivery: outbox {} delivered by {} (attempt {})", id, config.provider, attempt);
        break;
      case Verdict::kPermanent:
        store_.record_failure(id, now, detail, std::nullopt);
        spdlog::warn("delivery: outbox {} refused by {}, dead letter: {}", id, config.provider, detail);
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
        if (retry_at)
          spdlog::warn("delivery: outbox {} attempt {} failed ({}), retry at {}", id, attempt, detail,
                       format_rfc3339(*retry_at, "UTC"));
        else
          spdlog::warn("delivery: outbox {} dead letter: {}", id, why);
        break;
      }
    }
  } catch (const StoreError& e) {
    spdlog::error("delivery: outbox {}: {}", id, e.what());
  }
  if (wake_)
    wake_->cancel();
  else
    again_ = true;  // ended inside start_due(): its capacity is free now
}

}  // namespace tactd
