// Delivery of the outbox: workers on the daemon's loop that take due
// notifications, send each through its channel's sender (a provider's HTTP
// API, SMTP or a webhook) within the channel's concurrency and rate limits
// and its endpoint's circuit breaker, and record every attempt. Retries back
// off exponentially with full jitter, honouring Retry-After; permanent
// refusals, too many attempts or too old a message go to the dead letter. A
// delivered notification becomes contact history.
//
// One transaction a turn: the verdicts that arrived since the last turn of
// the loop, the release checks and the claims of the next attempts are
// written together (one fsync for them all). A verdict the store refuses
// (disk full, database locked) is kept and written again each turn until
// it is stored; meanwhile its entry is not sent again and its channel
// starts no new attempt.
//
// Claims have leases (OutboxStore::claim_due_notifications()): an entry is
// claimed until now + lease_for(its channel), at least kMinLease and four
// times the channel's timeout, so that an attempt's verdict comes long
// before its lease ends. A lease that still ends during a send (a verdict
// the store refuses for longer) frees the entry for another owner only:
// this process starts nothing on a channel whose verdicts wait to be
// stored, and its verdict lands whenever it is stored. Claims left by a
// process that died are settled at the next start (settle_interrupted()),
// whether their lease ended or not.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

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
  // The end of one attempt, for logs and metrics.
  struct AttemptEnd {
    Channel channel = Channel::kEmail;
    std::string rule;
    Kind kind = Kind::kApology;
    Verdict::Kind verdict = Verdict::kRetry;
    bool dead = false;     // the entry went to the dead letter
    Duration latency{};    // delivered: from the time it was due to the provider's acceptance
    long long outbox = 0;  // the entry's id
    EntityRef entity;
    std::string customer;
    std::string detail;  // the provider's answer, or why it was given up
  };
  using Observer = std::function<void(const AttemptEnd&)>;
  // Looks at a due entry again just before each attempt (DESIGN.md
  // invariant 8): returns the notification to send, rendered with current
  // data, or nullopt when the world has overtaken it (the check records
  // that itself). May throw StoreError: the entry is then tried later.
  // The checks of a round run inside one store transaction that also
  // holds the round's claims (one begin and commit per round, not per
  // entry), given to it as `round`: a check reads and writes through it and
  // must not begin one of its own.
  using ReleaseCheck = std::function<std::optional<Notification>(Store::Transaction& round, const OutboxEntry&)>;
  // Told after the release checks of a round whether what they wrote was
  // committed (true) or rolled back (false), so that what they decided is
  // reported only once it is stored.
  using RoundEnd = std::function<void(bool committed)>;
  // An attempt cut off by a crash or a stop, as settle_interrupted() dealt
  // with it: sent again (`retried`) or set aside as an unknown outcome.
  struct Interrupted {
    OutboxEntry entry;  // as it was claimed
    bool retried = false;
    std::string detail;  // what happened and what an operator can do
  };
  using InterruptObserver = std::function<void(const Interrupted&)>;

  // `store` and `clock` must outlive the Delivery; so must the clients the
  // senders use, or be destroyed first (they then drop their callbacks).
  // `observer` (may be empty) is called on the loop after each attempt.
  Delivery(Store& store, const Clock& clock, std::vector<Lane> lanes, Observer observer = {}, ReleaseCheck release = {},
           RoundEnd round_end = {});

  // Delivers until start_shutdown(): each turn stores the verdicts that
  // came since the last one and claims the due entries the limits allow,
  // in one transaction, before their requests leave; it wakes when an attempt ends, when wake() is called, when the
  // next entry falls due, or after at most kMaxSleep. First it settles the
  // attempts a previous process left cut off. After start_shutdown() it
  // starts nothing and returns once no attempt is in flight and every
  // verdict is stored, or the deadline has passed; attempts cut off then are
  // settled like those of a crash (settle_interrupted()).
  boost::asio::awaitable<void> run();

  // Settles every claimed attempt not in flight in this process (the
  // process died or stopped during its send), by its channel's on_unknown:
  // kRetry makes it due now, to go out again with the same idempotency
  // key; kHold (also for a channel without a lane) sets it aside as an
  // unknown outcome for an operator. Tells the interrupt observer of each.
  // Throws StoreError; what was settled stays settled.
  void settle_interrupted();
  // Called on the loop for each attempt settle_interrupted() dealt with.
  void set_interrupt_observer(InterruptObserver observer) { interrupted_ = std::move(observer); }
  // Other replicas share the outbox (docs/scale-out.md) while `others`
  // returns true: then a claim may be another replica's send under way,
  // and settle_interrupted() takes it for cut off only once it is older
  // than cut_off_after() its channel's timeout allows any attempt to last;
  // call it now and then to settle what a dead replica left. Without (the
  // default), every claim not in flight here is cut off at once.
  void set_other_replicas(std::function<bool()> others) { others_ = std::move(others); }
  static Duration cut_off_after(const ChannelConfig& channel) { return 2 * channel.timeout + std::chrono::seconds{5}; }

  // Something was enqueued that may be due now: look at once.
  void wake();
  // A reload: channels whose configuration changed get their new lane,
  // removed ones stop starting attempts, unchanged ones keep their limits.
  // An attempt in flight finishes on the lane it started on, and counts
  // towards its channel's concurrency and in_flight until it does.
  void reconfigure(std::vector<Lane> lanes);
  void start_shutdown(Timestamp deadline);

  struct ChannelState {
    Channel channel = Channel::kEmail;
    std::string provider;
    bool breaker_open = false;
    CircuitBreaker::State breaker = CircuitBreaker::State::kClosed;
    std::string breaker_why;         // why it is open (CircuitBreaker::why())
    long long breaker_openings = 0;  // times it opened (also again after a failed probe) since start
    int in_flight = 0;
  };
  std::vector<ChannelState> channels() const;
  std::size_t in_flight() const;
  // Verdicts given but not yet stored.
  std::size_t unstored() const { return unstored_.size(); }

  static constexpr auto kMaxSleep = std::chrono::milliseconds{500};
  // The shortest lease of a claim; a channel's is longer when its timeout
  // is (lease_for()).
  static constexpr Duration kMinLease = std::chrono::minutes{5};
  static Duration lease_for(const ChannelConfig& channel);
  // The wait after a round that failed with an exception, logged; delivery
  // goes on. An entry whose release check threw is held back as long.
  static constexpr auto kFailureBackoff = std::chrono::seconds{5};
  static constexpr std::size_t kMaxDetail = 500;  // bytes of a provider's answer kept per attempt
  // The wait before writing verdicts again after the store refused them.
  static constexpr auto kVerdictRetry = std::chrono::milliseconds{500};
  // How often a store that keeps refusing verdicts is logged again.
  static constexpr auto kVerdictLogEvery = std::chrono::seconds{30};

 private:
  struct Route {  // one channel's lane with its limits
    Lane lane;
    TokenBucket bucket;
    CircuitBreaker breaker;
    long long openings = 0;
  };
  struct Unstored;
  // One turn: stores the verdicts and claims and starts what may start
  // now, in one transaction; returns how long until something else may.
  Duration turn();
  // A verdict given, not yet stored: what turn() and store_verdicts() write.
  struct Unstored {
    OutboxEntry entry;
    std::shared_ptr<Route> route;
    Timestamp at;  // when the verdict came
    int attempt = 0;
    std::string detail;                 // the attempt's record (and last error)
    std::optional<Timestamp> retry_at;  // a failure's next attempt; none: dead letter
    AttemptEnd end;
  };
  void finish(const OutboxEntry& entry, int attempt, const std::shared_ptr<Route>& route, const Verdict& verdict);
  // Writes the unstored verdicts in one transaction (or, when that fails,
  // one by one); what the store refuses stays. False when something stayed.
  bool store_verdicts();
  // Writes `verdicts` one by one, each in its own transaction; those the
  // store refuses go back to unstored_. `error` gets the last refusal.
  void store_one_by_one(std::vector<Unstored> verdicts, std::string& error);
  // After verdicts were stored (`all`: none is left unstored) or refused.
  bool verdicts_end(const std::string& error);
  void write(Store::Transaction& transaction, const Unstored& verdict);
  void report(const Unstored& verdict);  // logs and the observer, once stored
  void under_way(Channel channel, int change);
  // Attempts of `channel` in flight, on its current lane or one a reload replaced.
  int in_flight(Channel channel) const;

  Store& store_;
  const Clock& clock_;
  Observer observer_;
  ReleaseCheck release_;
  RoundEnd round_end_;
  InterruptObserver interrupted_;
  std::function<bool()> others_;
  // Shared with the attempts in flight, which finish on the route they
  // started on even when a reload replaced it.
  std::map<Channel, std::shared_ptr<Route>> routes_;
  std::optional<Timestamp> stop_deadline_;  // set by start_shutdown()
  // Attempts started per channel, until their verdicts are stored: only
  // for the concurrency limits (the claims in the store keep entries from
  // being sent twice).
  std::map<Channel, int> under_way_;
  std::vector<Unstored> unstored_;          // in the order the verdicts came
  std::optional<Timestamp> refused_since_;  // the store refuses verdicts since then
  std::optional<Timestamp> refusal_logged_;
  std::mt19937_64 random_{std::random_device{}()};
  boost::asio::steady_timer* wake_ = nullptr;  // the sleep of run(), while it sleeps
  bool again_ = false;                         // an attempt ended while run() was awake
};

}  // namespace tactd
