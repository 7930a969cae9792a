// What customers send back, as providers and inbound email services post it:
// the requests of the inbound endpoint parsed and their signatures checked.
// Values only: no I/O, no store, no coroutines (the fuzz targets link it).
//
//   POST /v1/inbound/twilio       form-encoded (From, To, Body, MessageSid),
//                                 X-Twilio-Signature: base64 HMAC-SHA1, keyed with
//                                 the auth token, of the URL followed by every
//                                 parameter (sorted by name) as name then value
//   POST /v1/inbound/messagebird  form-encoded or JSON (originator, recipient,
//                                 body, id), MessageBird-Signature-JWT: an HS256
//                                 JWT keyed with the signing key, whose claims
//                                 hold iss "MessageBird", nbf, exp, url_hash
//                                 (hex SHA-256 of the URL) and payload_hash
//                                 (hex SHA-256 of the body; absent for none)
//   POST /v1/inbound/sms          JSON {"from", "to", "text", "id"}
//   POST /v1/inbound/email        JSON {"from", "to", "subject", "text",
//                                 "in_reply_to", "references", "message_id"}
//                                 both with X-Tactd-Timestamp and
//                                 X-Tactd-Signature (as the push endpoint)
//
// The URL Twilio and MessageBird sign is [inbound] public_url followed by
// the request's target: tactd sits behind a proxy and cannot know it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "model/notification.h"
#include "model/time.h"
#include "net/http_server.h"

namespace tactd {

inline constexpr std::string_view kInboundTwilioPath = "/v1/inbound/twilio";
inline constexpr std::string_view kInboundMessageBirdPath = "/v1/inbound/messagebird";
inline constexpr std::string_view kInboundSmsPath = "/v1/inbound/sms";
inline constexpr std::string_view kInboundEmailPath = "/v1/inbound/email";

// One message received.
struct InboundMessage {
  Channel channel = Channel::kSms;
  std::string provider;     // "twilio", "messagebird" or "json"
  std::string provider_id;  // the provider's id of the message; may be empty
  std::string from;
  std::string to;
  std::optional<std::string> subject;  // email
  std::string text;                    // as sent (for email: quoted history included)
  // Message-IDs it answers, without angle brackets: In-Reply-To first, then
  // References from the newest. Email only.
  std::vector<std::string> references;
};

// A request judged: a message, or the status (400, 401, 404, 405) and what
// is wrong, naming the field or header.
struct InboundParse {
  std::optional<InboundMessage> message;
  int status = 400;
  std::string error;
};

// The answer to a request's head (the body not read yet): 404, 405, or 401
// for a request whose provider is not configured or that carries no
// signature header; nullopt to read the body.
std::optional<InboundParse> screen_inbound(const HttpRequest& head, const InboundConfig& config);
// A whole request parsed and its signature checked at `now`.
InboundParse parse_inbound(const HttpRequest& request, const InboundConfig& config, Timestamp now);

// application/x-www-form-urlencoded into name/value pairs, in order; nullopt
// with `error` for a bad %-escape.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_form(std::string_view body, std::string& error);

// X-Twilio-Signature for `url` and `params` under `token`.
std::string twilio_signature(const std::string& token, const std::string& url,
                             std::vector<std::pair<std::string, std::string>> params);
// A MessageBird-Signature-JWT for `url` and `body` under `key`, valid from
// `now` for five minutes with id `jti`; for tests and clients.
std::string messagebird_signature(const std::string& key, const std::string& url, std::string_view body, Timestamp now,
                                  const std::string& jti = "tactd");
// Why `jwt` does not sign `url` and `body` under `key` at `now` (allowing
// `skew` either way for nbf and exp), or empty when it does.
std::string check_messagebird_signature(const std::string& key, const std::string& jwt, const std::string& url,
                                        std::string_view body, Timestamp now, Duration skew);
// "sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">" under `secret`: the
// generic webhooks' X-Tactd-Signature.
std::string tactd_signature(const std::string& secret, const std::string& timestamp, std::string_view body);

// The part of a reply the sender wrote: for email, the text before the
// quoted message ("> ..." lines, "On ... wrote:", "Op ... schreef ...:",
// "-----Original Message-----"); trimmed.
std::string written_part(std::string_view text, Channel channel);
// Whether `text` (written_part) is a STOP word alone, in any case, with
// any white space around it (and any run of it inside it as one space) and
// trailing '.' or '!' allowed: STOP, STOPP, STOPPEN, AFMELDEN, AFMELDING,
// UITSCHRIJVEN, OPZEGGEN, UNSUBSCRIBE, CANCEL, END, QUIT, STOPALL,
// "STOP ALL", OPTOUT, "OPT OUT", "OPT-OUT", REVOKE.
bool is_stop(std::string_view text);
// Whether `text` is a START word alone, the same way: START, UNSTOP,
// SUBSCRIBE, AANMELDEN, INSCHRIJVEN, OPTIN, "OPT IN", "OPT-IN".
bool is_start(std::string_view text);

}  // namespace tactd
