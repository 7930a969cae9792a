#include "inbound/reply_forwarder.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "channels/delivery.h"
#include "model/mailbox.h"
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

Notification forward_email(const InboundConfig& config, const Reply& reply, const std::vector<ConversationLine>& lines,
                           const std::string& customer_email) {
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
  // The senders parse it again and leave out one that is no address; here
  // it only has to be one to be chosen over the snapshot's.
  if (reply.channel == Channel::kEmail && parse_mailbox(reply.from))
    n.reply_to = reply.from;
  else if (parse_mailbox(customer_email))
    n.reply_to = customer_email;
  return n;
}

std::string forward_target(const InboundConfig& config) {
  if (!config.forward_webhook.empty()) return config.forward_webhook.substr(0, config.forward_webhook.find('?'));
  return config.forward_email;
}

Finding forward_refused_finding(const ForwardRefusal& refusal) {
  return Finding{
      "forward_refused", "",
      "reply " + std::to_string(refusal.reply_id) +
          (refusal.customer.empty() ? " (not matched to a customer)" : " from customer " + refusal.customer) +
          " was refused by " + refusal.target + ": " + refusal.reason,
      refusal.at};
}

ReplyForwarder::ReplyForwarder(boost::asio::io_context& io, ContactStore& contacts, const OutboxStore& outbox,
                               const EntityStore& entities, HttpClient& http, SmtpClient& smtp, const Clock& clock,
                               StateRunner state)
    : io_(io),
      state_(state),
      contacts_(contacts),
      outbox_(outbox),
      entities_(entities),
      http_(http),
      smtp_(smtp),
      clock_(clock),
      timer_(std::make_unique<Timer>(io)) {}

ReplyForwarder::~ReplyForwarder() { stop(); }

void ReplyForwarder::configure(const std::optional<InboundConfig>& config, const ChannelConfig* email) {
  std::optional<ChannelConfig> email_config;
  if (email) email_config = *email;
  // The operator may have fixed the address: what was refused goes again now.
  if ((config != config_ || email_config != email_config_) && !refused_.empty()) {
    spdlog::info("inbound: forwarding reconfigured, {} refused replies are tried again now", refused_.size());
    refused_.clear();
  }
  config_ = config;
  email_config_ = std::move(email_config);
  email_ = config && !config->forward_email.empty() && email ? Sender::create(*email, http_, smtp_, clock_) : nullptr;
}

void ReplyForwarder::stop() {
  *alive_ = false;
  alive_ = std::make_shared<bool>(true);
  config_.reset();
  in_flight_.clear();
  timer_->timer.cancel();
  timer_->armed = false;
}

std::vector<ForwardRefusal> ReplyForwarder::refusals() const {
  std::vector<ForwardRefusal> out;
  for (const auto& [id, refusal] : refused_) out.push_back(refusal);
  return out;
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
  // Every reply still waiting was read: a refusal of one that is gone
  // (forwarded by another replica) is forgotten.
  if (waiting.size() < kBatch)
    std::erase_if(refused_, [&](const auto& refusal) {
      return std::none_of(waiting.begin(), waiting.end(), [&](const Reply& r) { return r.id == refusal.first; });
    });
  const Timestamp now = clock_.now();
  std::optional<Timestamp> next;  // the earliest held refusal
  for (const Reply& reply : waiting) {
    if (in_flight_.count(reply.id)) continue;
    if (auto held = refused_.find(reply.id); held != refused_.end() && held->second.retry_at > now) {
      next = std::min(next.value_or(held->second.retry_at), held->second.retry_at);
      continue;
    }
    forward(reply);
  }
  if (next) arm(*next - now);
}

void ReplyForwarder::forward(const Reply& reply) {
  std::vector<ConversationLine> lines;
  std::string customer_email;  // for the Reply-To of a forward by email
  try {
    if (!reply.customer.empty() && reply.channel != Channel::kEmail && config_->forward_webhook.empty())
      if (auto customer = entities_.entity(EntityRef{EntityType::kCustomer, reply.customer}))
        if (const auto& email = customer->field("email"); email.is_string()) customer_email = email.get<std::string>();
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
  auto done = [this, id, customer = reply.customer, alive = alive_](Verdict verdict) {
    if (*alive) settle(id, customer, verdict);
  };
  if (!config_->forward_webhook.empty()) {
    const Clock* clock = &clock_;
    http_.fetch(forward_webhook_request(*config_, reply, lines, clock_.now()).http,
                [done, clock](HttpClientResponse response) { done(judge(response, clock->now())); });
  } else if (email_) {
    email_->send(forward_email(*config_, reply, lines, customer_email), done);
  } else {
    done(Verdict{Verdict::kPermanent, std::nullopt, "there is no email [[channel]] to forward through"});
  }
}

void ReplyForwarder::settle(long long reply_id, const std::string& customer, const Verdict& verdict) {
  if (verdict.kind == Verdict::kDelivered) {
    if (refused_.erase(reply_id) > 0) spdlog::info("inbound: reply {} forwarded after its refusal", reply_id);
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
  if (verdict.kind == Verdict::kPermanent) {
    refused(reply_id, customer, verdict);
    return;
  }
  spdlog::warn("inbound: reply {} not forwarded, trying again in {}s {}", reply_id,
               std::chrono::duration_cast<std::chrono::seconds>(backoff_).count(), kv("detail", verdict.reason));
  retry_later();
}

// Support's side said no, and asking again will not change that until
// someone fixes the address or the desk: told once, held at the longest wait.
void ReplyForwarder::refused(long long reply_id, const std::string& customer, const Verdict& verdict) {
  const Timestamp now = clock_.now();
  const std::string target = config_ ? forward_target(*config_) : std::string();
  auto [it, first] =
      refused_.try_emplace(reply_id, ForwardRefusal{reply_id, customer, target, verdict.reason, now, now});
  it->second.reason = verdict.reason;
  it->second.retry_at = now + kRetryRefused;
  const auto wait = std::chrono::duration_cast<std::chrono::seconds>(kRetryRefused).count();
  if (first) {
    spdlog::warn("inbound: reply {} refused for good by support's side, kept unforwarded and tried again in {}s {} {}",
                 reply_id, wait, kv("target", target), kv("detail", verdict.reason));
    if (on_refused_) on_refused_(it->second);
  } else {
    spdlog::info("inbound: reply {} still refused, tried again in {}s {}", reply_id, wait,
                 kv("detail", verdict.reason));
  }
  arm(kRetryRefused);
}

void ReplyForwarder::retry_later() {
  if (arm(backoff_)) backoff_ = std::min(backoff_ * 2, kRetryMax);
}

bool ReplyForwarder::arm(Duration wait) {
  using Steady = boost::asio::steady_timer::clock_type;
  if (timer_->armed && timer_->timer.expiry() <= Steady::now() + wait) return false;
  timer_->armed = true;
  timer_->timer.expires_after(wait);  // cancels the later wake, whose handler then does nothing
  timer_->timer.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec) return;
    timer_->armed = false;
    wake();
  });
  return true;
}

}  // namespace tactd
