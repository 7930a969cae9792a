// The senders behind Sender::create: a provider's HTTP API (provider.h) on
// the shared HttpClient, or SMTP with a MIME message on the SmtpClient.
#include <utility>  // before Boost.Asio

#include "channels/delivery.h"

#include <algorithm>

#include "channels/html.h"
#include "channels/mime.h"
#include "net/http_client.h"
#include "net/smtp_client.h"

namespace tactd {
namespace {

class HttpSender final : public Sender {
 public:
  HttpSender(ChannelConfig config, HttpClient& client, const Clock& clock)
      : config_(std::move(config)), client_(client), clock_(clock) {}

  void send(const Notification& notification, std::function<void(Verdict)> done) override {
    std::string error;
    auto request = provider_request(config_, notification, clock_.now(), error);
    if (!request) {
      done(Verdict{Verdict::kPermanent, std::nullopt, error});
      return;
    }
    client_.fetch(std::move(request->http),
                  [this, done = std::move(done)](HttpClientResponse response) { done(judge(response, clock_.now())); });
  }

 private:
  ChannelConfig config_;
  HttpClient& client_;
  const Clock& clock_;
};

// The SMTP session for `n` on `channel`, or nullopt with `error`.
std::optional<SmtpRequest> smtp_request(const ChannelConfig& channel, const Notification& n, Timestamp now,
                                        std::string& error) {
  if (error = unsendable(channel, n); !error.empty()) return std::nullopt;
  if (channel.url.rfind("smtp://", 0) != 0 && channel.url.rfind("smtps://", 0) != 0) {
    error = "smtp needs a url \"smtp://host:587\" (STARTTLS) or \"smtps://host:465\" (implicit TLS)";
    return std::nullopt;
  }
  const auto from = parse_mailbox(channel.from);
  if (!from) {
    error = "smtp: from \"" + channel.from + "\" is not an email address";
    return std::nullopt;
  }
  const Mailbox to = *parse_mailbox(n.to);  // unsendable() checked it
  MailMessage message{*from,
                      to,
                      n.subject.value_or(""),
                      n.body,
                      html_body(n.body),
                      message_id(n.idempotency_key, from->address.substr(from->address.rfind('@') + 1)),
                      now};
  if (n.reply_to) message.reply_to = parse_mailbox(*n.reply_to);  // none when it is no address
  SmtpRequest request;
  request.url = channel.url;
  request.require_tls = channel.require_tls;
  request.ca_file = channel.ca_file;
  request.username = channel.username;
  request.password = channel.secret;
  request.mail_from = from->address;
  request.recipients = {to.address};
  request.message = mime_message(message);
  request.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(channel.timeout);
  return request;
}

// 2xx: delivered. 5xx: permanent (the server refused the sender, the
// recipient, the message or the login). Anything else (4xx, no answer,
// TLS failure): retry.
Verdict judge_smtp(const SmtpResponse& response) {
  if (response.error.empty())
    return Verdict{Verdict::kDelivered, std::nullopt, "SMTP " + std::to_string(response.code)};
  if (response.code == 0) return Verdict{Verdict::kRetry, std::nullopt, "no answer: " + response.error};
  const std::string reason = "SMTP " + std::to_string(response.code) + ": " + response.error;
  return Verdict{response.code >= 500 && response.code < 600 ? Verdict::kPermanent : Verdict::kRetry, std::nullopt,
                 reason};
}

class SmtpSender final : public Sender {
 public:
  SmtpSender(ChannelConfig config, SmtpClient& client, const Clock& clock)
      : config_(std::move(config)), client_(client), clock_(clock) {}

  void send(const Notification& notification, std::function<void(Verdict)> done) override {
    std::string error;
    auto request = smtp_request(config_, notification, clock_.now(), error);
    if (!request) {
      done(Verdict{Verdict::kPermanent, std::nullopt, error});
      return;
    }
    client_.send(std::move(*request),
                 [done = std::move(done)](const SmtpResponse& response) { done(judge_smtp(response)); });
  }

 private:
  ChannelConfig config_;
  SmtpClient& client_;
  const Clock& clock_;
};

// The session as an operator reads it: the envelope, then the message.
std::string describe(const SmtpRequest& request) {
  std::string text = "SMTP " + request.url;
  if (request.url.rfind("smtp://", 0) == 0)
    text += request.require_tls ? " (STARTTLS required)" : " (STARTTLS when offered)";
  text += "\n";
  if (!request.username.empty()) text += "AUTH " + request.username + " ***\n";
  text += "MAIL FROM:<" + request.mail_from + ">\n";
  for (const std::string& to : request.recipients) text += "RCPT TO:<" + to + ">\n";
  text += "DATA\n";
  std::string message = request.message;
  message.erase(std::remove(message.begin(), message.end(), '\r'), message.end());
  if (!request.password.empty())
    for (auto at = message.find(request.password); at != std::string::npos; at = message.find(request.password, at))
      message.replace(at, request.password.size(), "***");
  return text + message;
}

}  // namespace

std::unique_ptr<Sender> Sender::create(const ChannelConfig& channel, HttpClient& http, SmtpClient& smtp,
                                       const Clock& clock) {
  if (channel.provider == "smtp") return std::make_unique<SmtpSender>(channel, smtp, clock);
  return std::make_unique<HttpSender>(channel, http, clock);
}

std::optional<std::string> describe_request(const ChannelConfig& channel, const Notification& notification,
                                            Timestamp now, std::string& error) {
  if (channel.provider == "smtp") {
    auto request = smtp_request(channel, notification, now, error);
    if (!request) return std::nullopt;
    return describe(*request);
  }
  auto request = provider_request(channel, notification, now, error);
  if (!request) return std::nullopt;
  return describe(*request);
}

}  // namespace tactd
