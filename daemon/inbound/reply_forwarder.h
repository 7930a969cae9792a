// Replies forwarded to support ([inbound] forward_email or
// forward_webhook) with the conversation so far: the customer's messages
// and replies, oldest first. A reply is marked forwarded in the store once
// support took it, so that a restart forwards what was not; one that could
// not be forwarded is tried again, from kRetryMin doubling to kRetryMax.
// One that support's side refused for good (SMTP 5xx, an HTTP 4xx other
// than 408/429) is told once -- a warning and a finding for the operators'
// digest -- and stays unforwarded: it is tried again every kRetryRefused,
// and at once after a reload that changed [inbound] or the email channel.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "channels/operator_digest.h"
#include "channels/provider.h"
#include "config/config.h"
#include "model/clock.h"
#include "store/contact_store.h"
#include "store/entity_store.h"
#include "store/outbox_store.h"
#include "store/state_runner.h"

namespace boost::asio {
class io_context;
}

namespace tactd {

class HttpClient;
class Sender;
class SmtpClient;

// One line of a conversation: a message tactd sent or one the customer sent.
struct ConversationLine {
  Timestamp at;
  bool from_customer = false;
  Channel channel = Channel::kSms;
  std::string what;  // a message's rule and kind ("order-cancelled, apology"), or "reply"
  std::optional<std::string> subject;
  std::string text;
};

// The conversation of `reply`'s customer (its own reply last): their
// notifications (`sent`) and replies merged by time, the last kMaxLines. Pure.
std::vector<ConversationLine> conversation(const Reply& reply, const std::vector<Notification>& sent,
                                           const std::vector<Reply>& replies);
inline constexpr std::size_t kMaxConversationLines = 20;
// The text support reads: who wrote, about what, and the conversation. Pure.
std::string forward_text(const Reply& reply, const std::vector<ConversationLine>& lines, const std::string& time_zone);
// The webhook post: JSON {"text", "reply": {...}, "conversation": [...]},
// with X-Tactd-Timestamp and X-Tactd-Signature when forward_secret is set.
ProviderRequest forward_webhook_request(const InboundConfig& config, const Reply& reply,
                                        const std::vector<ConversationLine>& lines, Timestamp now);
// The email to forward_email, over the email channel. Pure. Its Reply-To
// is the customer, so that support's answer goes to them and not back to
// the shop: the reply's sender when it came by email, else
// `customer_email` (the email of their snapshot); none when neither is an
// address.
Notification forward_email(const InboundConfig& config, const Reply& reply, const std::vector<ConversationLine>& lines,
                           const std::string& customer_email = {});

// Where replies are forwarded, as logs and operators read it: the
// forward_webhook without its query (it may carry a token), else the
// forward_email. Pure.
std::string forward_target(const InboundConfig& config);

// A forward refused for good by support's side.
struct ForwardRefusal {
  long long reply_id = 0;
  std::string customer;  // empty: the reply was not matched to one
  std::string target;    // forward_target()
  std::string reason;    // the provider's answer (Verdict::reason), the latest
  Timestamp at;          // when it was first refused
  Timestamp retry_at;    // when it is tried again
};

// The operators' finding for `refusal`: kind "forward_refused", naming the
// reply, the target and the answer. Pure.
Finding forward_refused_finding(const ForwardRefusal& refusal);

class ReplyForwarder {
 public:
  static constexpr Duration kRetryMin = std::chrono::seconds{5};
  static constexpr Duration kRetryMax = std::chrono::minutes{10};
  static constexpr Duration kRetryRefused = kRetryMax;               // after a refusal for good
  static constexpr std::size_t kBatch = 20;                          // replies read and sent at once
  static constexpr Duration kHistory = std::chrono::hours{24 * 90};  // how far back the conversation goes

  // `io`, `contacts` (the replies), `outbox` (the conversation's messages),
  // `entities` (the customer's email), `http`, `smtp` and `clock` must
  // outlive the forwarder. Call everything on the loop.
  // `state` runs the store's work (store/state_runner.h); the default calls it directly.
  ReplyForwarder(boost::asio::io_context& io, ContactStore& contacts, const OutboxStore& outbox,
                 const EntityStore& entities, HttpClient& http, SmtpClient& smtp, const Clock& clock,
                 StateRunner state = {});
  ~ReplyForwarder();
  ReplyForwarder(const ReplyForwarder&) = delete;
  ReplyForwarder& operator=(const ReplyForwarder&) = delete;

  // The [inbound] table and the email channel (may be null); a reload calls
  // it again. Without a forward target replies are only recorded. When
  // either changed, refused replies are tried again at the next wake().
  void configure(const std::optional<InboundConfig>& config, const ChannelConfig* email);
  // Runs once per refused reply (and again when it is refused after a
  // change of configuration), on the loop.
  void on_refused(std::function<void(const ForwardRefusal&)> observer) { on_refused_ = std::move(observer); }
  // The replies refused for good and not forwarded since, by id.
  std::vector<ForwardRefusal> refusals() const;
  // Forwards what waits (after a reply was recorded, and at start).
  void wake();
  // No more sends; answers still out are dropped (their replies stay
  // unforwarded and go out after the next start).
  void stop();

 private:
  // Reads the replies waiting and forwards those not in flight; on the store's fiber.
  void forward_waiting();
  void forward(const Reply& reply);
  void settle(long long reply_id, const std::string& customer, const Verdict& verdict);
  void refused(long long reply_id, const std::string& customer, const Verdict& verdict);
  void retry_later();
  // Wakes the forwarder after `wait`, unless it wakes sooner already;
  // returns false then.
  bool arm(Duration wait);

  struct Timer;
  boost::asio::io_context& io_;
  StateRunner state_;
  ContactStore& contacts_;
  const OutboxStore& outbox_;
  const EntityStore& entities_;
  HttpClient& http_;
  SmtpClient& smtp_;
  const Clock& clock_;
  std::optional<InboundConfig> config_;
  std::optional<ChannelConfig> email_config_;
  std::unique_ptr<Sender> email_;
  std::map<long long, ForwardRefusal> refused_;  // by reply id; forwarded ones leave
  std::function<void(const ForwardRefusal&)> on_refused_;
  std::set<long long> in_flight_;
  Duration backoff_ = kRetryMin;
  std::unique_ptr<Timer> timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tactd
