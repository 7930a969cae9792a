#include "channels/actions.h"

#include "channels/limits.h"
#include "channels/provider.h"
#include "ops/logging.h"
#include "signing/signing.h"
#include "store/state_runner.h"

#include <spdlog/spdlog.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace tactd {
namespace asio = boost::asio;
namespace {

// The endpoint as logs name it: without its query, which may carry a token.
std::string endpoint_of(const std::string& url) { return url.substr(0, url.find('?')); }

// "code, amount": the names an answer gave, for the decision's record (the
// values go to the customer, not into logs).
std::string names_of(const nlohmann::json& answer) {
  std::string out;
  for (auto it = answer.begin(); it != answer.end() && out.size() < 200; ++it)
    out += (out.empty() ? "" : ", ") + it.key();
  return out;
}

}  // namespace

std::string action_idempotency_key(std::string_view notification_key) {
  return "tactd-action-" + sha256_hex("action/" + std::string(notification_key)).substr(0, 32);
}

HttpClientRequest action_request(const ActionConfig& action, const Notification& n, const nlohmann::json& fields,
                                 Timestamp now) {
  const nlohmann::json body = {{"action", action.name},
                               {"rule", n.rule},
                               {"kind", std::string(to_string(n.kind))},
                               {"customer", n.customer},
                               {"idempotency_key", n.idempotency_key},
                               {"due_at", format_rfc3339(n.at)},
                               {"entity",
                                {{"type", std::string(to_string(n.entity.type))},
                                 {"id", n.entity.id},
                                 {"fields", fields.is_object() ? fields : nlohmann::json::object()}}}};
  HttpClientRequest request;
  request.method = "POST";
  request.url = action.url;
  request.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  request.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(action.timeout);
  request.max_body = Actions::kMaxAnswer;
  const std::string timestamp =
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  request.headers = {{"Content-Type", "application/json"},
                     {"Accept", "application/json"},
                     {"Idempotency-Key", action_idempotency_key(n.idempotency_key)},
                     {"X-Tactd-Timestamp", timestamp},
                     {"X-Tactd-Signature", webhook_signature(action.secret, timestamp, request.body)}};
  return request;
}

ActionVerdict judge_action(const HttpClientResponse& response, Timestamp now) {
  const Verdict verdict = judge(response, now);
  switch (verdict.kind) {
    case Verdict::kRetry:
      return {ActionState::kPending, nullptr, verdict.reason, verdict.retry_after};
    case Verdict::kPermanent:
      return {ActionState::kFailed, nullptr, "refused: " + verdict.reason, std::nullopt};
    case Verdict::kDelivered:
      break;
  }
  nlohmann::json answer = nlohmann::json::parse(response.body, nullptr, false);
  if (!answer.is_object())
    return {ActionState::kFailed, nullptr,
            "invalid answer: " + verdict.reason + " (expected a JSON object, like {\"code\": \"SORRY-5\"})",
            std::nullopt};
  std::string detail = "HTTP " + std::to_string(response.status) + ", answered " +
                       (answer.empty() ? std::string("an empty object") : names_of(answer));
  return {ActionState::kDone, std::move(answer), std::move(detail), std::nullopt};
}

Actions::Actions(Store& store, const Clock& clock, HttpClient& http, std::vector<ActionConfig> actions,
                 Observer observer, Wanted wanted)
    : store_(store), clock_(clock), http_(http), observer_(std::move(observer)), wanted_(std::move(wanted)) {
  reconfigure(std::move(actions));
}

Actions::~Actions() { *alive_ = false; }

void Actions::reconfigure(std::vector<ActionConfig> actions) {
  actions_.clear();
  for (auto& action : actions) {
    std::string name = action.name;
    actions_.emplace(std::move(name), std::move(action));
  }
  wake();
}

void Actions::wake() {
  if (wake_)
    wake_->cancel();
  else
    again_ = true;
}

void Actions::start_shutdown() {
  stopping_ = true;
  wake();
}

asio::awaitable<void> Actions::run() {
  executor_ = co_await asio::this_coro::executor;
  asio::steady_timer sleep(executor_);
  const StateRunner state(store_.fibers());  // the store's work, on its fiber when it has them
  const auto step = [this] { return start_due(); };
  while (!stopping_) {
    Duration wait = kMaxSleep;
    try {
      wait = co_await state.run(step);
    } catch (const std::exception& e) {  // the store refused: the next round tries again
      spdlog::error(
          "action: round failed {} {}", kv("error", e.what()),
          kv("next_try_s", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kFailureBackoff).count())));
      wait = kFailureBackoff;
      again_ = false;
    }
    if (std::exchange(again_, false)) wait = Duration::zero();
    sleep.expires_after(std::max(wait, Duration{1}));
    wake_ = &sleep;
    boost::system::error_code ec;  // cancelled: woken
    co_await sleep.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    wake_ = nullptr;
  }
}

Duration Actions::start_due() {
  const Timestamp now = clock_.now();
  if (in_flight_.size() < kMaxInFlight) {
    for (const OutboxEntry& entry : store_.due_actions(now, kMaxInFlight + in_flight_.size())) {
      if (in_flight_.size() >= kMaxInFlight) break;
      if (in_flight_.count(entry.id)) continue;
      const Notification& n = entry.notification;
      const auto action = actions_.find(n.action);
      if (action == actions_.end()) {
        record(entry, "", ActionState::kFailed, nullptr, std::nullopt,
               "no [[action]] named '" + n.action + "' is configured (any more); sent without it");
        continue;
      }
      if (wanted_ && !wanted_(entry)) continue;  // overtaken or held back: it stays untaken
      nlohmann::json fields = nlohmann::json::object();
      if (auto entity = store_.entity(n.entity)) fields = entity->fields;
      in_flight_.emplace(entry.id, now);
      spdlog::debug("action: attempt {} {} {}", kv("outbox", std::to_string(entry.id)), kv("action", n.action),
                    kv("attempt", std::to_string(entry.action_attempts + 1)));
      http_.fetch(
          action_request(action->second, n, fields, now),
          [this, alive = std::weak_ptr<bool>(alive_), entry, config = action->second](HttpClientResponse response) {
            const auto live = alive.lock();
            if (!live || !*live) return;
            finish(entry, config, response);
          });
    }
  }
  Duration wait = kMaxSleep;
  if (auto next = store_.next_action(); next && *next > now) wait = std::min(wait, *next - now);
  return wait;
}

void Actions::finish(const OutboxEntry& entry, const ActionConfig& action, const HttpClientResponse& response) {
  in_flight_.erase(entry.id);
  wake();  // its place is free
  const Timestamp now = clock_.now();
  ActionVerdict verdict = judge_action(response, now);
  std::optional<Timestamp> retry_at;
  const int attempt = entry.action_attempts + 1;
  if (verdict.state == ActionState::kPending) {
    if (attempt >= action.max_attempts) {
      verdict.state = ActionState::kFailed;
      verdict.detail += "; gave up after " + std::to_string(attempt) + " attempts";
    } else {
      retry_at = now + retry_delay(action.backoff, action.max_backoff, attempt,
                                   std::uniform_real_distribution<double>(0.0, 1.0)(random_), verdict.retry_after);
    }
  }
  if (verdict.state == ActionState::kFailed) verdict.detail += "; sent without it";
  // On the store's fiber when it has them; this may be gone by then.
  run_detached(
      executor_, StateRunner(store_.fibers()),
      [this, alive = std::weak_ptr<bool>(alive_), entry, action, verdict, retry_at] {
        const auto live = alive.lock();
        if (live && *live) store_outcome(entry, action, verdict.state, verdict.answer, retry_at, verdict.detail);
      },
      "action: storing an outcome");
}

void Actions::store_outcome(const OutboxEntry& entry, const ActionConfig& action, ActionState state,
                            const nlohmann::json& answer, std::optional<Timestamp> retry_at,
                            const std::string& detail) {
  try {
    record(entry, action.url, state, answer, retry_at, detail);
  } catch (const std::exception& e) {  // still pending: asked again, with the same Idempotency-Key
    spdlog::error("action: outcome not stored, it is asked for again {} {} {}", kv("outbox", std::to_string(entry.id)),
                  kv("action", action.name), kv("error", e.what()));
  }
}

void Actions::record(const OutboxEntry& entry, const std::string& url, ActionState state, const nlohmann::json& answer,
                     std::optional<Timestamp> retry_at, const std::string& detail) {
  const Notification& n = entry.notification;
  const std::string decision = n.action + ": " + detail;
  if (!store_.record_action(entry.id, clock_.now(), state, answer, retry_at, decision))
    return;  // no longer pending (an operator dropped it meanwhile)
  std::string outcome = "ok";
  switch (state) {
    case ActionState::kDone:
      spdlog::info("action: taken {} {} {} {} {}", kv("action", n.action), kv("outbox", std::to_string(entry.id)),
                   kv("rule", n.rule), kv("customer", n.customer), kv("detail", detail));
      break;
    case ActionState::kPending:
      outcome = "retry";
      spdlog::warn("action: retry {} {} {} {} {} {}", kv("action", n.action), kv("outbox", std::to_string(entry.id)),
                   kv("rule", n.rule), kv("customer", n.customer), kv("reason", detail),
                   kv("retry_at", retry_at ? format_rfc3339(*retry_at, "UTC") : "?"));
      break;
    default:
      outcome = "failed";
      spdlog::warn("action: failed, the message goes without it {} {} {} {} {} {}", kv("action", n.action),
                   kv("outbox", std::to_string(entry.id)), kv("rule", n.rule), kv("customer", n.customer),
                   kv("endpoint", url.empty() ? "(none configured)" : endpoint_of(url)), kv("reason", detail));
      break;
  }
  if (observer_) observer_(Taken{n.action, n.rule, n.customer, n.entity, entry.id, outcome, detail});
}

}  // namespace tactd
