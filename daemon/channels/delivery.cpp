#include "channels/delivery.h"

#include "ops/logging.h"
#include "store/state_runner.h"

#include <spdlog/spdlog.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <iterator>
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
  const auto count = under_way_.find(channel);
  return count == under_way_.end() ? 0 : count->second;
}

std::size_t Delivery::in_flight() const {
  std::size_t all = 0;
  for (const auto& [channel, count] : under_way_) all += static_cast<std::size_t>(count);
  return all;
}

void Delivery::under_way(Channel channel, int change) {
  int& count = under_way_[channel];
  count = std::max(0, count + change);  // a verdict after a stop's grace finds it cleared
}

Duration Delivery::lease_for(const ChannelConfig& channel) {
  return std::max<Duration>(kMinLease, 4 * channel.timeout);
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
  const bool shared = others_ && others_();
  auto transaction = store_.begin();                       // one commit for all of them
  for (OutboxEntry& entry : transaction->interrupted()) {  // nothing is in flight at a start or after a stop's grace
    const Channel channel = entry.notification.channel;
    const auto route = routes_.find(channel);
    // Another replica's send may be under way, until its timeout.
    if (shared && entry.sending_since &&
        *entry.sending_since + (route != routes_.end() ? cut_off_after(route->second->lane.config) : kMinLease) > now)
      continue;
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
    if (!transaction->settle_interrupted(entry.id, now, retry, detail)) continue;
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
  // The store's work of each step, on its fiber when it has them.
  const StateRunner state(store_.fibers());
  const auto settle = [this] { settle_interrupted(); };
  const auto store = [this] { return store_verdicts(); };
  const auto step = [this] { return turn(); };
  try {
    co_await state.run(settle);
  } catch (const std::exception& e) {  // they stay claimed, to be settled at the next start
    spdlog::error("delivery: cannot settle the sends cut off before this start {}", kv("error", e.what()));
  }
  for (;;) {
    Duration wait = kMaxSleep;
    if (stop_deadline_) {
      if (!co_await state.run(store)) wait = kVerdictRetry;
      if (in_flight() == 0) co_return;  // nothing in flight, every verdict stored
      const Timestamp now = clock_.now();
      if (now >= *stop_deadline_) {
        spdlog::warn(
            "delivery: stop grace over with {} attempts in flight and {} verdicts not stored; they are settled as "
            "cut off",
            in_flight() - unstored_.size(), unstored_.size());
        unstored_.clear();
        under_way_.clear();  // an answer after this still records its verdict
        try {
          co_await state.run(settle);
        } catch (const std::exception& e) {  // they stay claimed, to be settled at the next start
          spdlog::error("delivery: cannot settle the sends cut off by the stop {}", kv("error", e.what()));
        }
        co_return;
      }
      wait = std::min(wait, *stop_deadline_ - now);
    } else {
      try {
        wait = std::min(wait, co_await state.run(step));
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

Duration Delivery::turn() {
  const Timestamp now = clock_.now();
  Duration wait = kMaxSleep;
  // The round's transaction: the verdicts that came since the last turn,
  // the release checks and the claims, one begin and one commit.
  std::unique_ptr<Store::Transaction> round;
  std::vector<Unstored> written;  // verdicts in `round`, reported once it commits
  if (!unstored_.empty()) {
    std::string error;
    // Taken out first: on a store that suspends (StateRunner), verdicts
    // arriving meanwhile join unstored_ for the next turn.
    std::vector<Unstored> batch = std::move(unstored_);
    unstored_.clear();
    try {
      round = store_.begin();
      for (const Unstored& verdict : batch) write(*round, verdict);
      written = std::move(batch);
    } catch (const std::exception& e) {  // StoreError, or a bug: one by one, keeping what is refused
      round.reset();
      error = e.what();
      store_one_by_one(std::move(batch), error);
    }
    if (!error.empty() && !unstored_.empty()) {
      verdicts_end(error);
      wait = kVerdictRetry;
    }
  }
  // Their attempts no longer count against the limits: if the round does
  // not commit, they are written again and count again.
  for (const Unstored& verdict : written) under_way(verdict.entry.notification.channel, -1);
  // The attempts this round starts, sent once the round is stored.
  struct Start {
    OutboxEntry entry;
    Notification message;
    std::shared_ptr<Route> route;
    bool trial = false;  // the half-open breaker's one attempt
  };
  std::vector<Start> starts;
  bool checked = false;  // a release check ran: round_end_ is owed its answer
  const auto abandon = [&] {
    for (const Start& start : starts) {
      under_way(start.entry.notification.channel, -1);
      if (start.trial) start.route->breaker.record(false, now);  // frees the half-open trial
    }
    round.reset();  // rolls back the claims, what the checks wrote and the verdicts
    for (const Unstored& verdict : written) under_way(verdict.entry.notification.channel, +1);
    unstored_.insert(unstored_.begin(), std::make_move_iterator(written.begin()),
                     std::make_move_iterator(written.end()));
    written.clear();
    if (checked && round_end_) round_end_(false);
  };
  std::set<Channel> refused;  // a verdict of theirs the store refused: they start nothing
  for (const Unstored& verdict : unstored_) refused.insert(verdict.end.channel);
  bool drained = false;             // a channel had fewer due entries than it could start
  std::optional<long long> failed;  // an entry whose release check threw
  std::string failure;
  // A copy: a reload may replace routes_ while a store that suspends waits.
  const auto routes = routes_;
  for (const auto& [channel, route_ptr] : routes) {
    if (failed) break;
    Route& route = *route_ptr;
    const int free = route.lane.config.concurrency - in_flight(channel);
    if (refused.count(channel) || free <= 0) continue;
    if (route.breaker.open(now)) {
      wait = std::min(wait, *route.breaker.open_until() - now);
      continue;
    }
    std::size_t room = route.breaker.room(now, static_cast<std::size_t>(free));  // 0: the probe is out
    if (room == 0) continue;
    const std::size_t tokens = route.bucket.available(now);
    if (tokens == 0) {
      wait = std::min(wait, route.bucket.wait(now));
      continue;
    }
    room = std::min(room, tokens);
    std::vector<OutboxEntry> claimed;
    try {
      if (!round) round = store_.begin();
      claimed = round->claim_due_notifications(channel, room, now, lease_for(route.lane.config));
    } catch (const StoreError&) {  // nothing is sent unclaimed; the round is tried again after the backoff
      abandon();
      throw;
    }
    if (claimed.size() < room) drained = true;
    for (OutboxEntry& entry : claimed) {
      std::optional<Notification> message = entry.notification;
      if (release_) {
        try {
          checked = true;
          message = release_(*round, entry);
        } catch (const std::exception& e) {
          // What the round's checks wrote may be undone with it: the round
          // is rolled back, this entry held back kFailureBackoff, and the
          // round tried again at once.
          failed = entry.id;
          failure = e.what();
          break;
        }
        if (!message) {   // overtaken or held back: its claim ended with it
          again_ = true;  // its place this round is free for the next one
          continue;
        }
      }
      const bool trial = route.breaker.open_until().has_value();
      route.breaker.allows(now);  // room() said it may
      route.bucket.take(now);
      under_way(channel, +1);
      starts.push_back(Start{std::move(entry), std::move(*message), route_ptr, trial});
    }
  }
  if (failed) {
    abandon();
    spdlog::error(
        "delivery: release check failed {} {} {}", kv("outbox", std::to_string(*failed)), kv("error", failure),
        kv("next_try_s", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kFailureBackoff).count())));
    // Throws StoreError when even this cannot be written: the whole loop waits then.
    store_.postpone(*failed, now, now + kFailureBackoff, "the release check failed: " + failure);
    again_ = true;
    return wait;
  }
  // A crash from here on leaves each claimed entry marked as sent-or-not,
  // never as plainly pending.
  try {
    if (round) round->commit();
  } catch (const StoreError&) {  // nothing is sent unclaimed; the round is tried again
    abandon();
    throw;
  }
  round.reset();
  if (checked && round_end_) round_end_(true);
  for (const Unstored& verdict : written) report(verdict);
  if (!written.empty() && unstored_.empty()) verdicts_end({});
  for (Start& start : starts) {
    const int attempt = start.entry.attempts + 1;
    if (spdlog::should_log(spdlog::level::debug))  // its fields cost more than a line not written
      spdlog::debug("delivery: attempt {} {} {}", kv("outbox", std::to_string(start.entry.id)),
                    kv("attempt", std::to_string(attempt)), kv("channel", to_string(start.entry.notification.channel)));
    start.route->lane.sender->send(start.message, [this, entry = std::move(start.entry), attempt, keep = start.route](
                                                      Verdict verdict) { finish(entry, attempt, keep, verdict); });
  }
  // Notifications of a channel without a lane wait (run.cpp says so once).
  if (drained)
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

void Delivery::write(Store::Transaction& transaction, const Unstored& verdict) {
  if (verdict.end.verdict == Verdict::kDelivered)
    transaction.mark_delivered(verdict.entry.id, verdict.at, verdict.detail);
  else
    transaction.record_failure(verdict.entry.id, verdict.at, verdict.detail, verdict.retry_at);
}

bool Delivery::store_verdicts() {
  if (unstored_.empty()) return true;
  std::vector<Unstored> verdicts = std::move(unstored_);
  unstored_.clear();
  std::string error;
  try {  // all in one transaction: one fsync for the lot
    auto transaction = store_.begin();
    for (const Unstored& verdict : verdicts) write(*transaction, verdict);
    transaction->commit();
    for (const Unstored& verdict : verdicts) {
      under_way(verdict.entry.notification.channel, -1);
      report(verdict);
    }
  } catch (const std::exception& e) {  // StoreError, or a bug: one by one, keeping what is refused
    error = e.what();
    store_one_by_one(std::move(verdicts), error);
  }
  return verdicts_end(error);
}

void Delivery::store_one_by_one(std::vector<Unstored> verdicts, std::string& error) {
  for (Unstored& verdict : verdicts) {
    try {
      auto transaction = store_.begin();
      write(*transaction, verdict);
      transaction->commit();
      under_way(verdict.entry.notification.channel, -1);
      report(verdict);
    } catch (const std::exception& one) {
      error = one.what();
      unstored_.push_back(std::move(verdict));
    }
  }
}

bool Delivery::verdicts_end(const std::string& error) {
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
  const Notification& n = verdict.entry.notification;
  const std::string& provider = verdict.route->lane.config.provider;
  switch (verdict.end.verdict) {
    case Verdict::kDelivered:  // a line per message at debug: at info it costs more than the delivery
      if (spdlog::should_log(spdlog::level::debug))  // and so do its fields, built for nothing at info
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
