#include "inbound/inbound_request.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include <nlohmann/json.hpp>

#include "signing/signing.h"

namespace tactd {
namespace {

constexpr std::string_view kTimestampHeader = "x-tactd-timestamp";
constexpr std::string_view kSignatureHeader = "x-tactd-signature";
constexpr std::string_view kTwilioHeader = "x-twilio-signature";
constexpr std::string_view kMessageBirdHeader = "messagebird-signature-jwt";

InboundParse refuse(int status, std::string error) { return InboundParse{std::nullopt, status, std::move(error)}; }

const std::string* header(const HttpRequest& request, std::string_view name) {
  auto it = request.headers.find(std::string(name));
  return it == request.headers.end() ? nullptr : &it->second;
}

bool same_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string base64url(std::string_view bytes) {
  std::string out = base64(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::optional<std::string> from_base64url(std::string_view text) {
  std::string padded;
  for (const char c : text) {
    if (c == '-')
      padded += '+';
    else if (c == '_')
      padded += '/';
    else if (std::isalnum(static_cast<unsigned char>(c)))
      padded += c;
    else
      return std::nullopt;
  }
  if (padded.size() % 4 == 1) return std::nullopt;
  const std::size_t pad = (4 - padded.size() % 4) % 4;
  padded.append(pad, '=');
  std::string out(padded.size() / 4 * 3 + 1, '\0');
  const int length =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(padded.data()), static_cast<int>(padded.size()));
  if (length < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(length) - pad);
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

// The generic webhooks' signature: form and timestamp on the head, the
// HMAC once the body is there.
std::string check_tactd_signature(const HttpRequest& request, const InboundConfig& config, Timestamp now,
                                  bool body_read) {
  const std::string* timestamp = header(request, kTimestampHeader);
  const std::string* signature = header(request, kSignatureHeader);
  if (!timestamp || !signature) return "sign the request with X-Tactd-Timestamp and X-Tactd-Signature";
  long long seconds = 0;
  auto [end, ec] = std::from_chars(timestamp->data(), timestamp->data() + timestamp->size(), seconds);
  if (ec != std::errc{} || end != timestamp->data() + timestamp->size())
    return "X-Tactd-Timestamp must be Unix seconds";
  const long long now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const long long skew_s = std::chrono::duration_cast<std::chrono::seconds>(config.max_skew).count();
  if (seconds < now_s - skew_s || seconds > now_s + skew_s) return "X-Tactd-Timestamp is too far from now; refused";
  if (body_read && !same_secret(*signature, tactd_signature(config.hmac_secret, *timestamp, request.body)))
    return "X-Tactd-Signature does not match the timestamp and body";
  return "";
}

// A text field of a JSON object: nullopt when absent or null, an error
// naming the field when it is not text.
std::optional<std::string> text_of(const nlohmann::json& object, const char* name, std::string& error) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    error = "'" + std::string(name) + "' must be text";
    return std::nullopt;
  }
  return it->get<std::string>();
}

// "<a@x> <b@y>" (or a JSON list of them) into ids without brackets, in order.
std::vector<std::string> message_ids(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t open = text.find('<', i);
    if (open == std::string_view::npos) {
      // a bare id, as some services give In-Reply-To
      const std::string_view rest = trim(text.substr(i));
      if (!rest.empty() && rest.find(' ') == std::string_view::npos) out.emplace_back(rest);
      break;
    }
    const std::size_t close = text.find('>', open);
    if (close == std::string_view::npos) break;
    out.emplace_back(trim(text.substr(open + 1, close - open - 1)));
    i = close + 1;
  }
  return out;
}

InboundParse parse_json_message(const HttpRequest& request, Channel channel) {
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(request.body);
  } catch (const nlohmann::json::parse_error& e) {
    return refuse(400, "the body is not JSON: at byte " + std::to_string(e.byte) + ": " + e.what());
  }
  if (!body.is_object()) return refuse(400, "the body must be a JSON object");
  InboundMessage m;
  m.channel = channel;
  m.provider = "json";
  std::string error;
  const auto required = [&](const char* name) -> std::optional<std::string> {
    auto value = text_of(body, name, error);
    if (!value && error.empty()) error = "'" + std::string(name) + "' is missing";
    return value;
  };
  auto from = required("from");
  if (!from) return refuse(400, error);
  m.from = *from;
  if (trim(m.from).empty()) return refuse(400, "'from' is empty");
  m.to = text_of(body, "to", error).value_or("");
  if (!error.empty()) return refuse(400, error);
  auto text = required("text");
  if (!text) return refuse(400, error);
  m.text = *text;
  m.provider_id = text_of(body, channel == Channel::kEmail ? "message_id" : "id", error).value_or("");
  if (!error.empty()) return refuse(400, error);
  if (channel == Channel::kEmail) {
    m.subject = text_of(body, "subject", error);
    if (!error.empty()) return refuse(400, error);
    for (const char* name : {"in_reply_to", "references"}) {
      auto it = body.find(name);
      if (it == body.end() || it->is_null()) continue;
      std::vector<std::string> ids;
      if (it->is_string()) {
        ids = message_ids(it->get<std::string>());
      } else if (it->is_array()) {
        for (const auto& one : *it) {
          if (!one.is_string()) return refuse(400, "'" + std::string(name) + "' must be text or a list of texts");
          for (auto& id : message_ids(one.get<std::string>())) ids.push_back(std::move(id));
        }
      } else {
        return refuse(400, "'" + std::string(name) + "' must be text or a list of texts");
      }
      // References lists the oldest first; the newest is the likeliest.
      if (std::string_view(name) == "references") std::reverse(ids.begin(), ids.end());
      for (auto& id : ids) m.references.push_back(std::move(id));
    }
  }
  return InboundParse{std::move(m), 200, {}};
}

std::optional<std::string> form_value(const std::vector<std::pair<std::string, std::string>>& form,
                                      std::string_view name) {
  for (const auto& [key, value] : form)
    if (key == name) return value;
  return std::nullopt;
}

InboundParse parse_twilio(const HttpRequest& request, const InboundConfig& config) {
  std::string error;
  auto form = parse_form(request.body, error);
  if (!form) return refuse(400, "the body is not form-encoded: " + error);
  const std::string* signature = header(request, kTwilioHeader);
  if (!signature) return refuse(401, "X-Twilio-Signature is missing");
  const std::string url = config.public_url + request.target;
  if (!same_secret(*signature, twilio_signature(config.twilio_token, url, *form)))
    return refuse(401, "X-Twilio-Signature does not match " + url +
                           " and the parameters (is [inbound] public_url the URL Twilio posts to?)");
  InboundMessage m;
  m.channel = Channel::kSms;
  m.provider = "twilio";
  auto from = form_value(*form, "From");
  if (!from || trim(*from).empty()) return refuse(400, "the parameter 'From' is missing");
  m.from = *from;
  m.to = form_value(*form, "To").value_or("");
  auto body = form_value(*form, "Body");
  if (!body) return refuse(400, "the parameter 'Body' is missing");
  m.text = *body;
  m.provider_id = form_value(*form, "MessageSid").value_or(form_value(*form, "SmsSid").value_or(""));
  return InboundParse{std::move(m), 200, {}};
}

InboundParse parse_messagebird(const HttpRequest& request, const InboundConfig& config, Timestamp now) {
  const std::string* jwt = header(request, kMessageBirdHeader);
  if (!jwt) return refuse(401, "MessageBird-Signature-JWT is missing");
  const std::string url = config.public_url + request.target;
  if (std::string why =
          check_messagebird_signature(config.messagebird_key, *jwt, url, request.body, now, config.max_skew);
      !why.empty())
    return refuse(401, "MessageBird-Signature-JWT: " + why);
  // The parameters: a JSON or form-encoded body, or the query string.
  std::vector<std::pair<std::string, std::string>> params;
  const std::string_view body = trim(request.body);
  std::string error;
  if (!body.empty() && body.front() == '{') {
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(body);
    } catch (const nlohmann::json::parse_error& e) {
      return refuse(400, "the body is not JSON: at byte " + std::to_string(e.byte) + ": " + e.what());
    }
    for (const auto& [key, value] : object.items())
      if (value.is_string())
        params.emplace_back(key, value.get<std::string>());
      else if (value.is_number())
        params.emplace_back(key, value.dump());
  } else {
    const std::size_t query = request.target.find('?');
    auto form =
        parse_form(!body.empty() || query == std::string::npos ? std::string_view(request.body)
                                                               : std::string_view(request.target).substr(query + 1),
                   error);
    if (!form) return refuse(400, "the body is not form-encoded: " + error);
    params = std::move(*form);
  }
  InboundMessage m;
  m.channel = Channel::kSms;
  m.provider = "messagebird";
  auto from = form_value(params, "originator");
  if (!from || trim(*from).empty()) return refuse(400, "the parameter 'originator' is missing");
  m.from = *from;
  m.to = form_value(params, "recipient").value_or("");
  auto text = form_value(params, "body");
  if (!text) text = form_value(params, "message");
  if (!text) return refuse(400, "the parameter 'body' is missing");
  m.text = *text;
  m.provider_id = form_value(params, "id").value_or("");
  return InboundParse{std::move(m), 200, {}};
}

}  // namespace

std::optional<InboundParse> screen_inbound(const HttpRequest& head, const InboundConfig& config) {
  const std::string_view path = path_of(head.target);
  const bool known = path == kInboundTwilioPath || path == kInboundMessageBirdPath || path == kInboundSmsPath ||
                     path == kInboundEmailPath;
  if (!known)
    return refuse(404,
                  "no such endpoint; replies go to POST /v1/inbound/twilio, /v1/inbound/messagebird, "
                  "/v1/inbound/sms or /v1/inbound/email");
  if (head.method != "POST") return refuse(405, "use POST");
  if (path == kInboundTwilioPath) {
    if (config.twilio_token.empty()) return refuse(401, "[inbound] has no twilio_token; Twilio is not accepted");
    if (!header(head, kTwilioHeader)) return refuse(401, "X-Twilio-Signature is missing");
    return std::nullopt;
  }
  if (path == kInboundMessageBirdPath) {
    if (config.messagebird_key.empty())
      return refuse(401, "[inbound] has no messagebird_key; MessageBird is not accepted");
    if (!header(head, kMessageBirdHeader)) return refuse(401, "MessageBird-Signature-JWT is missing");
    return std::nullopt;
  }
  if (config.hmac_secret.empty()) return refuse(401, "[inbound] has no hmac_secret; the JSON webhooks are off");
  // The time of the signature is checked with the body (parse_inbound).
  if (!header(head, kTimestampHeader) || !header(head, kSignatureHeader))
    return refuse(401, "sign the request with X-Tactd-Timestamp and X-Tactd-Signature");
  return std::nullopt;
}

InboundParse parse_inbound(const HttpRequest& request, const InboundConfig& config, Timestamp now) {
  if (auto refusal = screen_inbound(request, config)) return *refusal;
  const std::string_view path = path_of(request.target);
  if (path == kInboundTwilioPath) return parse_twilio(request, config);
  if (path == kInboundMessageBirdPath) return parse_messagebird(request, config, now);
  if (std::string why = check_tactd_signature(request, config, now, true); !why.empty()) return refuse(401, why);
  return parse_json_message(request, path == kInboundEmailPath ? Channel::kEmail : Channel::kSms);
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_form(std::string_view body, std::string& error) {
  const auto decode = [&](std::string_view text, std::string& out) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '+') {
        out += ' ';
      } else if (c == '%') {
        int value = 0;
        if (i + 2 >= text.size()) return false;
        auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
        if (ec != std::errc{} || end != text.data() + i + 3) return false;
        out += static_cast<char>(value);
        i += 2;
      } else {
        out += c;
      }
    }
    return true;
  };
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t end = body.find('&', start);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view pair = body.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const std::size_t equals = pair.find('=');
    std::string name, value;
    if (!decode(pair.substr(0, equals), name) ||
        (equals != std::string_view::npos && !decode(pair.substr(equals + 1), value))) {
      error = "a bad %-escape in '" + std::string(pair.substr(0, 60)) + "'";
      return std::nullopt;
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

std::string twilio_signature(const std::string& token, const std::string& url,
                             std::vector<std::pair<std::string, std::string>> params) {
  std::sort(params.begin(), params.end());
  std::string message = url;
  for (const auto& [name, value] : params) message += name + value;
  return base64(hmac(EVP_sha1(), token, message));
}

std::string messagebird_signature(const std::string& key, const std::string& url, std::string_view body, Timestamp now,
                                  const std::string& jti) {
  const long long seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  nlohmann::json claims{
      {"iss", "MessageBird"}, {"nbf", seconds}, {"exp", seconds + 300}, {"jti", jti}, {"url_hash", sha256_hex(url)}};
  if (!body.empty()) claims["payload_hash"] = sha256_hex(body);
  const std::string signing =
      base64url(nlohmann::json{{"alg", "HS256"}, {"typ", "JWT"}}.dump()) + "." + base64url(claims.dump());
  return signing + "." + base64url(hmac(EVP_sha256(), key, signing));
}

std::string check_messagebird_signature(const std::string& key, const std::string& jwt, const std::string& url,
                                        std::string_view body, Timestamp now, Duration skew) {
  const std::size_t first = jwt.find('.');
  const std::size_t second = first == std::string::npos ? std::string::npos : jwt.find('.', first + 1);
  if (second == std::string::npos || jwt.find('.', second + 1) != std::string::npos)
    return "not a JWT (three base64url parts joined by '.')";
  const auto header_json = from_base64url(std::string_view(jwt).substr(0, first));
  const auto claims_json = from_base64url(std::string_view(jwt).substr(first + 1, second - first - 1));
  const auto signature = from_base64url(std::string_view(jwt).substr(second + 1));
  if (!header_json || !claims_json || !signature) return "a part is not base64url";
  nlohmann::json head, claims;
  try {
    head = nlohmann::json::parse(*header_json);
    claims = nlohmann::json::parse(*claims_json);
  } catch (const nlohmann::json::parse_error&) {
    return "its header or claims are not JSON";
  }
  if (!head.is_object() || head.value("alg", "") != "HS256") return "its algorithm must be HS256";
  if (!same_secret(*signature, hmac(EVP_sha256(), key, std::string_view(jwt).substr(0, second))))
    return "the signature does not match (is messagebird_key the signing key?)";
  if (!claims.is_object() || claims.value("iss", "") != "MessageBird") return "the issuer is not MessageBird";
  const long long now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const long long skew_s = std::chrono::duration_cast<std::chrono::seconds>(skew).count();
  const auto nbf = claims.find("nbf");
  const auto exp = claims.find("exp");
  if (nbf == claims.end() || !nbf->is_number_integer() || exp == claims.end() || !exp->is_number_integer())
    return "nbf and exp must be Unix seconds";
  if (nbf->get<long long>() > now_s + skew_s) return "not valid yet (nbf is in the future)";
  if (exp->get<long long>() < now_s - skew_s) return "expired (exp has passed)";
  if (claims.value("url_hash", "") != sha256_hex(url))
    return "url_hash does not match " + url + " (is [inbound] public_url the URL MessageBird posts to?)";
  const auto payload = claims.find("payload_hash");
  if (body.empty() ? payload != claims.end() && !payload->is_null()
                   : payload == claims.end() || !payload->is_string() || *payload != sha256_hex(body))
    return "payload_hash does not match the body";
  return "";
}

std::string tactd_signature(const std::string& secret, const std::string& timestamp, std::string_view body) {
  return webhook_signature(secret, timestamp, body);
}

std::string written_part(std::string_view text, Channel channel) {
  if (channel == Channel::kSms) return std::string(trim(text));
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = trim(text.substr(start, end - start));
    start = end + 1;
    const auto ends_with = [&](std::string_view suffix) {
      return line.size() >= suffix.size() && line.substr(line.size() - suffix.size()) == suffix;
    };
    if (line.starts_with(">") || ends_with("wrote:") ||
        (line.starts_with("Op ") && line.find(" schreef") != std::string_view::npos && ends_with(":")) ||
        line.find("Original Message") != std::string_view::npos || line == "--")
      break;
    out += line;
    out += '\n';
  }
  return std::string(trim(out));
}

namespace {

// `text` as a keyword: upper case, each run of white space one space,
// trimmed, without trailing '.' or '!' (nor space among them): " opt\t OUT !"
// is "OPT OUT".
std::string keyword(std::string_view text) {
  std::string word;
  for (const char c : trim(text)) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!word.empty() && word.back() != ' ') word += ' ';
    } else {
      word += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
  while (!word.empty() && (word.back() == '.' || word.back() == '!' || word.back() == ' ')) word.pop_back();
  return word;
}

}  // namespace

bool is_stop(std::string_view text) {
  static constexpr std::array<std::string_view, 17> kWords{
      "STOP", "STOPP",   "STOPPEN",  "AFMELDEN", "UITSCHRIJVEN", "OPZEGGEN", "UNSUBSCRIBE", "CANCEL",   "END",
      "QUIT", "STOPALL", "STOP ALL", "OPTOUT",   "OPT OUT",      "OPT-OUT",  "REVOKE",      "AFMELDING"};
  return std::find(kWords.begin(), kWords.end(), keyword(text)) != kWords.end();
}

bool is_start(std::string_view text) {
  static constexpr std::array<std::string_view, 8> kWords{"START", "UNSTOP", "SUBSCRIBE", "AANMELDEN",
                                                          "OPTIN", "OPT IN", "OPT-IN",    "INSCHRIJVEN"};
  return std::find(kWords.begin(), kWords.end(), keyword(text)) != kWords.end();
}

}  // namespace tactd
