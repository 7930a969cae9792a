// Replies forwarded to support ([inbound] forward_email or
// forward_webhook) with the conversation so far: the customer's messages
// and replies, oldest first. A reply is marked forwarded in the store once
// support took it, so that a restart forwards what was not; one that could
// not be forwarded is tried again, from kRetryMin doubling to kRetryMax.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "channels/provider.h"
#include "config/config.h"
#include "model/clock.h"
#include "store/contact_store.h"
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
// The email to forward_email, over the email channel. Pure.
Notification forward_email(const InboundConfig& config, const Reply& reply, const std::vector<ConversationLine>& lines);

class ReplyForwarder {
 public:
  static constexpr Duration kRetryMin = std::chrono::seconds{5};
  static constexpr Duration kRetryMax = std::chrono::minutes{10};
  static constexpr std::size_t kBatch = 20;                          // replies read and sent at once
  static constexpr Duration kHistory = std::chrono::hours{24 * 90};  // how far back the conversation goes

  // `io`, `contacts` (the replies), `outbox` (the conversation's messages),
  // `http`, `smtp` and `clock` must outlive the forwarder. Call everything
  // on the loop.
  // `state` runs the store's work (store/state_runner.h); the default calls it directly.
  ReplyForwarder(boost::asio::io_context& io, ContactStore& contacts, const OutboxStore& outbox, HttpClient& http,
                 SmtpClient& smtp, const Clock& clock, StateRunner state = {});
  ~ReplyForwarder();
  ReplyForwarder(const ReplyForwarder&) = delete;
  ReplyForwarder& operator=(const ReplyForwarder&) = delete;

  // The [inbound] table and the email channel (may be null); a reload calls
  // it again. Without a forward target replies are only recorded.
  void configure(const std::optional<InboundConfig>& config, const ChannelConfig* email);
  // Forwards what waits (after a reply was recorded, and at start).
  void wake();
  // No more sends; answers still out are dropped (their replies stay
  // unforwarded and go out after the next start).
  void stop();

 private:
  // Reads the replies waiting and forwards those not in flight; on the store's fiber.
  void forward_waiting();
  void forward(const Reply& reply);
  void settle(long long reply_id, const Verdict& verdict);
  void retry_later();

  struct Timer;
  boost::asio::io_context& io_;
  StateRunner state_;
  ContactStore& contacts_;
  const OutboxStore& outbox_;
  HttpClient& http_;
  SmtpClient& smtp_;
  const Clock& clock_;
  std::optional<InboundConfig> config_;
  std::unique_ptr<Sender> email_;
  std::set<long long> in_flight_;
  Duration backoff_ = kRetryMin;
  std::unique_ptr<Timer> timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tactd
