// Actions taken before a message is sent: a rule with `action = "voucher"`
// has its notifications enqueued with the action pending (not due for
// delivery). When one falls due, Actions POSTs the entity's fields to the
// [[action]]'s endpoint (the shop's voucher or refund API), HMAC-signed like
// the webhooks and with an Idempotency-Key derived from the notification's,
// retrying with backoff; the JSON object it answers is stored with the
// outbox row before the message is rendered again with it ({{action.*}}).
// A stored answer is never asked for again, also not after a restart. An
// action that fails for good (attempts used up, a refusal, an answer that
// is not a JSON object) is recorded as failed: the message goes without.
// No action is taken for a message the world has overtaken or that is held
// back (the customer wrote): a voucher is real money, and the message that
// carries it must still be wanted when it is made.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "model/clock.h"
#include "net/http_client.h"
#include "store/store.h"

namespace tactd {

// The Idempotency-Key of the action of the notification whose idempotency
// key is `notification_key`: "tactd-action-" and the first 32 hex digits
// of SHA-256 of "action/" + that key. The same on every attempt and after
// a restart, so that the endpoint makes one voucher however often it is asked.
std::string action_idempotency_key(std::string_view notification_key);

// The request of one attempt of `action` for `entry` at `now`: a POST of
//   {"action", "rule", "kind", "customer", "idempotency_key", "due_at",
//    "entity": {"type", "id", "fields"}}
// with Content-Type application/json, Idempotency-Key, X-Tactd-Timestamp
// and X-Tactd-Signature (daemon/signing: webhook_signature).
HttpClientRequest action_request(const ActionConfig& action, const Notification& notification,
                                 const nlohmann::json& fields, Timestamp now);

// What an answer means for the action: kDone with the JSON object it
// answered, kPending when it may be tried again (no answer, a timeout, 408,
// 429, 5xx; `retry_after` when it said), or kFailed for good (another 4xx,
// a redirect, a 2xx that is not a JSON object). `detail` says it for people.
struct ActionVerdict {
  ActionState state = ActionState::kFailed;
  nlohmann::json answer;
  std::string detail;
  std::optional<Duration> retry_after;
};
ActionVerdict judge_action(const HttpClientResponse& response, Timestamp now);

class Actions {
 public:
  // The end of one attempt, for logs and metrics.
  struct Taken {
    std::string action;
    std::string rule;
    std::string customer;
    EntityRef entity;
    long long outbox = 0;
    std::string outcome;  // "ok", "retry" or "failed" (for good: sent without)
    std::string detail;
  };
  using Observer = std::function<void(const Taken&)>;
  // Whether the entry's message is still to be sent now (the pipeline's
  // release check); false when it was overtaken or held back meanwhile
  // (the check stored that), and its action is not taken.
  using Wanted = std::function<bool(const OutboxEntry&)>;

  // `store`, `clock` and `http` must outlive the Actions, or `http` be
  // destroyed first (it then drops the answers in flight, which are asked
  // for again after a restart with the same Idempotency-Key). `observer`
  // (may be empty) runs on the loop after each attempt is stored. `wanted`
  // (empty: always) is asked before each action is taken.
  Actions(Store& store, const Clock& clock, HttpClient& http, std::vector<ActionConfig> actions, Observer observer = {},
          Wanted wanted = {});
  ~Actions();
  Actions(const Actions&) = delete;
  Actions& operator=(const Actions&) = delete;

  // Takes due actions until start_shutdown(): at most kMaxInFlight at once;
  // it wakes when one ends, when wake() is called, or after kMaxSleep.
  boost::asio::awaitable<void> run();
  void wake();
  // A reload: new attempts use the new [[action]] tables; an entry whose
  // action is no longer configured fails (its message goes without).
  void reconfigure(std::vector<ActionConfig> actions);
  // Starts no attempt after this; answers still in flight are stored.
  void start_shutdown();
  std::size_t in_flight() const { return in_flight_.size(); }

  static constexpr std::size_t kMaxInFlight = 8;
  static constexpr std::size_t kMaxAnswer = std::size_t{64} << 10;  // bytes of an endpoint's answer
  static constexpr auto kMaxSleep = std::chrono::milliseconds{500};
  static constexpr auto kFailureBackoff = std::chrono::seconds{5};  // after a round the store refused

 private:
  Duration start_due();
  void finish(const OutboxEntry& entry, const ActionConfig& action, const HttpClientResponse& response);
  // Stores the outcome of an attempt, then logs it and tells the observer.
  // record(), an error logged: the outcome stays pending and is asked for again.
  void store_outcome(const OutboxEntry& entry, const ActionConfig& action, ActionState state,
                     const nlohmann::json& answer, std::optional<Timestamp> retry_at, const std::string& detail);
  void record(const OutboxEntry& entry, const std::string& url, ActionState state, const nlohmann::json& answer,
              std::optional<Timestamp> retry_at, const std::string& detail);

  Store& store_;
  const Clock& clock_;
  HttpClient& http_;
  std::map<std::string, ActionConfig, std::less<>> actions_;
  Observer observer_;
  Wanted wanted_;
  std::map<long long, Timestamp> in_flight_;  // outbox id -> when its attempt started
  std::mt19937_64 random_{std::random_device{}()};
  boost::asio::steady_timer* wake_ = nullptr;  // the sleep of run(), while it sleeps
  bool again_ = false;
  bool stopping_ = false;
  boost::asio::any_io_executor executor_;                       // run()'s, for the outcomes stored on the store's fiber
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // answers after destruction are dropped
};

}  // namespace tactd
