#include "inbound/reply_forwarder.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "channels/delivery.h"
#include "net/http_client.h"
#include "ops/logging.h"
#include "signing/signing.h"

namespace tactd {

struct ReplyForwarder::Timer {
  explicit Timer(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
  bool armed = false;
};

namespace {

nlohmann::json reply_json(const Reply& r) {
  nlohmann::json out{{"id", r.id},
                     {"at", format_rfc3339(r.at)},
                     {"channel", std::string(to_string(r.channel))},
                     {"from", r.from},
                     {"to", r.to},
                     {"text", r.text},
                     {"stop", r.stop},
                     {"customer", r.customer.empty() ? nlohmann::json() : nlohmann::json(r.customer)},
                     {"entity", r.entity ? nlohmann::json(r.entity->str()) : nlohmann::json()},
                     {"notification", r.notification.empty() ? nlohmann::json() : nlohmann::json(r.notification)},
                     {"matched_by", r.matched_by.empty() ? nlohmann::json() : nlohmann::json(r.matched_by)}};
  if (r.subject) out["subject"] = *r.subject;
  return out;
}

}  // namespace

std::vector<ConversationLine> conversation(const Reply& reply, const std::vector<Notification>& sent,
                                           const std::vector<Reply>& replies) {
  std::vector<ConversationLine> lines;
  for (const Notification& n : sent)
    lines.push_back(
        ConversationLine{n.at, false, n.channel, n.rule + ", " + std::string(to_string(n.kind)), n.subject, n.body});
  bool self = false;
  for (const Reply& r : replies) {
    if (r.id > reply.id) continue;  // later replies are forwarded on their own
    self = self || r.id == reply.id;
    lines.push_back(ConversationLine{r.at, true, r.channel, "reply", r.subject, r.text});
  }
  if (!self) lines.push_back(ConversationLine{reply.at, true, reply.channel, "reply", reply.subject, reply.text});
  std::stable_sort(lines.begin(), lines.end(),
                   [](const ConversationLine& a, const ConversationLine& b) { return a.at < b.at; });
  if (lines.size() > kMaxConversationLines)
    lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(kMaxConversationLines));
  return lines;
}

std::string forward_text(const Reply& reply, const std::vector<ConversationLine>& lines, const std::string& time_zone) {
  std::string out = (reply.customer.empty() ? "Someone we could not match (" + reply.from + ")"
                                            : "Customer " + reply.customer + " (" + reply.from + ")") +
                    " replied by " + std::string(to_string(reply.channel)) + " at " +
                    format_rfc3339(reply.at, time_zone);
  if (reply.entity) out += " about " + reply.entity->str();
  out += ":\n\n" + reply.text + "\n";
  if (reply.entity) out += "\nAutomated messages about " + reply.entity->str() + " are held back for a while.\n";
  out += "\nThe conversation so far (oldest first):\n";
  for (const ConversationLine& line : lines) {
    out += "\n[" + format_rfc3339(line.at, time_zone) + "] " +
           (line.from_customer ? "customer" : "tactd (" + line.what + ")") + " by " +
           std::string(to_string(line.channel)) + ":\n";
    if (line.subject) out += "Subject: " + *line.subject + "\n";
    out += line.text + "\n";
  }
  return out;
}

ProviderRequest forward_webhook_request(const InboundConfig& config, const Reply& reply,
                                        const std::vector<ConversationLine>& lines, Timestamp now) {
  nlohmann::json talk = nlohmann::json::array();
  for (const ConversationLine& line : lines) {
    nlohmann::json one{{"at", format_rfc3339(line.at)},
                       {"from", line.from_customer ? "customer" : "tactd"},
                       {"channel", std::string(to_string(line.channel))},
                       {"what", line.what},
                       {"text", line.text}};
    if (line.subject) one["subject"] = *line.subject;
    talk.push_back(std::move(one));
  }
  ProviderRequest request;
  request.http.method = "POST";
  request.http.url = config.forward_webhook;
  request.http.timeout = std::chrono::seconds{10};
  request.http.headers.emplace_back("Content-Type", "application/json");
  request.http.headers.emplace_back("Idempotency-Key", "tactd-reply-" + std::to_string(reply.id));
  request.http.body =
      nlohmann::json{{"text", forward_text(reply, lines, "UTC")}, {"reply", reply_json(reply)}, {"conversation", talk}}
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (config.forward_secret.empty()) return request;
  request.secrets.push_back(config.forward_secret);
  const std::string timestamp =
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  request.http.headers.emplace_back("X-Tactd-Timestamp", timestamp);
  request.http.headers.emplace_back("X-Tactd-Signature",
                                    webhook_signature(config.forward_secret, timestamp, request.http.body));
  return request;
}

Notification forward_email(const InboundConfig& config, const Reply& reply,
                           const std::vector<ConversationLine>& lines) {
  Notification n;
  n.idempotency_key = "tactd:reply-forward:" + std::to_string(reply.id);
  n.at = reply.at;
  n.rule = "tactd:reply-forward";
  n.kind = Kind::kExplanation;
  n.customer = reply.customer;
  n.entity = reply.entity.value_or(EntityRef{EntityType::kCustomer, reply.customer});
  n.channel = Channel::kEmail;
  n.to = config.forward_email;
  n.subject = "Reply from " + (reply.customer.empty() ? reply.from : "customer " + reply.customer) +
              (reply.entity ? " about " + reply.entity->str() : "");
  n.body = forward_text(reply, lines, "UTC");
  n.locale = "en";
  n.time_zone = "UTC";
  return n;
}

ReplyForwarder::ReplyForwarder(boost::asio::io_context& io, ContactStore& contacts, const OutboxStore& outbox,
                               HttpClient& http, SmtpClient& smtp, const Clock& clock, StateRunner state)
    : io_(io),
      state_(state),
      contacts_(contacts),
      outbox_(outbox),
      http_(http),
      smtp_(smtp),
      clock_(clock),
      timer_(std::make_unique<Timer>(io)) {}

ReplyForwarder::~ReplyForwarder() { stop(); }

void ReplyForwarder::configure(const std::optional<InboundConfig>& config, const ChannelConfig* email) {
  config_ = config;
  email_ = config && !config->forward_email.empty() && email ? Sender::create(*email, http_, smtp_, clock_) : nullptr;
}

void ReplyForwarder::stop() {
  *alive_ = false;
  alive_ = std::make_shared<bool>(true);
  config_.reset();
  in_flight_.clear();
  timer_->timer.cancel();
}

void ReplyForwarder::wake() {
  if (!config_ || (config_->forward_email.empty() && config_->forward_webhook.empty())) return;
  run_detached(
      io_.get_executor(), state_,
      [this, alive = alive_] {
        if (*alive) forward_waiting();
      },
      "inbound: forwarding replies");
}

void ReplyForwarder::forward_waiting() {
  if (!config_ || (config_->forward_email.empty() && config_->forward_webhook.empty())) return;
  std::vector<Reply> waiting;
  try {
    waiting = contacts_.unforwarded_replies(kBatch);
  } catch (const std::exception& e) {
    spdlog::error("inbound: cannot read the replies to forward {}", kv("error", e.what()));
    retry_later();
    return;
  }
  for (const Reply& reply : waiting)
    if (!in_flight_.count(reply.id)) forward(reply);
}

void ReplyForwarder::forward(const Reply& reply) {
  std::vector<ConversationLine> lines;
  try {
    std::vector<Notification> sent;
    std::vector<Reply> replies;
    if (!reply.customer.empty()) {
      sent = outbox_.notifications_since(reply.customer, reply.at - kHistory);
      std::erase_if(sent, [&](const Notification& n) { return n.at > reply.at || n.rule.starts_with("tactd:"); });
      replies = contacts_.replies(reply.customer);
    }
    lines = conversation(reply, sent, replies);
  } catch (const std::exception& e) {
    spdlog::error("inbound: cannot read the conversation of reply {} {}", reply.id, kv("error", e.what()));
    retry_later();
    return;
  }
  in_flight_.insert(reply.id);
  const long long id = reply.id;
  auto done = [this, id, alive = alive_](Verdict verdict) {
    if (*alive) settle(id, verdict);
  };
  if (!config_->forward_webhook.empty()) {
    const Clock* clock = &clock_;
    http_.fetch(forward_webhook_request(*config_, reply, lines, clock_.now()).http,
                [done, clock](HttpClientResponse response) { done(judge(response, clock->now())); });
  } else if (email_) {
    email_->send(forward_email(*config_, reply, lines), done);
  } else {
    done(Verdict{Verdict::kPermanent, std::nullopt, "there is no email [[channel]] to forward through"});
  }
}

void ReplyForwarder::settle(long long reply_id, const Verdict& verdict) {
  if (verdict.kind == Verdict::kDelivered) {
    run_detached(
        io_.get_executor(), state_,
        [this, alive = alive_, reply_id, at = clock_.now()] {
          if (!*alive) return;
          try {
            contacts_.mark_forwarded(reply_id, at);
          } catch (const std::exception& e) {
            spdlog::error("inbound: reply {} forwarded but not marked so {}", reply_id, kv("error", e.what()));
          }
          in_flight_.erase(reply_id);  // only now: a wake() meanwhile must not send it again
          backoff_ = kRetryMin;
          spdlog::info("inbound: reply {} forwarded to support", reply_id);
          forward_waiting();
        },
        "inbound: recording a forwarded reply");
    return;
  }
  in_flight_.erase(reply_id);
  spdlog::warn("inbound: reply {} not forwarded, trying again in {}s {}", reply_id,
               std::chrono::duration_cast<std::chrono::seconds>(backoff_).count(), kv("detail", verdict.reason));
  retry_later();
}

void ReplyForwarder::retry_later() {
  if (timer_->armed) return;
  timer_->armed = true;
  timer_->timer.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kRetryMax);
  timer_->timer.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive) return;
    timer_->armed = false;
    if (!ec) wake();
  });
}

}  // namespace tactd
