// Delivery of the outbox: workers on the daemon's loop that take due
// notifications, send each through its channel's sender (a provider's HTTP
// API, SMTP or a webhook) within the channel's concurrency and rate limits
// and its endpoint's circuit breaker, and record every attempt. Retries back
// off exponentially with full jitter, honouring Retry-After; permanent
// refusals, too many attempts or too old a message go to the dead letter. A
// delivered notification becomes contact history.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "channels/limits.h"
#include "channels/provider.h"
#include "config/config.h"
#include "model/clock.h"
#include "store/store.h"

namespace tactd {

class HttpClient;
class SmtpClient;

// Sends one notification once. Call on the loop.
class Sender {
 public:
  virtual ~Sender() = default;
  // Starts an attempt; `done` runs on the loop with its verdict, later or
  // (when the notification cannot be sent this way at all) at once.
  virtual void send(const Notification& notification, std::function<void(Verdict)> done) = 0;

  // The sender `channel` configures: its provider's HTTP API or SMTP.
  // `http`, `smtp` and `clock` must outlive it.
  static std::unique_ptr<Sender> create(const ChannelConfig& channel, HttpClient& http, SmtpClient& smtp,
                                        const Clock& clock);
};

// The exact request `channel` would make for `notification` (for SMTP, the
// envelope and the MIME message), secrets masked: `tactd preview --request`.
// nullopt with `error` when it could not be sent at all.
std::optional<std::string> describe_request(const ChannelConfig& channel, const Notification& notification,
                                            Timestamp now, std::string& error);

class Delivery {
 public:
  struct Lane {
    ChannelConfig config;
    std::unique_ptr<Sender> sender;
  };
  // `store` and `clock` must outlive the Delivery; so must the clients the
  // senders use, or be destroyed first (they then drop their callbacks).
  Delivery(Store& store, const Clock& clock, std::vector<Lane> lanes);

  // Delivers for ever: due entries are started as limits allow; it wakes
  // when an attempt ends, when the next entry falls due, or after at most
  // kMaxSleep (entries enqueued meanwhile are found then).
  boost::asio::awaitable<void> run();

  static constexpr auto kMaxSleep = std::chrono::milliseconds{500};
  static constexpr std::size_t kMaxDetail = 500;  // bytes of a provider's answer kept per attempt

 private:
  struct Route {  // one channel's lane with its limits
    Lane lane;
    TokenBucket bucket;
    CircuitBreaker breaker;
    int in_flight = 0;
  };
  // Starts what may start now; returns how long until something else may.
  Duration start_due();
  void finish(long long id, int attempt, Timestamp due, Route& route, const Verdict& verdict);

  Store& store_;
  const Clock& clock_;
  std::map<Channel, std::unique_ptr<Route>> routes_;
  std::set<long long> in_flight_;
  std::mt19937_64 random_{std::random_device{}()};
  boost::asio::steady_timer* wake_ = nullptr;  // the sleep of run(), while it sleeps
  bool again_ = false;                         // an attempt ended while run() was awake
};

}  // namespace tactd
