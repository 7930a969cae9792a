// The operators' channel (DESIGN.md invariant 9): what needs a person -- a
// message that could not be sent (Outcome::problems: short_notice,
// missing_field, no_channel, unknown_customer, no_customer, gave_up_waiting, render_failed,
// timer_late), a dead letter, a send whose outcome is unknown and a customer's
// reply that support's side refused (forward_refused) -- becomes a finding, and findings go out
// batched: at most one digest per `[operators] digest` interval, to an
// email address over the email [[channel]], or to a chat's incoming webhook
// as `{"text": "..."}` (the body Slack's and Mattermost's accept).
//
// Two parts. OperatorDigest is the batch: a bounded queue of findings and
// when its digest is due, driven by a Clock, with no I/O. OperatorChannel
// sends digests on the daemon's loop.
//
// Findings live in memory only. A stop sends what waits at once, within the
// stop grace, and logs every finding of a digest that did not get through; a
// crash loses the findings not yet sent. Each one was logged when it
// happened, so the journal always has them.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "channels/provider.h"
#include "config/config.h"
#include "model/clock.h"

namespace tactd {

class HttpClient;
class Sender;
class SmtpClient;

// Something a person has to look at.
struct Finding {
  std::string kind;  // the problem's code ("missing_field"), or "dead_letter"
  std::string rule;
  // For people, naming the entity, the rule and why:
  // "subscription/SUB-1: rule 'price-change': subscription/SUB-1 has no price_reason, ..."
  std::string text;
  Timestamp at;  // when it was found
};

// Findings sent together.
struct Digest {
  std::vector<Finding> findings;  // oldest first
  std::size_t dropped = 0;        // found, but not kept: the queue was full

  // "tactd: 3 findings need a person (2 missing_field, 1 no_channel)"
  std::string subject() const;
  // A line saying how many and when, then the findings grouped by kind (in
  // a fixed order: short_notice, missing_field, no_channel, ...), each
  // group under a line that says what the kind means; each finding on a
  // line of its own (its text, and its rule when the text does not name
  // it), cut at kMaxLine bytes; the whole cut at kMaxText bytes
  // with a line saying how many were left out; and what was dropped.
  std::string text() const;

  static constexpr std::size_t kMaxText = 8000;  // bytes; chats cut or refuse longer posts
  static constexpr std::size_t kMaxLine = 600;   // bytes of one finding
};

// The batch. The first finding after a digest opens a window of one
// interval; when it closes, everything found meanwhile is one digest.
// Digests are at least one interval apart, also after a failed one is put
// back. Not thread-safe; values only, no I/O.
class OperatorDigest {
 public:
  static constexpr std::size_t kMaxFindings = 200;  // held at once; more are counted as dropped

  // `clock` must outlive the digest.
  OperatorDigest(const Clock& clock, Duration interval) : clock_(clock), interval_(interval) {}

  // Keeps `finding`, stamped with the clock's time, or counts it as dropped
  // when kMaxFindings wait already.
  void add(Finding finding);
  // When the next digest is due; nullopt when nothing waits.
  std::optional<Timestamp> due() const;
  // Everything waiting, as one digest, when it is due now (or, with
  // `force`, at once: a stop); nullopt when nothing waits or it is not due.
  std::optional<Digest> take(bool force = false);
  // A digest that did not get through goes out with the next one, in front
  // (within kMaxFindings; what does not fit is counted as dropped).
  void put_back(Digest digest);

  void set_interval(Duration interval) { interval_ = interval; }
  std::size_t waiting() const { return findings_.size(); }

 private:
  const Clock& clock_;
  Duration interval_;
  std::deque<Finding> findings_;
  std::size_t dropped_ = 0;
  std::optional<Timestamp> last_taken_;
};

// The request that posts `digest` to the `[operators] webhook`: JSON
// `{"text": ...}` with `&`, `<` and `>` escaped as Slack asks (Mattermost
// shows them as the characters), signed or with a bearer token when a
// secret is configured; `now` stamps the signature. Pure.
ProviderRequest operator_webhook_request(const OperatorsConfig& config, const Digest& digest, Timestamp now);

// The email that carries `digest` to the `[operators] email` over the email
// channel; `now` is its time and part of its idempotency key. Pure.
Notification operator_email(const OperatorsConfig& config, const Digest& digest, Timestamp now);

// Sends the digests. Call everything on the loop.
class OperatorChannel {
 public:
  // A digest that could not be delivered is tried again with the next one,
  // this many times in all; then its findings are logged and dropped.
  static constexpr int kMaxAttempts = 3;
  // The longest wait for one digest's answer (requests have their own timeout).
  static constexpr Duration kMaxWait = std::chrono::minutes{2};

  // `http`, `smtp` and `clock` must outlive the channel, or the clients be
  // destroyed first (they then drop its callbacks). Until configured, and
  // without an [operators] table, findings are not kept.
  OperatorChannel(HttpClient& http, SmtpClient& smtp, const Clock& clock);
  ~OperatorChannel();
  OperatorChannel(const OperatorChannel&) = delete;
  OperatorChannel& operator=(const OperatorChannel&) = delete;

  // The [operators] table and the email channel a digest email goes
  // through (may be null); a reload calls it again, findings waiting stay.
  // Without `config` the findings waiting are dropped.
  void configure(const std::optional<OperatorsConfig>& config, const ChannelConfig* email);

  // A finding for the next digest (its `at` is set here).
  void report(Finding finding);

  // Sends each digest when it is due until start_shutdown(); then sends
  // what waits at once and returns when it is answered or the deadline
  // passed, logging each finding of a digest that did not get through.
  boost::asio::awaitable<void> run();
  void start_shutdown(Timestamp deadline);
  // Completes once run() has returned.
  boost::asio::awaitable<void> finished();

 private:
  // Sends `digest` and waits for the verdict until `limit`; nullopt when
  // none came in time.
  boost::asio::awaitable<std::optional<Verdict>> send(const Digest& digest, Timestamp limit);
  // What to do with a digest after its attempt.
  void settle(Digest digest, const std::optional<Verdict>& verdict, bool last_chance);
  void wake();

  HttpClient& http_;
  SmtpClient& smtp_;
  const Clock& clock_;
  std::optional<OperatorsConfig> config_;
  std::unique_ptr<Sender> email_;  // over the email channel; null without one
  OperatorDigest digest_;
  int failures_ = 0;  // of the findings in front of the queue, in a row
  std::optional<Timestamp> stop_deadline_;
  bool finished_ = false;
  boost::asio::steady_timer* sleep_ = nullptr;        // run()'s sleep, while it sleeps
  boost::asio::steady_timer* finish_wait_ = nullptr;  // finished()'s wait
};

}  // namespace tactd
