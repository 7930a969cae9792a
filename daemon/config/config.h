// The daemon's configuration: `tactd.toml` read into an immutable value.
//
//   [tactd]
//   rules     = "rules"              # folder of rule files, relative to this file
//   templates = "../templates"       # folder of templates, relative to this file
//   state     = "/var/lib/tactd/state.db"
//   merchant  = "Our shop"           # signs messages whose entity names no merchant
//   tone      = "tone.toml"          # the tone check of `tactd check`; optional
//   stop_grace = "10s"               # a stop waits this long for deliveries in flight
//   sync      = "full"               # commits survive power loss; "normal": a killed process only
//
//   [locale]
//   default   = "en"                 # for customers without a supported locale
//   supported = ["en", "nl"]         # every rule needs templates in each
//   time_zone = "Europe/Amsterdam"   # for customers without a time zone
//
//   [policy]
//   max_per_customer_per_day = 3     # across all rules, rolling 24 hours
//   wait_for_links = "1h"            # for a customer or order not seen yet
//
//   [quiet_hours]                    # in the customer's time zone; leave out for none
//   start = "21:00"
//   end   = "08:00"
//
//   [timers]
//   grace = "6h"                     # a timer found overdue by more than this is skipped
//
//   [cluster]                        # replicas on one PostgreSQL (docs/scale-out.md)
//   lease = "15s"                    # a dead replica's shards go to others within this
//
//   [[source]]                       # where `tactd run` finds observations
//   name     = "shop-drops"
//   type     = "spool"               # a folder of JSONL files
//   path     = "/var/spool/tactd"
//   interval = "5s"
//
//   [[source]]
//   name          = "shop-db"
//   type          = "sqlite"         # rows of a shop's own database
//   path          = "/var/lib/shop/shop.db"
//   query         = "SELECT ... WHERE updated_at > :cursor ORDER BY updated_at LIMIT 500"
//   cursor_column = "updated_at"
//   [source.mapping]                 # JSON pointers into each row
//   type = "order"
//   id   = "/id"
//   [source.mapping.fields]
//   status = "/state"
//   [source.mapping.values.status]   # foreign value -> canonical, "*" default
//   paid = "confirmed"
//
//   [[source]]
//   name         = "webshop"
//   type         = "http"            # a JSON API, polled
//   url          = "https://shop.example/admin/api/2024-10/orders.json?limit=250"
//   interval     = "1m"
//   jitter       = "10s"
//   items        = "/orders"         # JSON pointer to the array of records
//   cursor_param = "updated_at_min"  # with cursor_field (from the data) or next_cursor (from the response)
//   cursor_field = "/updated_at"
//   follow_links = true              # Link: <...>; rel="next"
//   [source.auth]
//   type        = "header"           # bearer, basic or header
//   header      = "X-Shopify-Access-Token"
//   secret_file = "/run/credentials/tactd.service/shop-token"   # or secret_env
//   [[source.mapping]] ...           # one or more, as above
//
//   [admin]                          # GET /healthz, /readyz, /metrics (open) and /v1/... (token)
//   listen = "127.0.0.1:9425"
//   token_credential = "admin-token"  # Authorization: Bearer; or token_file, token_env
//
//   [log]
//   level = "info"                   # trace, debug, info, warn, error; a reload applies it
//
//   [operators]                      # what needs a person, batched
//   digest  = "15m"                  # at most one digest per this long; at least 1s
//   email   = "ops@shop.example"     # over the email [[channel]]; or:
//   webhook = "https://chat.example/hooks/..."   # POST {"text": "..."}
//   secret_credential = "tactd_ops-hook"         # webhook: optional, or secret_file, secret_env
//   auth    = "hmac"                 # webhook: "hmac" (X-Tactd-Signature) or "bearer"
//
//   [push]                           # POST /v1/observations
//   listen          = "127.0.0.1:8425"
//   token_file      = "/run/credentials/tactd.service/push-token"   # or token_env
//   hmac_secret_env = "TACTD_PUSH_SECRET"                           # or hmac_secret_file
//   max_body        = 1048576
//   max_held_bytes  = 2097152        # bodies held at once; more get 503 with Retry-After
//   max_skew        = "5m"
//
//   [inbound]                        # replies: POST /v1/inbound/{twilio,messagebird,sms,email}
//   listen     = "127.0.0.1:8426"
//   public_url = "https://shop.example/tactd"    # what providers post to, as they sign it
//   twilio_token_credential = "twilio-token"     # X-Twilio-Signature; or _file, _env
//   messagebird_key_file    = "messagebird-key"  # MessageBird-Signature-JWT
//   hmac_secret_env         = "TACTD_INBOUND_SECRET"   # X-Tactd-Signature (sms, email)
//   pause      = "48h"                # automated messages about the entity wait this long after a reply
//   forward_email   = "support@shop.example"     # over the email [[channel]]; or:
//   forward_webhook = "https://desk.example/hooks/tactd"
//   forward_secret_file = "desk-secret"          # forward_webhook: X-Tactd-Signature
//
//   [[action]]                       # taken before a rule's message is sent
//   name        = "voucher"          # rules say action = "voucher"
//   url         = "https://shop.example/api/vouchers"
//   secret_file = "voucher-secret"   # X-Tactd-Signature; or secret_env, secret_credential
//   timeout     = "5s"
//   max_attempts = 3
//
// The full reference is docs/configuration.md; replies: docs/replies.md;
// actions: docs/actions.md.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/diagnostic.h"
#include "model/entity.h"
#include "model/notification.h"
#include "model/time.h"

namespace tactd {

// How a foreign record (a database row, an API item: a JSON object) becomes
// a canonical observation. Paths are JSON pointers into the record.
struct Mapping {
  EntityType type = EntityType::kOrder;
  std::string id;           // e.g. "/id"
  std::string observed_at;  // empty: the time the record was read
  struct Field {
    std::string name;  // canonical field, e.g. "status"
    // e.g. "/fulfillment/status"; with several, the first that finds a
    // non-null value is taken.
    std::vector<std::string> pointers;
    // Foreign value (as text) -> canonical value; "*" is the default. Empty:
    // the value is taken as it is.
    std::map<std::string, nlohmann::json, std::less<>> values;
    bool operator==(const Field&) const = default;
  };
  std::vector<Field> fields;
  bool operator==(const Mapping&) const = default;
};

// Credentials an HTTP source sends. The secret is never logged.
struct HttpAuth {
  enum class Type { kNone, kBearer, kBasic, kHeader } type = Type::kNone;
  std::string username;  // basic
  std::string header;    // header: its name, e.g. "X-Shopify-Access-Token"
  std::string secret;    // the token, password or header value
  bool operator==(const HttpAuth&) const = default;
};

// One place `tactd run` reads observations from.
struct SourceConfig {
  std::string name;
  std::string type;            // "spool", "sqlite" or "http"
  std::filesystem::path path;  // spool: the folder; sqlite: the database file
  Duration interval = std::chrono::seconds{5};
  // sqlite: a query that reads rows changed after `:cursor`, in cursor order.
  std::string query;
  std::string cursor_column;
  std::string cursor_start;  // the cursor before the first row or page
  // Each record becomes one observation per mapping (an order and its
  // customer, say). Required for sqlite and http.
  std::vector<Mapping> mappings;
  // Whether its observations are partial updates (fields left out keep their
  // value) or full snapshots (fields left out are cleared), unless an
  // observation says itself (`"partial"` in spool JSON).
  bool partial = true;

  // http: a JSON API polled every interval plus up to `jitter`.
  std::string url;
  Duration jitter{};
  Duration timeout = std::chrono::seconds{30};
  Duration max_backoff = std::chrono::minutes{15};  // the longest wait after failures
  std::size_t max_response = 4 << 20;               // http: bytes of one answer; a larger one fails the poll
  std::vector<std::pair<std::string, std::string>> headers;
  HttpAuth auth;
  std::string items;          // JSON pointer to the array of records; "" is the whole body
  std::string cursor_param;   // the query parameter that carries the cursor
  std::string cursor_field;   // data cursor: pointer into each record; the highest seen
  std::string next_cursor;    // response cursor: pointer into the response body
  bool follow_links = false;  // page through `Link: <...>; rel="next"`

  bool operator==(const SourceConfig&) const = default;  // a reload restarts a changed source
};

// How `tactd run` delivers one channel's notifications: through a
// provider's HTTP API, over SMTP, or to a generic webhook.
struct ChannelConfig {
  Channel channel = Channel::kEmail;
  // email: "sendgrid" (JSON mail-send), "mailgun" (form-encoded), "smtp" or
  // "webhook"; sms: "twilio" (form-encoded), "messagebird" (JSON) or "webhook".
  std::string provider;
  // The endpoint. smtp: "smtp://host:587" (STARTTLS) or "smtps://host:465".
  std::string url;
  std::string from;      // email: "Our shop <shop@example.com>"; sms: sender number or name
  std::string account;   // twilio: the account SID (basic-auth user)
  std::string username;  // smtp: the login; empty: no authentication
  // The API key, auth token, SMTP password or webhook HMAC key. Never logged.
  std::string secret;
  std::filesystem::path ca_file;  // extra CA certificates to trust; empty: the system's
  bool require_tls = true;        // smtp:// must upgrade with STARTTLS

  int concurrency = 4;                           // requests in flight at once
  double rate = 10;                              // requests per second, on average
  int burst = 10;                                // requests at once after a quiet spell
  Duration timeout = std::chrono::seconds{10};   // one attempt
  int max_attempts = 8;                          // then the dead letter
  Duration max_age = std::chrono::hours{24};     // after its due time; then the dead letter
  Duration backoff = std::chrono::seconds{2};    // the first retry's ceiling; doubles
  Duration max_backoff = std::chrono::hours{1};  // the ceiling of the ceilings
  int max_segments = 3;                          // sms: longer messages are refused
  // An attempt cut off by a crash or a stop (its outcome unknown): kRetry
  // sends it again with the same idempotency key, for a provider that
  // deduplicates on it; kHold sets it aside as "unknown" for an operator to
  // resolve. Default: default_on_unknown(provider).
  enum class OnUnknown { kRetry, kHold } on_unknown = OnUnknown::kHold;

  bool operator==(const ChannelConfig&) const = default;  // a reload replaces a changed channel
};

// Whether `provider` is a provider of `channel`: email: sendgrid, mailgun,
// smtp, webhook; sms: twilio, messagebird, webhook.
bool known_provider(Channel channel, std::string_view provider);
// What a send cut off does by default on `provider`: kRetry for "webhook"
// (the receiver is asked to deduplicate on the Idempotency-Key), kHold for
// the providers that do not deduplicate (sendgrid, mailgun, smtp, twilio,
// messagebird).
ChannelConfig::OnUnknown default_on_unknown(std::string_view provider);
std::string_view to_string(ChannelConfig::OnUnknown on_unknown);
// Those names for messages: "sendgrid, mailgun, smtp, webhook".
std::string_view provider_list(Channel channel);

// The push endpoint of `tactd run` (POST /v1/observations).
struct PushConfig {
  std::string address = "127.0.0.1";
  unsigned short port = 8425;
  std::string token;        // Bearer token; empty: not accepted. Never logged.
  std::string hmac_secret;  // HMAC-SHA256 key; empty: not accepted. Never logged.
  std::size_t max_body = 1 << 20;
  // Bodies held in memory at once: being read (by their Content-Length) and
  // waiting for their group's commit. 2 MiB: two bodies of the default
  // max_body. The latency bench's burst peaked at 32.7 MB resident with
  // 4 MiB, 30.1 MB with 2 MiB, 29.8 MB with 1 MiB, against the 30 MB the
  // daemon is to keep to (docs/performance.md, Memory).
  std::size_t max_held_bytes = 2 << 20;
  Duration max_skew = std::chrono::minutes{5};  // signed requests older or newer are refused
  bool partial = true;                          // like SourceConfig::partial, for pushed observations

  bool operator==(const PushConfig&) const = default;
};

// Replies (`tactd run`): the inbound endpoint, where providers and inbound
// email services post what customers send back. Only with an [inbound] table.
struct InboundConfig {
  std::string address = "127.0.0.1";
  unsigned short port = 8426;
  // The base URL the providers post to (behind a proxy, not tactd's own):
  // the request's target is appended to it for the signatures that cover
  // the URL (Twilio, MessageBird). No trailing '/'.
  std::string public_url;
  std::string twilio_token;     // Twilio's auth token; empty: /v1/inbound/twilio refused. Never logged.
  std::string messagebird_key;  // MessageBird's signing key; empty: refused. Never logged.
  std::string hmac_secret;      // the generic webhooks' HMAC-SHA256 key; empty: refused. Never logged.
  std::size_t max_body = 256 << 10;
  Duration max_skew = std::chrono::minutes{5};  // signed requests older or newer are refused
  // After a reply other than STOP, automated messages about the entity it
  // answers wait this long (a person is talking now). Zero: no pause.
  Duration pause = std::chrono::hours{48};
  // Where replies are forwarded with the conversation so far: an email
  // address (over the email [[channel]]) or a webhook (JSON, signed with
  // `forward_secret` when given). Neither: replies are only recorded.
  std::string forward_email;
  std::string forward_webhook;
  std::string forward_secret;  // never logged

  bool operator==(const InboundConfig&) const = default;
};

// The admin endpoint of `tactd run`: GET /healthz, /readyz and /metrics, and
// the /v1/ routes for holders of `token`. Served only when the configuration
// has an [admin] table.
struct AdminConfig {
  std::string address = "127.0.0.1";
  unsigned short port = 9425;
  std::string token;  // Bearer token of the /v1/ routes; empty: they answer 403. Never logged.
  bool operator==(const AdminConfig&) const = default;
};

// The operators' channel of `tactd run`: what needs a person (a message
// that could not be sent, a dead letter) goes out batched, at most one
// digest per `digest`, to `email` over the email [[channel]] or to a chat
// `webhook`. Only when the configuration has an [operators] table.
struct OperatorsConfig {
  Duration digest = std::chrono::minutes{15};
  std::string email;  // "ops@shop.example"; or
  // "https://chat.example/hooks/...", given {"text": "..."}; from `webhook`
  // or, since such a URL is often a secret itself, webhook_file, _env or
  // _credential. Never logged.
  std::string webhook;
  // webhook: the HMAC-SHA256 key (auth kHmac: X-Tactd-Timestamp and
  // X-Tactd-Signature, as [[channel]] webhooks sign) or the bearer token
  // (kBearer: Authorization: Bearer); empty: neither. Never logged.
  std::string secret;
  enum class Auth { kHmac, kBearer } auth = Auth::kHmac;
  Duration timeout = std::chrono::seconds{10};  // one webhook post

  bool operator==(const OperatorsConfig&) const = default;
};

// An action a rule takes before its message is sent ([[action]]): a POST of
// the entity's fields to the shop's API (a voucher, a refund), HMAC-signed
// like the webhooks, whose JSON answer the template shows as {{action.*}}.
// docs/actions.md.
struct ActionConfig {
  std::string name;  // what rules name in `action = "..."`
  std::string url;   // https:// (or http://)
  // The HMAC-SHA256 key of X-Tactd-Signature, from secret_file, _env or
  // _credential. Never logged.
  std::string secret;
  Duration timeout = std::chrono::seconds{5};      // one attempt
  int max_attempts = 3;                            // then the message goes without
  Duration backoff = std::chrono::seconds{2};      // the first retry's ceiling; doubles
  Duration max_backoff = std::chrono::minutes{5};  // the ceiling of the ceilings

  bool operator==(const ActionConfig&) const = default;
};

struct Config {
  std::filesystem::path file;  // the tactd.toml it was read from
  std::filesystem::path rules_dir;
  std::filesystem::path templates_dir;
  std::filesystem::path state_path;  // the SQLite file, when state_url is empty
  // The state in PostgreSQL instead ([tactd] state = "postgresql://..." or
  // "postgres://...", or [state] url): a libpq URL without its password.
  // Empty: SQLite at state_path. Logged only masked (store/pg_store.h
  // masked_conninfo()).
  std::string state_url;
  // [state] password_file, _env or _credential: read even when the other
  // secrets are skipped (every verb that opens the state needs it). Never
  // logged.
  std::string state_password;
  std::filesystem::path tone_path;  // empty: no tone check
  std::string merchant;

  std::string default_locale = "en";
  std::vector<std::string> locales{"en", "nl"};
  std::string default_time_zone = "UTC";

  int max_per_customer_per_day = 3;
  // How long a message whose linked entity (the order of a shipment, the
  // customer of an order) or whose customer's address is not known yet
  // waits for it before it is given up and operators are told.
  Duration wait_for_links = std::chrono::hours{1};

  // Non-urgent messages are held from start to end (minutes after local
  // midnight; start > end wraps past midnight). Unset: no quiet hours.
  struct QuietHours {
    int start = 21 * 60;
    int end = 8 * 60;
  };
  std::optional<QuietHours> quiet_hours;

  // How late a timer may still fire, e.g. after a restart.
  Duration timer_grace = std::chrono::hours{6};

  // [cluster] lease: how long a replica's shard and source leases last
  // unrenewed (renewed every third of it).
  Duration cluster_lease = std::chrono::seconds{15};

  // `tactd run`: how long a stop waits for deliveries in flight.
  Duration stop_grace = std::chrono::seconds{10};
  // [tactd] sync: whether a commit is synced to disk before it counts
  // ("full", true), or may be lost to a power cut ("normal", false).
  bool full_sync = true;
  std::string log_level = "info";  // trace, debug, info, warn or error

  std::vector<SourceConfig> sources;
  std::optional<PushConfig> push;
  std::optional<AdminConfig> admin;
  std::vector<ChannelConfig> channels;  // at most one per Channel
  std::optional<OperatorsConfig> operators;
  std::optional<InboundConfig> inbound;
  std::vector<ActionConfig> actions;  // names unique

  // The channel configured for `channel`, or nullptr.
  const ChannelConfig* channel(Channel channel) const;
  // The [[action]] named `name`, or nullptr.
  const ActionConfig* action(std::string_view name) const;
};

// Whether load_config reads the secrets' files and environment variables.
// Commands that send nothing (`tactd outbox`) skip them, so that operators
// need not hold the daemon's credentials: each configured secret is then
// kUnreadSecret.
enum class Secrets { kRead, kSkip };
inline constexpr std::string_view kUnreadSecret = "(not read)";

// Reads and validates `file`. Relative folders are resolved against the
// file's folder. Returns nullptr when anything is wrong, with every problem
// appended to `errors` as "file:line:column: what".
std::shared_ptr<const Config> load_config(const std::filesystem::path& file, Diagnostics& errors,
                                          Secrets secrets = Secrets::kRead);

}  // namespace tactd
