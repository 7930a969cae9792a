#include "channels/delivery.h"

#include "ops/logging.h"

#include <spdlog/spdlog.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <set>

namespace tactd {
namespace asio = boost::asio;

Delivery::Delivery(Store& store, const Clock& clock, std::vector<Lane> lanes, Observer observer, ReleaseCheck release,
                   RoundEnd round_end)
    : store_(store),
      clock_(clock),
      observer_(std::move(observer)),
      release_(std::move(release)),
      round_end_(std::move(round_end)) {
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

void Delivery::settle_interrupted() {
  const Timestamp now = clock_.now();
  std::vector<Interrupted> settled;
  auto transaction = store_.begin();  // one commit for all of them
  for (OutboxEntry& entry : store_.interrupted()) {
    if (in_flight_.count(entry.id)) continue;
    const Channel channel = entry.notification.channel;
    const auto route = routes_.find(channel);
    const bool retry =
        route != routes_.end() && route->second->lane.config.on_unknown == ChannelConfig::OnUnknown::kRetry;
    const std::string provider = route != routes_.end() ? route->second->lane.config.provider : "none configured";
    const std::string since = entry.sending_since ? format_rfc3339(*entry.sending_since, "UTC") : "?";
    std::string detail = "the attempt started " + since + " was cut off (the process died or stopped) before " +
                         std::string(to_string(channel)) + " provider " + provider + " answered; ";
    if (retry)
      detail += "sent again with the same idempotency key (on_unknown = \"retry\")";
    else
      detail +=
          "whether it reached the customer is unknown (on_unknown = \"hold\"): check the provider's log, then "
          "tactd outbox resolve " +
          std::to_string(entry.id) + " delivered|retry|drop";
    if (!store_.settle_interrupted(entry.id, now, retry, detail)) continue;
    settled.push_back(Interrupted{std::move(entry), retry, std::move(detail)});
  }
  transaction->commit();
  for (const Interrupted& cut : settled) {
    spdlog::warn("delivery: send cut off {} {} {} {} {}", kv("outbox", std::to_string(cut.entry.id)),
                 kv("rule", cut.entry.notification.rule), kv("customer", cut.entry.notification.customer),
                 kv("outcome", cut.retried ? "retry" : "unknown"), kv("detail", cut.detail));
    if (interrupted_) interrupted_(cut);
  }
}

asio::awaitable<void> Delivery::run() {
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  try {
    settle_interrupted();
  } catch (const std::exception& e) {  // they stay claimed, to be settled at the next start
    spdlog::error("delivery: cannot settle the sends cut off before this start {}", kv("error", e.what()));
  }
  for (;;) {
    Duration wait = kMaxSleep;
    if (!store_verdicts()) wait = kVerdictRetry;
    if (stop_deadline_) {
      if (in_flight_.empty()) co_return;  // nothing in flight, every verdict stored
      const Timestamp now = clock_.now();
      if (now >= *stop_deadline_) {
        spdlog::warn(
            "delivery: stop grace over with {} attempts in flight and {} verdicts not stored; they are settled as "
            "cut off",
            in_flight_.size() - unstored_.size(), unstored_.size());
        unstored_.clear();
        in_flight_.clear();  // an answer after this still records its verdict
        try {
          settle_interrupted();
        } catch (const std::exception& e) {  // they stay claimed, to be settled at the next start
          spdlog::error("delivery: cannot settle the sends cut off by the stop {}", kv("error", e.what()));
        }
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
  // The attempts this round starts, sent once their claims are stored.
  struct Start {
    OutboxEntry entry;
    Notification message;
    std::shared_ptr<Route> route;
    bool trial = false;  // the half-open breaker's one attempt
  };
  std::vector<Start> starts;
  // The release checks and the claims of the round share one transaction,
  // begun at the first check: one begin and one commit for the round.
  std::unique_ptr<Store::Transaction> round;
  bool checked = false;  // a release check ran: round_end_ is owed its answer
  const auto abandon = [&] {
    for (const Start& start : starts) {
      in_flight_.erase(start.entry.id);
      if (start.trial) start.route->breaker.record(false, now);  // frees the half-open trial
    }
    round.reset();  // rolls back what the checks wrote
    if (checked && round_end_) round_end_(false);
  };
  std::set<Channel> refused;  // a verdict of theirs the store refused: they start nothing
  for (const Unstored& verdict : unstored_) refused.insert(verdict.end.channel);
  bool failed = false;  // a release check threw: the round's transaction may be undone, stop here
  for (auto& [channel, route_ptr] : routes_) {
    if (failed) break;
    Route& route = *route_ptr;
    const int concurrency = route.lane.config.concurrency;
    if (refused.count(channel) || in_flight(channel) >= concurrency) continue;
    // Entries in flight are claimed and no longer due, so the free
    // capacity in rows holds every one that may start now.
    const auto room = static_cast<std::size_t>(concurrency - in_flight(channel));
    int started = in_flight(channel);
    for (const OutboxEntry& entry : store_.due_notifications(now, channel, room)) {
      if (in_flight_.count(entry.id)) continue;
      if (started >= concurrency) break;
      if (auto skip = release_failed_.find(entry.id); skip != release_failed_.end()) {
        if (now < skip->second) continue;
        release_failed_.erase(skip);
      }
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
        if (!round) {
          try {
            round = store_.begin();
          } catch (const StoreError&) {  // nothing started yet this round: tried again after the backoff
            abandon();
            throw;
          }
        }
        try {
          checked = true;
          message = release_(entry);
        } catch (const std::exception& e) {
          // What the round's checks wrote may be undone with it: the round
          // is rolled back and tried again at once without this entry,
          // which waits kFailureBackoff.
          spdlog::error("delivery: release check failed {} {} {}", kv("outbox", std::to_string(entry.id)),
                        kv("error", e.what()),
                        kv("next_try_s",
                           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kFailureBackoff).count())));
          release_failed_[entry.id] = now + kFailureBackoff;
          failed = true;
          break;
        }
        if (!message) {
          again_ = true;  // its place this round is free for the next one
          continue;
        }
      }
      const bool trial = route.breaker.open_until().has_value();
      if (!route.breaker.allows(now)) break;  // half-open, its trial still out
      route.bucket.take(now);
      in_flight_.emplace(entry.id, channel);
      ++started;
      starts.push_back(Start{entry, std::move(*message), route_ptr, trial});
    }
  }
  if (failed) {
    abandon();
    again_ = true;
    return wait;
  }
  // The claims first, in the round's transaction: a crash from here on
  // leaves each entry marked as sent-or-not, never as plainly pending.
  std::vector<long long> ids;
  ids.reserve(starts.size());
  for (const Start& start : starts) ids.push_back(start.entry.id);
  try {
    store_.claim(ids, now);
    if (round) round->commit();
  } catch (const StoreError&) {  // nothing is sent unclaimed; the round is tried again
    abandon();
    throw;
  }
  round.reset();
  if (checked && round_end_) round_end_(true);
  for (Start& start : starts) {
    const int attempt = start.entry.attempts + 1;
    spdlog::debug("delivery: attempt {} {} {}", kv("outbox", std::to_string(start.entry.id)),
                  kv("attempt", std::to_string(attempt)), kv("channel", to_string(start.entry.notification.channel)));
    start.route->lane.sender->send(start.message, [this, entry = start.entry, attempt, keep = start.route](
                                                      Verdict verdict) { finish(entry, attempt, keep, verdict); });
  }
  // Notifications of a channel without a lane wait (run.cpp says so once).
  if (auto next = store_.next_notification(); next && *next > now) wait = std::min(wait, *next - now);
  return wait;
}

void Delivery::finish(const OutboxEntry& entry, int attempt, const std::shared_ptr<Route>& route,
                      const Verdict& verdict) {
  const Timestamp due = entry.notification.at;
  const Timestamp now = clock_.now();
  const ChannelConfig& config = route->lane.config;
  // A retry the provider timed (Retry-After, typically a 429) is pacing,
  // honoured per entry below, not a sign that the endpoint is down.
  const bool healthy = verdict.kind != Verdict::kRetry || verdict.retry_after.has_value();
  switch (route->breaker.record(healthy, now)) {
    case CircuitBreaker::Change::kNone:
      break;
    case CircuitBreaker::Change::kOpened:
    case CircuitBreaker::Change::kProbeFailed:
      ++route->openings;
      spdlog::warn("delivery: circuit breaker open {} {} {} {}", kv("channel", to_string(config.channel)),
                   kv("provider", config.provider), kv("why", route->breaker.why()),
                   kv("last_answer", verdict.reason.substr(0, kMaxDetail)));
      break;
    case CircuitBreaker::Change::kClosed:
      spdlog::info("delivery: circuit breaker closed {} {} {}", kv("channel", to_string(config.channel)),
                   kv("provider", config.provider), kv("why", "an attempt succeeded"));
      break;
  }
  Unstored out{entry, route, now, attempt, verdict.reason.substr(0, kMaxDetail), std::nullopt, {}};
  out.end = AttemptEnd{config.channel,
                       entry.notification.rule,
                       entry.notification.kind,
                       verdict.kind,
                       false,
                       {},
                       entry.id,
                       entry.notification.entity,
                       entry.notification.customer,
                       {}};
  switch (verdict.kind) {
    case Verdict::kDelivered:
      out.end.latency = now - due;
      break;
    case Verdict::kPermanent:
      out.end.dead = true;
      out.end.detail = out.detail;
      break;
    case Verdict::kRetry:
      if (attempt >= config.max_attempts)
        out.detail += "; gave up after " + std::to_string(attempt) + " attempts";
      else if (now - due >= config.max_age)
        out.detail += "; gave up: older than max_age";
      else
        out.retry_at =
            now + retry_delay(config.backoff, config.max_backoff, attempt,
                              std::uniform_real_distribution<double>(0.0, 1.0)(random_), verdict.retry_after);
      out.end.dead = !out.retry_at;
      out.end.detail = out.detail;
      break;
  }
  // Its entry stays in flight until the verdict is stored: not sent again.
  unstored_.push_back(std::move(out));
  wake();  // the next turn stores it, and its capacity is free then
}

void Delivery::write(const Unstored& verdict) {
  if (verdict.end.verdict == Verdict::kDelivered)
    store_.mark_delivered(verdict.entry.id, verdict.at, verdict.detail);
  else
    store_.record_failure(verdict.entry.id, verdict.at, verdict.detail, verdict.retry_at);
}

bool Delivery::store_verdicts() {
  if (unstored_.empty()) return true;
  std::vector<Unstored> verdicts = std::move(unstored_);
  unstored_.clear();
  std::string error;
  try {  // all in one transaction: one fsync for the lot
    auto transaction = store_.begin();
    for (const Unstored& verdict : verdicts) write(verdict);
    transaction->commit();
    for (const Unstored& verdict : verdicts) report(verdict);
  } catch (const std::exception& e) {  // StoreError, or a bug: one by one, keeping what is refused
    error = e.what();
    for (Unstored& verdict : verdicts) {
      try {
        auto transaction = store_.begin();
        write(verdict);
        transaction->commit();
        report(verdict);
      } catch (const std::exception& one) {
        error = one.what();
        unstored_.push_back(std::move(verdict));
      }
    }
  }
  const Timestamp now = clock_.now();
  if (unstored_.empty()) {
    if (refused_since_)
      spdlog::warn("delivery: verdicts stored again, sending goes on {}",
                   kv("refused_for_s",
                      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *refused_since_).count())));
    refused_since_.reset();
    refusal_logged_.reset();
    return true;
  }
  if (!refused_since_) refused_since_ = now;
  if (!refusal_logged_ || now - *refusal_logged_ >= kVerdictLogEvery) {
    refusal_logged_ = now;
    std::string channels;
    for (const Unstored& verdict : unstored_) {
      const std::string name(to_string(verdict.end.channel));
      if (channels.find(name) == std::string::npos) channels += (channels.empty() ? "" : ",") + name;
    }
    spdlog::error(
        "delivery: verdicts not stored, kept and written again; their channels send nothing meanwhile {} {} {}",
        kv("verdicts", std::to_string(unstored_.size())), kv("channels", channels), kv("error", error));
  }
  return false;
}

void Delivery::report(const Unstored& verdict) {
  const long long id = verdict.entry.id;
  in_flight_.erase(id);
  const Notification& n = verdict.entry.notification;
  const std::string& provider = verdict.route->lane.config.provider;
  switch (verdict.end.verdict) {
    case Verdict::kDelivered:  // a line per message at debug: at info it costs more than the delivery
      spdlog::debug("delivery: delivered {} {} {} {} {}", kv("outbox", std::to_string(id)), kv("rule", n.rule),
                    kv("customer", n.customer), kv("provider", provider),
                    kv("attempt", std::to_string(verdict.attempt)));
      break;
    case Verdict::kPermanent:
      spdlog::warn("delivery: dead letter {} {} {} {} {}", kv("outbox", std::to_string(id)), kv("rule", n.rule),
                   kv("customer", n.customer), kv("provider", provider), kv("answer", verdict.detail));
      break;
    case Verdict::kRetry:
      if (verdict.retry_at)
        spdlog::warn("delivery: retry {} {} {} {}", kv("outbox", std::to_string(id)),
                     kv("attempt", std::to_string(verdict.attempt)), kv("answer", verdict.detail),
                     kv("retry_at", format_rfc3339(*verdict.retry_at, "UTC")));
      else
        spdlog::warn("delivery: dead letter {} {} {} {}", kv("outbox", std::to_string(id)), kv("rule", n.rule),
                     kv("customer", n.customer), kv("answer", verdict.detail));
      break;
  }
  if (observer_) observer_(verdict.end);
}

}  // namespace tactd
