#include "channels/provider.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <utility>

#include <nlohmann/json.hpp>

#include "channels/html.h"
#include "channels/mime.h"
#include "model/mailbox.h"
#include "render/tone.h"
#include "signing/signing.h"

namespace tactd {
namespace {

using nlohmann::json;

constexpr std::string_view kSendgridUrl = "https://api.sendgrid.com/v3/mail/send";
constexpr std::string_view kTwilioUrl = "https://api.twilio.com/2010-04-01/Accounts/";  // <account>/Messages.json
constexpr std::string_view kMessagebirdUrl = "https://rest.messagebird.com/messages";
constexpr std::string_view kJson = "application/json";
constexpr std::string_view kForm = "application/x-www-form-urlencoded";

// JSON text of `value`; invalid UTF-8 becomes U+FFFD instead of throwing.
std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

bool valid_utf8(std::string_view text);

}  // namespace

// A JSON string literal of `text`, exactly as dump() writes one.
void append_json_string(std::string& out, std::string_view text) {
  if (!valid_utf8(text)) {  // dump() replaces what is not UTF-8 with U+FFFD; rare, so it does it
    out += dump(json(std::string(text)));
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t plain = 0;  // the start of the bytes not written yet
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(text.data() + plain, text.size() - plain);
  out += '"';
}

namespace {

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or
// code points past U+10FFFF), as nlohmann::json's serialiser decides.
bool valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < length || p[1] < low || p[1] > high) return false;
    for (std::size_t i = 2; i < length; ++i)
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    p += length;
  }
  return true;
}

// application/x-www-form-urlencoded: unreserved bytes stay, space is '+',
// every other byte (UTF-8 included) is %XX.
std::string form_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

std::string form(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out += form_encode(name);
    out += '=';
    out += form_encode(value);
  }
  return out;
}

// A header value that cannot break out of its line: bytes outside printable
// ASCII (CR, LF, controls, UTF-8) and '%' itself become %XX. Keys made of
// ordinary characters pass unchanged; any key maps to the same value on
// every attempt.
std::string header_safe(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '%') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

std::optional<std::string> unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  const int length =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                      static_cast<int>(text.size()));
  if (length < 0) return std::nullopt;
  std::size_t padding = 0;
  while (padding < 2 && text[text.size() - 1 - padding] == '=') ++padding;
  out.resize(static_cast<std::size_t>(length) - padding);
  return out;
}

std::string basic_auth(std::string_view user, std::string_view password) {
  std::string credentials(user);
  credentials += ':';
  credentials += password;
  return "Basic " + base64(credentials);
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

HttpClientRequest post(const ChannelConfig& channel, std::string url, std::string_view content_type,
                       const Notification& notification) {
  HttpClientRequest http;
  http.method = "POST";
  http.url = std::move(url);
  http.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(channel.timeout);
  http.headers.emplace_back("Content-Type", content_type);
  http.headers.emplace_back("Idempotency-Key", header_safe(notification.idempotency_key));
  return http;
}

// Why `channel` lacks what `provider` needs, or "".
std::string missing(const ChannelConfig& channel, bool url, bool from, bool secret) {
  const std::string_view provider = channel.provider;
  if (url && channel.url.empty()) return std::string(provider) + " needs a url";
  if (from && channel.from.empty())
    return std::string(provider) + (channel.channel == Channel::kEmail
                                        ? " needs from (the sender, \"Our shop <shop@example.com>\")"
                                        : " needs from (the sender number or name)");
  if (secret && channel.secret.empty()) return std::string(provider) + " needs a secret (its API key or token)";
  for (const std::string* value : {&channel.secret, &channel.account, &channel.url, &channel.from})
    if (std::any_of(value->begin(), value->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
      return std::string(provider) +
             ": the channel's url, from, account or secret holds a control character (a line break?)";
  return "";
}

std::optional<ProviderRequest> sendgrid(const ChannelConfig& channel, const Notification& n, std::string& error) {
  if (error = missing(channel, false, true, true); !error.empty()) return std::nullopt;
  const auto from = parse_mailbox(channel.from);
  const auto to = parse_mailbox(n.to);  // checked by unsendable()
  if (!from || !to) {
    error = "sendgrid: from \"" + channel.from + "\" is not an email address";
    return std::nullopt;
  }
  json recipient = {{"email", to->address}};
  if (!to->name.empty()) recipient["name"] = to->name;
  json sender = {{"email", from->address}};
  if (!from->name.empty()) sender["name"] = from->name;
  json body = {
      {"personalizations", json::array({{{"to", json::array({recipient})}}})},
      {"from", sender},
      {"subject", *n.subject},
      {"content", json::array({{{"type", "text/plain"}, {"value", n.body}},
                               {{"type", "text/html"}, {"value", html_body(n.body)}}})},
      {"custom_args", {{"idempotency_key", n.idempotency_key}}},
  };
  if (const auto reply_to = n.reply_to ? parse_mailbox(*n.reply_to) : std::nullopt) {
    body["reply_to"] = {{"email", reply_to->address}};
    if (!reply_to->name.empty()) body["reply_to"]["name"] = reply_to->name;
  }
  ProviderRequest request{post(channel, channel.url.empty() ? std::string(kSendgridUrl) : channel.url, kJson, n),
                          {channel.secret}};
  request.http.headers.emplace_back("Authorization", "Bearer " + channel.secret);
  request.http.body = dump(body);
  return request;
}

std::optional<ProviderRequest> mailgun(const ChannelConfig& channel, const Notification& n, std::string& error) {
  if (error = missing(channel, true, true, true); !error.empty()) {
    if (channel.url.empty()) error += ", e.g. \"https://api.mailgun.net/v3/<your domain>/messages\"";
    return std::nullopt;
  }
  ProviderRequest request{post(channel, channel.url, kForm, n), {channel.secret}};
  request.http.headers.emplace_back("Authorization", basic_auth("api", channel.secret));
  // v: variables come back in Mailgun's events and webhooks.
  request.http.body = form({{"from", channel.from},
                            {"to", n.to},
                            {"subject", *n.subject},
                            {"text", n.body},
                            {"html", html_body(n.body)},
                            {"v:idempotency_key", n.idempotency_key}});
  // Mailgun writes h: fields as headers: the bare address, never a name that could carry a line.
  if (const auto reply_to = n.reply_to ? parse_mailbox(*n.reply_to) : std::nullopt)
    request.http.body += "&" + form({{"h:Reply-To", reply_to->address}});
  return request;
}

std::optional<ProviderRequest> twilio(const ChannelConfig& channel, const Notification& n, std::string& error) {
  if (error = missing(channel, false, true, true); !error.empty()) return std::nullopt;
  if (channel.account.empty()) {
    error = "twilio needs account (the account SID, the user of its basic auth)";
    return std::nullopt;
  }
  std::string url = channel.url;
  if (url.empty()) url = std::string(kTwilioUrl) + form_encode(channel.account) + "/Messages.json";
  ProviderRequest request{post(channel, std::move(url), kForm, n), {channel.secret}};
  request.http.headers.emplace_back("Authorization", basic_auth(channel.account, channel.secret));
  request.http.headers.emplace_back("I-Twilio-Idempotency-Token", header_safe(n.idempotency_key));
  request.http.body = form({{"To", n.to}, {"From", channel.from}, {"Body", n.body}});
  return request;
}

std::optional<ProviderRequest> messagebird(const ChannelConfig& channel, const Notification& n, std::string& error) {
  if (error = missing(channel, false, true, true); !error.empty()) return std::nullopt;
  const json body = {
      {"recipients", json::array({n.to})},
      {"originator", channel.from},
      {"body", n.body},
      {"reference", n.idempotency_key},
      // MessageBird's default, plain, would replace what GSM-7 cannot say.
      {"datacoding", sms_length(n.body).unicode ? "unicode" : "plain"},
  };
  ProviderRequest request{post(channel, channel.url.empty() ? std::string(kMessagebirdUrl) : channel.url, kJson, n),
                          {channel.secret}};
  request.http.headers.emplace_back("Authorization", "AccessKey " + channel.secret);
  request.http.body = dump(body);
  return request;
}

std::optional<ProviderRequest> webhook(const ChannelConfig& channel, const Notification& n, Timestamp now,
                                       std::string& error) {
  if (error = missing(channel, true, false, false); !error.empty()) return std::nullopt;
  ProviderRequest request{post(channel, channel.url, kJson, n), {}};
  // Written straight out, keys in the order nlohmann::json sorts them, as
  // dump() of that object would: building the object costs more than the
  // rest of the request.
  std::string& body = request.http.body;
  body.reserve(256 + n.body.size() * (n.channel == Channel::kEmail ? 3 : 1));
  bool first = true;
  const auto field = [&](std::string_view key, std::string_view value) {
    body += first ? "{\"" : ",\"";
    first = false;
    body += key;
    body += "\":";
    append_json_string(body, value);
  };
  field("body", n.body);
  field("channel", to_string(n.channel));
  field("customer", n.customer);
  field("due_at", format_rfc3339(n.at));
  field("entity", n.entity.str());
  if (!channel.from.empty()) field("from", channel.from);
  if (n.channel == Channel::kEmail) field("html", html_body(n.body));
  field("idempotency_key", n.idempotency_key);
  field("kind", to_string(n.kind));
  field("locale", n.locale);
  if (n.reply_to) field("reply_to", *n.reply_to);
  field("rule", n.rule);
  if (n.channel == Channel::kEmail) field("subject", *n.subject);
  if (!n.time_zone.empty()) field("time_zone", n.time_zone);
  field("to", n.to);
  body += '}';
  const std::string timestamp =
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  request.http.headers.emplace_back("X-Tactd-Timestamp", timestamp);
  if (!channel.secret.empty()) {
    request.http.headers.emplace_back("X-Tactd-Signature",
                                      webhook_signature(channel.secret, timestamp, request.http.body));
    request.secrets.push_back(channel.secret);
  }
  return request;
}

void replace_all(std::string& text, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + with.size()))
    text.replace(at, what.size(), with);
}

// Every form in which a secret may appear in a request: as is, JSON-escaped
// or HTML-escaped (a secret that leaked into a message), each also
// percent-encoded; longest first, so that a secret containing another is
// masked whole.
std::vector<std::string> secret_forms(const std::vector<std::string>& secrets) {
  std::vector<std::string> forms;
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    const std::string quoted = dump(json(secret));
    for (std::string form_of_secret : {secret, quoted.substr(1, quoted.size() - 2), html_escape(secret)}) {
      forms.push_back(form_encode(form_of_secret));
      forms.push_back(std::move(form_of_secret));
    }
  }
  std::sort(forms.begin(), forms.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  forms.erase(std::unique(forms.begin(), forms.end()), forms.end());
  return forms;
}

std::string mask(std::string text, const std::vector<std::string>& forms) {
  for (const std::string& form_of_secret : forms) replace_all(text, form_of_secret, "***");
  return text;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

// The provider's answer on one line, at most Verdict::kMaxAnswer bytes,
// never cut inside a UTF-8 character.
std::string excerpt(std::string_view body) {
  std::string out;
  bool space = false;
  for (const char c : trim(body)) {
    const bool blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
    if (blank) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
    if (out.size() > Verdict::kMaxAnswer) break;
  }
  if (out.size() <= Verdict::kMaxAnswer) return out;
  std::size_t cut = Verdict::kMaxAnswer;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  return out + "...";
}

}  // namespace

std::string unsendable(const ChannelConfig& channel, const Notification& n) {
  if (n.channel != channel.channel)
    return "the notification is for " + std::string(to_string(n.channel)) + ", the channel sends " +
           std::string(to_string(channel.channel));
  if (n.to.empty()) return "the notification has no recipient";
  if (n.channel == Channel::kEmail) {
    if (!parse_mailbox(n.to)) return "the recipient \"" + n.to + "\" is not an email address";
    if (!n.subject || n.subject->empty()) return "the email has no subject: give its template a subject";
    return "";
  }
  const SmsLength length = sms_length(n.body);
  if (length.segments == 0) return "the SMS is empty";
  if (length.segments > channel.max_segments)
    return "the SMS is " + std::to_string(length.segments) + " segments long (" + std::to_string(length.characters) +
           (length.unicode ? " UCS-2 units" : " GSM-7 characters") +
           "), more than max_segments = " + std::to_string(channel.max_segments) +
           ": shorten the template or raise max_segments";
  return "";
}

std::optional<ProviderRequest> provider_request(const ChannelConfig& channel, const Notification& notification,
                                                Timestamp now, std::string& error) {
  if (!known_provider(channel.channel, channel.provider)) {
    std::string list(provider_list(channel.channel));  // "a, b, c" reads "a, b or c" here
    list.replace(list.rfind(", "), 2, " or ");
    error = "unknown " + std::string(to_string(channel.channel)) + " provider '" + channel.provider + "': use " + list;
    return std::nullopt;
  }
  if (channel.provider == "smtp") {
    error = "smtp is not an HTTP provider: the SMTP client sends its mail";
    return std::nullopt;
  }
  if (error = unsendable(channel, notification); !error.empty()) return std::nullopt;
  if (channel.provider == "webhook") return webhook(channel, notification, now, error);
  if (channel.provider == "sendgrid") return sendgrid(channel, notification, error);
  if (channel.provider == "mailgun") return mailgun(channel, notification, error);
  if (channel.provider == "twilio") return twilio(channel, notification, error);
  return messagebird(channel, notification, error);
}

std::string describe(const ProviderRequest& request) {
  const std::vector<std::string> forms = secret_forms(request.secrets);
  std::string out = request.http.method + " " + mask(request.http.url, forms) + "\n";
  for (const auto& [name, value] : request.http.headers) {
    std::string shown = mask(value, forms);
    if (iequals(name, "Authorization") && value.starts_with("Basic ")) {
      if (auto credentials = unbase64(trim(std::string_view(value).substr(6)))) {
        if (std::string masked = mask(*credentials, forms); masked != *credentials)
          shown = "Basic base64(" + masked + ")";
      }
    }
    out.append(name).append(": ").append(shown).append("\n");
  }
  out += "\n";
  out += mask(request.http.body, forms);
  return out;
}

Verdict judge(const HttpClientResponse& response, Timestamp now) {
  if (response.status == 0 || !response.error.empty())
    return {Verdict::kRetry, std::nullopt,
            "no answer: " +
                (response.error.empty() ? std::string("the connection ended without a response") : response.error)};
  std::string reason = "HTTP " + std::to_string(response.status);
  if (std::string answer = excerpt(response.body); !answer.empty()) reason += ": " + answer;
  const long status = response.status;
  if (status >= 200 && status < 300) return {Verdict::kDelivered, std::nullopt, std::move(reason)};
  if (status >= 300 && status < 400) {  // the client follows none: the request and its key stay with the provider
    const auto location = response.headers.find("location");
    reason += "; a redirect" +
              (location == response.headers.end() ? std::string()
                                                  : " to " + location->second.substr(0, location->second.find('?'))) +
              ", not followed: configure the provider's final URL";
    return {Verdict::kPermanent, std::nullopt, std::move(reason)};
  }
  if (status == 408 || status == 429 || status >= 500) {
    std::optional<Duration> retry_after;
    if (auto header = response.headers.find("retry-after"); header != response.headers.end())
      if ((retry_after = parse_retry_after(header->second, now)))
        retry_after = std::min(*retry_after, Verdict::kMaxRetryAfter);
    return {Verdict::kRetry, retry_after, std::move(reason)};
  }
  return {Verdict::kPermanent, std::nullopt, std::move(reason)};
}

}  // namespace tactd
