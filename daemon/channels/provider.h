// The request formats of the delivery providers: what one attempt sends over
// HTTP for a notification, how that request reads for an operator with its
// secrets masked, and what a provider's answer means for the outbox.
//
//   email: sendgrid (JSON mail send, Bearer key), mailgun (form-encoded,
//          basic auth "api:<key>"), webhook (tactd's JSON); smtp is sent by
//          the SMTP client, not here.
//   sms:   twilio (form-encoded, basic auth "<account>:<token>"),
//          messagebird (JSON, "AccessKey <key>"), webhook (tactd's JSON).
//
// Every request carries `Idempotency-Key: <notification.idempotency_key>`
// (plus the provider's own field where it has one), so that a retry of the
// same notification is recognisable as such. All functions are pure: no
// clock, no I/O; call them from any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "model/notification.h"
#include "model/time.h"
#include "net/http_client.h"

namespace tactd {

// What one delivery attempt sends over HTTP, with the secrets it contains,
// so that logs and `tactd preview --request` can mask them.
struct ProviderRequest {
  HttpClientRequest http;
  std::vector<std::string> secrets;  // as configured; never empty strings
};

// Appends `text` as a JSON string literal, byte for byte as nlohmann::json's
// dump() writes it (no ASCII escaping; what is not UTF-8 becomes U+FFFD).
void append_json_string(std::string& out, std::string_view text);

// Builds the request for `notification` on `channel`; `now` stamps webhook
// signatures (X-Tactd-Timestamp) and nothing else. Returns nullopt with
// `error` set when the notification cannot be sent this way at all, which
// is permanent: an unknown provider or smtp (not HTTP), a missing url, from,
// account or secret (or one with a line break), a notification of the other
// channel or without recipient, an email without subject, an empty SMS or
// one longer than `channel.max_segments` segments.
std::optional<ProviderRequest> provider_request(const ChannelConfig& channel, const Notification& notification,
                                                Timestamp now, std::string& error);

// Why `notification` cannot go out on `channel` whatever its provider, or
// "": another channel's notification, no recipient or (email) not an email
// address, no subject, an empty SMS or one of more than max_segments.
std::string unsendable(const ChannelConfig& channel, const Notification& notification);

// The request as text for operators: "METHOD URL", one "Name: value" line
// per header, an empty line and the body, exactly as sent except that every
// secret is replaced by "***" wherever it appears: as is, percent-encoded
// (forms, URLs), JSON- or HTML-escaped (a secret that leaked into a
// message), and inside `Authorization: Basic`, which is then shown decoded
// as `Basic base64(user:***)`.
std::string describe(const ProviderRequest& request);

// How a provider's answer is to be treated.
struct Verdict {
  enum Kind { kDelivered, kRetry, kPermanent } kind = kRetry;
  // kRetry: the provider's Retry-After, the least wait before the next
  // attempt; nullopt when it gave none.
  std::optional<Duration> retry_after;
  // For the attempt record and the dead letter: "HTTP 400: <the provider's
  // answer, at most kMaxAnswer bytes, on one line>" or "no answer: <transport error>".
  std::string reason;

  static constexpr std::size_t kMaxAnswer = 300;
  static constexpr Duration kMaxRetryAfter = std::chrono::hours{6};  // longer Retry-After values are cut to this
};

// 2xx: delivered. 408, 429 and 5xx: retry, honouring Retry-After (delta
// seconds or an HTTP-date, which is measured from `now`). No answer at all
// (timeout, refused, reset): retry. Anything else (other 4xx, 3xx): permanent,
// with the provider's answer.
Verdict judge(const HttpClientResponse& response, Timestamp now);

}  // namespace tactd
