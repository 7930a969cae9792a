#include "config/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>

#include "config/toml_reader.h"
#include "model/mailbox.h"
#include "model/time.h"

namespace tactd {
namespace {

constexpr long long kMaxDailyCap = 1000;

// "21:00" -> 1260; nullopt when not hh:mm.
std::optional<int> minute_of_day(const std::string& text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  int hour = 0, minute = 0;
  for (int i : {0, 1, 3, 4})
    if (!std::isdigit(static_cast<unsigned char>(text[static_cast<size_t>(i)]))) return std::nullopt;
  hour = (text[0] - '0') * 10 + (text[1] - '0');
  minute = (text[3] - '0') * 10 + (text[4] - '0');
  if (hour > 23 || minute > 59) return std::nullopt;
  return hour * 60 + minute;
}

// "/a/b" -> true when it is a JSON pointer.
bool is_pointer(const std::string& text) {
  try {
    (void)nlohmann::json::json_pointer(text);
    return !text.empty();
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

Mapping read_mapping(const toml::table& table, const std::string& file, Diagnostics& errors) {
  TableReader r(table, file, "[source.mapping]", errors);
  Mapping mapping;
  if (auto type = r.string("type", true)) {
    if (auto t = parse_entity_type(*type))
      mapping.type = *t;
    else
      r.error("type", "unknown entity type '" + *type + "' (expected one of " + std::string(entity_type_list()) + ")");
  }
  auto pointer = [&r](const char* key, bool required) {
    auto value = r.string(key, required).value_or("");
    if (!value.empty() && !is_pointer(value))
      r.error(key, "'" + value + "' is not a JSON pointer (like \"/id\" or \"/customer/id\")");
    return value;
  };
  mapping.id = pointer("id", true);
  mapping.observed_at = pointer("observed_at", false);
  if (const toml::table* fields = r.table("fields")) {
    TableReader f(*fields, file, "[source.mapping.fields]", errors);
    for (const auto& [key, node] : *fields) {
      Mapping::Field field{std::string(key.str()), {}, {}};
      if (node.is_array())
        field.pointers = f.strings(key.str()).value_or(std::vector<std::string>{});
      else if (auto one = f.string(key.str()))
        field.pointers.push_back(*one);
      if (node.is_array() && node.as_array()->empty())
        f.error(key.str(), "'" + field.name + "' needs a JSON pointer, or a list of them");
      for (const auto& path : field.pointers)
        if (!is_pointer(path)) f.error(key.str(), "'" + path + "' is not a JSON pointer (like \"/status\")");
      mapping.fields.push_back(std::move(field));
    }
  }
  if (const toml::table* values = r.table("values")) {
    for (const auto& [key, node] : *values) {
      auto field = std::find_if(mapping.fields.begin(), mapping.fields.end(),
                                [&](const Mapping::Field& f) { return f.name == key.str(); });
      const toml::table* map = node.as_table();
      const auto& where = node.source().begin;
      if (field == mapping.fields.end() || !map) {
        errors.push_back(Diagnostic{file, static_cast<int>(where.line), static_cast<int>(where.column),
                                    "[source.mapping.values." + std::string(key.str()) +
                                        "] must be a table for a field in [source.mapping.fields]"});
        continue;
      }
      for (const auto& [from, to] : *map) {
        if (auto text = to.value<std::string>())
          field->values[std::string(from.str())] = *text;
        else if (auto flag = to.value<bool>())
          field->values[std::string(from.str())] = *flag;
        else if (auto number = to.value<double>())
          field->values[std::string(from.str())] = *number;
      }
    }
  }
  r.finish();
  return mapping;
}

// Whether the [tactd] state or [state] url names a PostgreSQL database.
bool is_postgres_url(std::string_view state) {
  return state.starts_with("postgresql://") || state.starts_with("postgres://");
}

// Whether a PostgreSQL URL carries a password (user:password@ or ?password=).
bool url_has_password(std::string_view url) {
  const auto start = url.find("://") + 3;
  const auto at = url.find('@', start);
  const auto slash = url.find('/', start);
  const auto userinfo = url.substr(
      start, at == std::string_view::npos || (slash != std::string_view::npos && slash < at) ? 0 : at - start);
  if (userinfo.find(':') != std::string_view::npos) return true;
  const auto query = url.find('?');
  if (query == std::string_view::npos) return false;
  const auto params = url.substr(query);
  return params.find("?password=") != std::string_view::npos || params.find("&password=") != std::string_view::npos;
}

// A secret from `<key>_file` or `<key>_env`; empty when neither is set,
// kUnreadSecret when it is set but `secrets` says skip. The value itself
// never appears in a message.
std::string read_secret(TableReader& r, const std::string& key, const std::filesystem::path& base, Secrets secrets) {
  auto file = r.string(key + "_file");
  auto env = r.string(key + "_env");
  auto credential = r.string(key + "_credential");
  if ((file ? 1 : 0) + (env ? 1 : 0) + (credential ? 1 : 0) > 1)
    r.error(credential ? key + "_credential" : key + "_env",
            "give one of '" + key + "_file', '" + key + "_env' and '" + key + "_credential'");
  if ((file || env || credential) && secrets == Secrets::kSkip) return std::string(kUnreadSecret);
  std::filesystem::path path;
  if (credential) {
    // systemd's LoadCredential= puts the secret in $CREDENTIALS_DIRECTORY.
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (credential->empty() || credential->find('/') != std::string::npos || *credential == "." ||
        *credential == "..") {
      r.error(key + "_credential", "'" + key + "_credential' must be a credential's name, like \"push-token\"");
      return {};
    }
    if (!dir || !*dir) {
      r.error(key + "_credential", "'" + key +
                                       "_credential' needs $CREDENTIALS_DIRECTORY, which systemd sets for "
                                       "a unit with LoadCredential=; it is not set");
      return {};
    }
    path = std::filesystem::path(dir) / *credential;
  } else if (file) {
    path = base / *file;
  }
  std::string secret;
  if (!path.empty()) {
    const std::string which = key + (credential ? "_credential" : "_file");
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      r.error(which, "cannot read '" + path.string() + "'");
      return {};
    }
    std::getline(in, secret);
  } else if (env) {
    const char* value = std::getenv(env->c_str());
    if (!value) {
      r.error(key + "_env", "the environment variable '" + *env + "' is not set");
      return {};
    }
    secret = value;
  }
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) secret.pop_back();
  if ((file || env || credential) && secret.empty())
    r.error(key + (credential ? "_credential" : file ? "_file" : "_env"), "the " + key + " is empty");
  return secret;
}

// `listen = "address:port"` into `address` and `port`, when given.
void read_listen(TableReader& r, std::string& address, unsigned short& port) {
  auto listen = r.string("listen");
  if (!listen) return;
  const auto colon = listen->rfind(':');
  int number = -1;
  if (colon != std::string::npos && colon > 0) {
    auto [end, ec] = std::from_chars(listen->data() + colon + 1, listen->data() + listen->size(), number);
    if (ec != std::errc{} || end != listen->data() + listen->size()) number = -1;
  }
  if (number < 0 || number > 65535) {
    r.error("listen", "'listen' must be address:port, like \"127.0.0.1:8425\", not '" + *listen + "'");
    return;
  }
  address = listen->substr(0, colon);
  port = static_cast<unsigned short>(number);
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& value) {
  std::filesystem::path p(value);
  return p.is_absolute() ? p : (base / p).lexically_normal();
}

// Where a duration setting makes sense, and how an error says so.
struct DurationRange {
  Duration min;
  Duration max;
  const char* says;  // "between 1s and 10m"
};

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
constexpr DurationRange kRequestTimeout{seconds{1}, minutes{10}, "between 1s and 10m"};
constexpr DurationRange kJitter{Duration::zero(), days{1}, "between 0s and 1d"};
constexpr DurationRange kBackoff{seconds{1}, days{1}, "between 1s and 1d"};
constexpr DurationRange kMaxBackoff{seconds{1}, days{7}, "between 1s and 7d"};
constexpr DurationRange kMaxAge{minutes{1}, days{30}, "between 1m and 30d"};
constexpr DurationRange kOperatorsTimeout{seconds{1}, minutes{1}, "between 1s and 1m"};
constexpr DurationRange kMaxSkew{seconds{1}, hours{1}, "between 1s and 1h"};
constexpr DurationRange kTimerGrace{Duration::zero(), days{30}, "between 0s and 30d"};
// Renewed every third of it; under 30 s so that a dead replica's customers
// wait less than half a minute (docs/scale-out.md).
constexpr DurationRange kClusterLease{seconds{3}, seconds{29}, "between 3s and 29s"};
constexpr DurationRange kSourceInterval{seconds{1}, days{1}, "between 1s and 1d; a source is polled, not spun on"};
constexpr DurationRange kStopGrace{Duration{1}, minutes{5}, "more than 0s and at most 5m"};
constexpr DurationRange kWaitForLinks{Duration{1}, days{30}, "more than 0s and at most 30d"};
constexpr DurationRange kPause{Duration::zero(), days{30}, "between 0s (no pause) and 30d"};
constexpr DurationRange kDigest{seconds{1}, days{1}, "between 1s and 1d: at most one digest is sent per this long"};

// A duration like "30s" within `range`; nullopt (with the problem reported
// at the value) when absent, wrong or out of range.
std::optional<Duration> read_duration(TableReader& r, const char* key, const DurationRange& range) {
  auto text = r.string(key);
  if (!text) return std::nullopt;
  std::string error;
  auto d = parse_duration(*text, &error);
  if (!d) {
    r.error(key, "'" + std::string(key) + "': " + error);
  } else if (*d < range.min || *d > range.max) {
    r.error(key, "'" + std::string(key) + "' must be " + range.says);
    return std::nullopt;
  }
  return d;
}

// The keys of a `type = "http"` source.
void read_http_source(TableReader& r, const std::filesystem::path& base, Secrets secrets, SourceConfig& source) {
  source.url = r.string("url", true).value_or("");
  if (!source.url.empty() && source.url.rfind("http://", 0) != 0 && source.url.rfind("https://", 0) != 0)
    r.error("url", "'url' must start with http:// or https://");
  if (auto jitter = read_duration(r, "jitter", kJitter)) source.jitter = *jitter;
  if (auto timeout = read_duration(r, "timeout", kRequestTimeout)) source.timeout = *timeout;
  if (auto backoff = read_duration(r, "max_backoff", kMaxBackoff))
    source.max_backoff = std::max(*backoff, source.interval);
  if (auto max_response = r.integer("max_response")) {
    if (*max_response < 1024 || *max_response > (256 << 20))
      r.error("max_response", "'max_response' must be between 1024 and 268435456 bytes");
    else
      source.max_response = static_cast<std::size_t>(*max_response);
  }
  source.items = r.string("items").value_or("");
  if (!source.items.empty() && !is_pointer(source.items))
    r.error("items", "'" + source.items + "' is not a JSON pointer (like \"/orders\")");
  source.cursor_param = r.string("cursor_param").value_or("");
  source.cursor_field = r.string("cursor_field").value_or("");
  source.next_cursor = r.string("next_cursor").value_or("");
  source.cursor_start = r.string("cursor_start").value_or("");
  source.follow_links = r.boolean("follow_links").value_or(false);
  for (const char* key : {"cursor_field", "next_cursor"}) {
    const auto& value = std::string_view(key) == "cursor_field" ? source.cursor_field : source.next_cursor;
    if (!value.empty() && !is_pointer(value))
      r.error(key, "'" + value + "' is not a JSON pointer (like \"/updated_at\")");
  }
  if (!source.cursor_field.empty() && !source.next_cursor.empty())
    r.error("next_cursor", "give either 'cursor_field' (a cursor from the data) or 'next_cursor' (from the response)");
  if ((!source.cursor_field.empty() || !source.next_cursor.empty()) && source.cursor_param.empty())
    r.error("cursor_param", "a cursor needs 'cursor_param', the query parameter that carries it");
  if (!source.cursor_param.empty() && source.cursor_field.empty() && source.next_cursor.empty())
    r.error("cursor_param", "'cursor_param' needs 'cursor_field' or 'next_cursor' to say where the cursor comes from");
  if (const toml::table* headers = r.table("headers")) {
    TableReader h(*headers, r.file(), "[source.headers]", r.errors());
    for (const auto& [key, node] : *headers)
      if (auto value = h.string(key.str())) source.headers.emplace_back(std::string(key.str()), *value);
  }
  if (const toml::table* auth = r.table("auth")) {
    TableReader a(*auth, r.file(), "[source.auth]", r.errors());
    const auto type = a.string("type", true).value_or("");
    if (type == "bearer")
      source.auth.type = HttpAuth::Type::kBearer;
    else if (type == "basic")
      source.auth.type = HttpAuth::Type::kBasic;
    else if (type == "header")
      source.auth.type = HttpAuth::Type::kHeader;
    else if (!type.empty())
      a.error("type", "unknown auth type '" + type + "' (expected bearer, basic or header)");
    if (source.auth.type == HttpAuth::Type::kBasic) source.auth.username = a.string("username", true).value_or("");
    if (source.auth.type == HttpAuth::Type::kHeader) source.auth.header = a.string("header", true).value_or("");
    source.auth.secret = read_secret(a, "secret", base, secrets);
    if (source.auth.secret.empty() && source.auth.type != HttpAuth::Type::kNone)
      a.error("type", "[source.auth] needs its secret in 'secret_file' or 'secret_env'");
    a.finish();
  }
}

constexpr DurationRange kActionTimeout{seconds{1}, minutes{2}, "between 1s and 2m"};

// One [[action]] table, appended to config.actions when it is sound.
void read_action(const toml::table& table, const std::string& file, const std::filesystem::path& base, Secrets secrets,
                 Diagnostics& errors, Config& config) {
  const auto action_name = table["name"].value<std::string>();
  TableReader r(table, file, action_name ? "action '" + *action_name + "'" : "an [[action]]", errors);
  ActionConfig action;
  action.name = r.string("name", true).value_or("");
  if (action_name) {
    if (action.name.empty() ||
        action.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            std::string::npos)
      r.error("name", "an action's 'name' may only use letters, digits, '_' and '-', like \"voucher\"");
    if (config.action(action.name)) r.error("name", "action '" + action.name + "' is configured twice");
  }
  action.url = r.string("url", true).value_or("");
  if (!action.url.empty() && action.url.rfind("http://", 0) != 0 && action.url.rfind("https://", 0) != 0)
    r.error("url", "'url' must start with https:// (or http://)");
  const bool inline_secret = r.string("secret").has_value();
  if (inline_secret)
    r.error("secret",
            "the key stays out of the configuration: give it in 'secret_file', 'secret_env' or "
            "'secret_credential'");
  action.secret = read_secret(r, "secret", base, secrets);
  if (action.secret.empty() && !inline_secret)
    r.error("url",
            "an action is signed (X-Tactd-Signature): give its key in 'secret_file', 'secret_env' or "
            "'secret_credential'");
  if (auto v = r.integer("max_attempts")) {
    if (*v < 1 || *v > 20)
      r.error("max_attempts", "'max_attempts' must be between 1 and 20");
    else
      action.max_attempts = static_cast<int>(*v);
  }
  if (auto d = read_duration(r, "timeout", kActionTimeout)) action.timeout = *d;
  if (auto d = read_duration(r, "backoff", kBackoff)) action.backoff = *d;
  if (auto d = read_duration(r, "max_backoff", kMaxBackoff)) action.max_backoff = *d;
  r.finish();
  config.actions.push_back(std::move(action));
}

// One [[channel]] table, appended to config.channels when it is sound.
void read_channel(const toml::table& table, const std::string& file, const std::filesystem::path& base, Secrets secrets,
                  Diagnostics& errors, Config& config) {
  const auto channel_name = table["channel"].value<std::string>();
  TableReader r(table, file, channel_name ? "channel '" + *channel_name + "'" : "a [[channel]]", errors);
  ChannelConfig channel;
  if (auto text = r.string("channel", true)) {
    if (auto parsed = parse_channel(*text))
      channel.channel = *parsed;
    else
      r.error("channel", "unknown channel '" + *text + "' (expected email or sms)");
    for (const auto& other : config.channels)
      if (other.channel == channel.channel) r.error("channel", "channel '" + *text + "' is configured twice");
  }
  channel.provider = r.string("provider", true).value_or("");
  if (!channel.provider.empty() && !known_provider(channel.channel, channel.provider))
    r.error("provider", "unknown " + std::string(to_string(channel.channel)) + " provider '" + channel.provider +
                            "' (expected " + std::string(provider_list(channel.channel)) + ")");
  const bool needs_url = channel.provider == "mailgun" || channel.provider == "smtp" || channel.provider == "webhook";
  channel.url = r.string("url", needs_url).value_or("");
  if (channel.provider == "smtp") {
    if (!channel.url.empty() && channel.url.rfind("smtp://", 0) != 0 && channel.url.rfind("smtps://", 0) != 0)
      r.error("url", "an smtp 'url' is smtp://host:587 (STARTTLS) or smtps://host:465 (TLS)");
  } else if (!channel.url.empty() && channel.url.rfind("http://", 0) != 0 && channel.url.rfind("https://", 0) != 0) {
    r.error("url", "'url' must start with https:// (or http://)");
  }
  channel.from = r.string("from", channel.provider != "webhook").value_or("");
  if (channel.channel == Channel::kEmail && !channel.from.empty() && !parse_mailbox(channel.from))
    r.error("from", "'from' must be an email address, like \"Our shop <shop@example.com>\"");
  channel.account = r.string("account", channel.provider == "twilio").value_or("");
  channel.username = r.string("username").value_or("");
  channel.secret = read_secret(r, "secret", base, secrets);
  if (channel.secret.empty() && channel.provider != "webhook" &&
      !(channel.provider == "smtp" && channel.username.empty()))
    r.error("provider", "provider '" + channel.provider + "' needs its secret in 'secret_file' or 'secret_env'");
  if (auto ca = r.string("ca_file")) channel.ca_file = resolve(base, *ca);
  channel.require_tls = r.boolean("require_tls").value_or(true);
  auto positive = [&r](const char* key, long long max, auto& out) {
    if (auto v = r.integer(key)) {
      if (*v < 1 || *v > max)
        r.error(key, "'" + std::string(key) + "' must be between 1 and " + std::to_string(max));
      else
        out = static_cast<std::remove_reference_t<decltype(out)>>(*v);
    }
  };
  positive("concurrency", 256, channel.concurrency);
  positive("burst", 100000, channel.burst);
  positive("max_attempts", 100, channel.max_attempts);
  positive("max_segments", 10, channel.max_segments);
  if (auto rate = r.number("rate")) {
    if (*rate > 0 && *rate <= 100000)
      channel.rate = *rate;
    else
      r.error("rate", "'rate' must be a number of requests per second above 0 (and at most 100000)");
  }
  if (auto d = read_duration(r, "timeout", kRequestTimeout)) channel.timeout = *d;
  if (auto d = read_duration(r, "max_age", kMaxAge)) channel.max_age = *d;
  if (auto d = read_duration(r, "backoff", kBackoff)) channel.backoff = *d;
  if (auto d = read_duration(r, "max_backoff", kMaxBackoff)) channel.max_backoff = *d;
  channel.on_unknown = default_on_unknown(channel.provider);
  if (auto text = r.string("on_unknown")) {
    if (*text == "retry")
      channel.on_unknown = ChannelConfig::OnUnknown::kRetry;
    else if (*text == "hold")
      channel.on_unknown = ChannelConfig::OnUnknown::kHold;
    else
      r.error("on_unknown",
              "'on_unknown' must be \"retry\" (send a cut-off attempt again with the same "
              "idempotency key) or \"hold\" (keep it for an operator), not '" +
                  *text + "'");
  }
  r.finish();
  config.channels.push_back(std::move(channel));
}

// The [operators] table; after the channels, which its email goes through.
void read_operators(const toml::table& table, const std::string& file, const std::filesystem::path& base,
                    Secrets secrets, Diagnostics& errors, Config& config) {
  TableReader r(table, file, "[operators]", errors);
  OperatorsConfig operators;
  if (auto digest = read_duration(r, "digest", kDigest)) operators.digest = *digest;
  operators.email = r.string("email").value_or("");
  operators.webhook = r.string("webhook").value_or("");
  // A chat's webhook URL is often a secret of its own: it may come like one.
  if (std::string hidden = read_secret(r, "webhook", base, secrets); !hidden.empty()) {
    if (!operators.webhook.empty())
      r.error("webhook", "give 'webhook' or one of 'webhook_file', 'webhook_env' and 'webhook_credential', not both");
    operators.webhook = std::move(hidden);
  }
  if (operators.email.empty() == operators.webhook.empty())
    r.error(operators.email.empty() ? "digest" : "webhook",
            "[operators] needs one of 'email' (\"ops@shop.example\", sent over the email [[channel]]) and 'webhook' "
            "(a chat's incoming webhook URL)");
  if (!operators.email.empty()) {
    if (!parse_mailbox(operators.email))
      r.error("email", "'email' must be an email address, like \"ops@shop.example\"");
    else if (!config.channel(Channel::kEmail))
      r.error("email",
              "'email' is sent over the email [[channel]], and there is none; configure one or give a "
              "'webhook' instead");
  }
  if (!operators.webhook.empty() && operators.webhook != kUnreadSecret && operators.webhook.rfind("https://", 0) != 0 &&
      operators.webhook.rfind("http://", 0) != 0)
    r.error("webhook", "'webhook' must start with https:// (or http://)");
  operators.secret = read_secret(r, "secret", base, secrets);
  if (!operators.secret.empty() && !operators.email.empty())
    r.error("email", "a secret is for the webhook; the email goes over the email [[channel]] with its own");
  if (auto auth = r.string("auth")) {
    if (*auth == "bearer")
      operators.auth = OperatorsConfig::Auth::kBearer;
    else if (*auth != "hmac")
      r.error("auth", "'auth' must be \"hmac\" (X-Tactd-Signature) or \"bearer\" (Authorization: Bearer)");
    if (operators.secret.empty())
      r.error("auth", "'auth' needs the secret in 'secret_file', 'secret_env' or 'secret_credential'");
  }
  if (auto timeout = read_duration(r, "timeout", kOperatorsTimeout)) operators.timeout = *timeout;
  r.finish();
  config.operators = std::move(operators);
}

// The [inbound] table; after the channels, which a forwarded email goes through.
void read_inbound(const toml::table& table, const std::string& file, const std::filesystem::path& base, Secrets secrets,
                  Diagnostics& errors, Config& config) {
  TableReader r(table, file, "[inbound]", errors);
  InboundConfig inbound;
  read_listen(r, inbound.address, inbound.port);
  inbound.public_url = r.string("public_url").value_or("");
  while (!inbound.public_url.empty() && inbound.public_url.back() == '/') inbound.public_url.pop_back();
  inbound.twilio_token = read_secret(r, "twilio_token", base, secrets);
  inbound.messagebird_key = read_secret(r, "messagebird_key", base, secrets);
  inbound.hmac_secret = read_secret(r, "hmac_secret", base, secrets);
  if (inbound.twilio_token.empty() && inbound.messagebird_key.empty() && inbound.hmac_secret.empty())
    r.error("listen",
            "[inbound] needs at least one of 'twilio_token_*', 'messagebird_key_*' and 'hmac_secret_*' (each as "
            "_file, _env or _credential): the endpoint never accepts unauthenticated requests");
  if ((!inbound.twilio_token.empty() || !inbound.messagebird_key.empty()) &&
      inbound.public_url.rfind("https://", 0) != 0 && inbound.public_url.rfind("http://", 0) != 0)
    r.error("public_url",
            "'public_url' must be the https:// URL the provider posts to (\"https://shop.example/tactd\"): Twilio "
            "and MessageBird sign it");
  if (auto max_body = r.integer("max_body")) {
    if (*max_body < 1024 || *max_body > (16 << 20))
      r.error("max_body", "'max_body' must be between 1024 and 16777216 bytes");
    else
      inbound.max_body = static_cast<std::size_t>(*max_body);
  }
  if (auto skew = read_duration(r, "max_skew", kMaxSkew)) inbound.max_skew = *skew;
  if (auto pause = read_duration(r, "pause", kPause)) inbound.pause = *pause;
  inbound.forward_email = r.string("forward_email").value_or("");
  inbound.forward_webhook = r.string("forward_webhook").value_or("");
  if (!inbound.forward_email.empty() && !inbound.forward_webhook.empty())
    r.error("forward_webhook", "give one of 'forward_email' and 'forward_webhook', not both");
  if (!inbound.forward_email.empty()) {
    if (!parse_mailbox(inbound.forward_email))
      r.error("forward_email", "'forward_email' must be an email address, like \"support@shop.example\"");
    else if (!config.channel(Channel::kEmail))
      r.error("forward_email", "'forward_email' is sent over the email [[channel]], and there is none");
  }
  if (!inbound.forward_webhook.empty() && inbound.forward_webhook.rfind("https://", 0) != 0 &&
      inbound.forward_webhook.rfind("http://", 0) != 0)
    r.error("forward_webhook", "'forward_webhook' must start with https:// (or http://)");
  inbound.forward_secret = read_secret(r, "forward_secret", base, secrets);
  if (!inbound.forward_secret.empty() && inbound.forward_webhook.empty())
    r.error("forward_secret", "'forward_secret' signs the 'forward_webhook' posts; there is no forward_webhook");
  r.finish();
  config.inbound = std::move(inbound);
}

}  // namespace

std::shared_ptr<const Config> load_config(const std::filesystem::path& file, Diagnostics& errors, Secrets secrets) {
  const std::string name = file.string();
  const size_t errors_before = errors.size();
  if (!std::filesystem::is_regular_file(file)) {
    errors.push_back(Diagnostic{name, 0, 0, "cannot read the configuration file (no such file)"});
    return nullptr;
  }
  auto doc = parse_toml_file(name, errors);
  if (!doc) return nullptr;

  auto config = std::make_shared<Config>();
  config->file = file;
  const auto base = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();

  TableReader top(*doc, name, "the configuration", errors);
  if (const toml::table* section = top.table("tactd")) {
    TableReader r(*section, name, "[tactd]", errors);
    config->rules_dir = resolve(base, r.string("rules").value_or("rules"));
    config->templates_dir = resolve(base, r.string("templates").value_or("../templates"));
    const std::string state = r.string("state").value_or("tactd-state.db");
    if (is_postgres_url(state)) {
      if (url_has_password(state))
        r.error("state",
                "'state' must not hold the database's password; give it in [state] password_file, "
                "password_env or password_credential");
      config->state_url = state;
    } else {
      config->state_path = resolve(base, state);
    }
    config->merchant = r.string("merchant").value_or("");
    if (auto grace = read_duration(r, "stop_grace", kStopGrace)) config->stop_grace = *grace;
    if (auto sync = r.string("sync")) {
      if (*sync == "full" || *sync == "normal")
        config->full_sync = *sync == "full";
      else
        r.error("sync",
                "'sync' must be \"full\" (commits survive a power cut) or \"normal\" (a killed process "
                "only), not '" +
                    *sync + "'");
    }
    if (auto tone = r.string("tone")) {
      config->tone_path = resolve(base, *tone);
      if (!std::filesystem::is_regular_file(config->tone_path))
        r.error("tone", "'tone' names '" + config->tone_path.string() + "', which is not a file");
    }
    auto require_folder = [&r](const char* key, const std::filesystem::path& dir) {
      if (!std::filesystem::is_directory(dir))
        r.error(key, "'" + std::string(key) + "' names '" + dir.string() + "', which is not a folder");
    };
    require_folder("rules", config->rules_dir);
    require_folder("templates", config->templates_dir);
    r.finish();
  } else {
    top.error("tactd", "the configuration needs a [tactd] table with at least 'rules' and 'templates'");
  }
  if (const toml::table* section = top.table("state")) {
    TableReader r(*section, name, "[state]", errors);
    if (!config->state_url.empty() || (doc->contains("tactd") && (*doc)["tactd"]["state"]))
      r.error("url", "the state is named twice: give either [tactd] state or [state] url");
    if (auto url = r.string("url")) {
      if (!is_postgres_url(*url))
        r.error("url",
                "'url' must be a PostgreSQL URL (postgresql://user@host:5432/database); for a SQLite file use "
                "[tactd] state");
      else if (url_has_password(*url))
        r.error("url", "'url' must not hold the password; give password_file, password_env or password_credential");
      else
        config->state_url = *url;
    } else {
      r.error("url", "[state] needs 'url', the PostgreSQL database (postgresql://user@host:5432/database)");
    }
    config->state_password = read_secret(r, "password", base, Secrets::kRead);
    r.finish();
  }
  if (const toml::table* section = top.table("locale")) {
    TableReader r(*section, name, "[locale]", errors);
    if (auto v = r.strings("supported")) {
      if (v->empty()) r.error("supported", "'supported' must name at least one locale, like [\"en\"]");
      config->locales = *v;
    }
    if (auto v = r.string("default")) {
      config->default_locale = *v;
      if (std::find(config->locales.begin(), config->locales.end(), *v) == config->locales.end())
        r.error("default", "the default locale '" + *v + "' is not in 'supported'");
    }
    if (auto v = r.string("time_zone")) {
      config->default_time_zone = *v;
      if (!is_known_time_zone(*v))
        r.error("time_zone", "'" + *v + "' is not an IANA time zone (like \"Europe/Amsterdam\" or \"UTC\")");
    }
    r.finish();
  }
  if (const toml::table* section = top.table("policy")) {
    TableReader r(*section, name, "[policy]", errors);
    if (auto v = r.integer("max_per_customer_per_day")) {
      if (*v < 1 || *v > kMaxDailyCap)
        r.error("max_per_customer_per_day",
                "'max_per_customer_per_day' must be between 1 and " + std::to_string(kMaxDailyCap));
      else
        config->max_per_customer_per_day = static_cast<int>(*v);
    }
    if (auto wait = read_duration(r, "wait_for_links", kWaitForLinks)) config->wait_for_links = *wait;
    r.finish();
  }
  if (const toml::table* section = top.table("quiet_hours")) {
    TableReader r(*section, name, "[quiet_hours]", errors);
    Config::QuietHours quiet;
    auto read_time = [&r](const char* key, int& out) {
      auto text = r.string(key, true);
      if (!text) return;
      if (auto minute = minute_of_day(*text))
        out = *minute;
      else
        r.error(key, "'" + std::string(key) + "' must be a time of day like \"21:00\", not '" + *text + "'");
    };
    read_time("start", quiet.start);
    read_time("end", quiet.end);
    if (quiet.start == quiet.end) r.error("end", "quiet hours that end when they start would never end");
    config->quiet_hours = quiet;
    r.finish();
  }
  if (const toml::table* section = top.table("timers")) {
    TableReader r(*section, name, "[timers]", errors);
    if (auto grace = read_duration(r, "grace", kTimerGrace)) config->timer_grace = *grace;
    r.finish();
  }
  if (const toml::table* section = top.table("cluster")) {
    TableReader r(*section, name, "[cluster]", errors);
    if (auto lease = read_duration(r, "lease", kClusterLease)) config->cluster_lease = *lease;
    r.finish();
  }
  if (const toml::array* sources = top.tables("source")) {
    for (const auto& node : *sources) {
      const toml::table& table = *node.as_table();
      const auto source_name = table["name"].value<std::string>();
      TableReader r(table, name, source_name ? "source '" + *source_name + "'" : "a [[source]]", errors);
      SourceConfig source;
      source.name = r.string("name", true).value_or("");
      for (const auto& other : config->sources)
        if (!source.name.empty() && other.name == source.name)
          r.error("name", "source name '" + source.name + "' is used twice");
      source.type = r.string("type", true).value_or("");
      if (!source.type.empty() && source.type != "spool" && source.type != "sqlite" && source.type != "http")
        r.error("type", "unknown source type '" + source.type + "' (expected spool, sqlite or http)");
      if (source.type != "http")
        if (auto path = r.string("path", true)) source.path = resolve(base, *path);
      if (auto interval = read_duration(r, "interval", kSourceInterval)) source.interval = *interval;
      if (source.type == "sqlite") {
        source.query = r.string("query", true).value_or("");
        if (!source.query.empty() && source.query.find(":cursor") == std::string::npos)
          r.error("query",
                  "the query must read rows after ':cursor', like \"... WHERE updated_at > :cursor ORDER BY "
                  "updated_at\"");
        source.cursor_column = r.string("cursor_column", true).value_or("");
        source.cursor_start = r.string("cursor_start").value_or("");
      }
      source.partial = r.boolean("partial").value_or(true);
      if (source.type == "http") read_http_source(r, base, secrets, source);
      if (source.type == "sqlite" || source.type == "http") {
        if (table["mapping"].is_array()) {
          if (const toml::array* many = r.tables("mapping"))
            for (const auto& mapping : *many)
              source.mappings.push_back(read_mapping(*mapping.as_table(), name, errors));
        } else if (const toml::table* one = r.table("mapping")) {
          source.mappings.push_back(read_mapping(*one, name, errors));
        }
        if (source.mappings.empty())
          r.error("name",
                  "source '" + source.name + "' needs a [source.mapping] table (or several [[source.mapping]])");
      }
      r.finish();
      config->sources.push_back(std::move(source));
    }
  }
  if (const toml::table* section = top.table("push")) {
    TableReader r(*section, name, "[push]", errors);
    PushConfig push;
    read_listen(r, push.address, push.port);
    push.token = read_secret(r, "token", base, secrets);
    push.hmac_secret = read_secret(r, "hmac_secret", base, secrets);
    if (push.token.empty() && push.hmac_secret.empty() && errors.size() == errors_before)
      top.error("push",
                "[push] needs a token (token_file or token_env) or an HMAC secret (hmac_secret_file or "
                "hmac_secret_env): the endpoint never accepts unauthenticated requests");
    if (auto max_body = r.integer("max_body")) {
      if (*max_body < 1024 || *max_body > (256 << 20))
        r.error("max_body", "'max_body' must be between 1024 and 268435456 bytes");
      else
        push.max_body = static_cast<std::size_t>(*max_body);
    }
    if (auto held = r.integer("max_held_bytes")) {
      if (*held < (64 << 10) || *held > (1LL << 30))
        r.error("max_held_bytes", "'max_held_bytes' must be between 65536 and 1073741824 bytes");
      else
        push.max_held_bytes = static_cast<std::size_t>(*held);
    }
    push.partial = r.boolean("partial").value_or(true);
    if (auto skew = read_duration(r, "max_skew", kMaxSkew)) push.max_skew = *skew;
    r.finish();
    config->push = std::move(push);
  }
  if (const toml::table* section = top.table("admin")) {
    TableReader r(*section, name, "[admin]", errors);
    AdminConfig admin;
    read_listen(r, admin.address, admin.port);
    admin.token = read_secret(r, "token", base, secrets);
    r.finish();
    config->admin = admin;
  }
  if (const toml::table* section = top.table("log")) {
    TableReader r(*section, name, "[log]", errors);
    if (auto level = r.string("level")) {
      static constexpr std::array<std::string_view, 5> kLevels{"trace", "debug", "info", "warn", "error"};
      if (std::find(kLevels.begin(), kLevels.end(), *level) == kLevels.end())
        r.error("level", "'level' must be one of trace, debug, info, warn, error; not '" + *level + "'");
      else
        config->log_level = *level;
    }
    r.finish();
  }
  if (const toml::array* channels = top.tables("channel"))
    for (const auto& node : *channels) read_channel(*node.as_table(), name, base, secrets, errors, *config);
  if (const toml::table* section = top.table("operators"))
    read_operators(*section, name, base, secrets, errors, *config);
  if (const toml::table* section = top.table("inbound")) read_inbound(*section, name, base, secrets, errors, *config);
  if (const toml::array* actions = top.tables("action"))
    for (const auto& node : *actions) read_action(*node.as_table(), name, base, secrets, errors, *config);
  top.finish();
  if (errors.size() != errors_before) return nullptr;
  return config;
}

const ChannelConfig* Config::channel(Channel wanted) const {
  for (const auto& c : channels)
    if (c.channel == wanted) return &c;
  return nullptr;
}

const ActionConfig* Config::action(std::string_view name) const {
  for (const auto& a : actions)
    if (a.name == name) return &a;
  return nullptr;
}

bool known_provider(Channel channel, std::string_view provider) {
  if (provider == "webhook") return true;
  if (channel == Channel::kEmail) return provider == "sendgrid" || provider == "mailgun" || provider == "smtp";
  return provider == "twilio" || provider == "messagebird";
}

ChannelConfig::OnUnknown default_on_unknown(std::string_view provider) {
  return provider == "webhook" ? ChannelConfig::OnUnknown::kRetry : ChannelConfig::OnUnknown::kHold;
}

std::string_view to_string(ChannelConfig::OnUnknown on_unknown) {
  return on_unknown == ChannelConfig::OnUnknown::kRetry ? "retry" : "hold";
}

std::string_view provider_list(Channel channel) {
  return channel == Channel::kEmail ? "sendgrid, mailgun, smtp, webhook" : "twilio, messagebird, webhook";
}

}  // namespace tactd
