#include "config/config.h"

#include <catch2/catch.hpp>

#include "support/temp_dir.h"

using namespace tactd;
using tactd::test::TempDir;

namespace {

// A config folder with rules/ and templates/ next to tactd.toml.
std::filesystem::path write_config(const TempDir& dir, const std::string& text) {
  std::filesystem::create_directories(dir.path() / "rules");
  std::filesystem::create_directories(dir.path() / "templates");
  return dir.write("tactd.toml", text);
}

std::string all(const Diagnostics& errors) {
  std::string out;
  for (const auto& e : errors) out += e.str() + "\n";
  return out;
}

}  // namespace

TEST_CASE("a valid configuration loads with folders resolved against its file") {
  TempDir dir;
  const auto file = write_config(dir, R"(
[tactd]
rules = "rules"
templates = "templates"
merchant = "Trattoria"

[locale]
default = "nl"
supported = ["nl", "en"]
time_zone = "Europe/Amsterdam"

[policy]
max_per_customer_per_day = 5
)");
  Diagnostics errors;
  auto config = load_config(file, errors);
  INFO(all(errors));
  REQUIRE(config);
  CHECK(config->rules_dir == dir.path() / "rules");
  CHECK(config->templates_dir == dir.path() / "templates");
  CHECK(config->merchant == "Trattoria");
  CHECK(config->default_locale == "nl");
  CHECK(config->locales == std::vector<std::string>{"nl", "en"});
  CHECK(config->default_time_zone == "Europe/Amsterdam");
  CHECK(config->max_per_customer_per_day == 5);
}

TEST_CASE("the shipped configuration is valid") {
  Diagnostics errors;
  auto config = load_config(test::source_dir() / "config/tactd.toml", errors);
  INFO(all(errors));
  CHECK(config);
}

TEST_CASE("a missing configuration file is reported") {
  TempDir dir;
  Diagnostics errors;
  CHECK_FALSE(load_config(dir.path() / "nope.toml", errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == "cannot read the configuration file (no such file)");
}

TEST_CASE("a TOML syntax error names file, line and column") {
  TempDir dir;
  const auto file = write_config(dir, "[tactd]\nrules = \"rules\"\ntemplates = \n");
  Diagnostics errors;
  CHECK_FALSE(load_config(file, errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == file.string());
  CHECK(errors[0].line == 3);
  CHECK(errors[0].column > 0);
}

TEST_CASE("configuration mistakes are each reported where they are") {
  TempDir dir;
  const auto file = write_config(dir, R"([tactd]
rules = "rules"
templates = "missing-folder"
merchnt = "typo"

[locale]
default = "de"
supported = ["en", "nl"]
time_zone = "Europe/Atlantis"

[policy]
max_per_customer_per_day = 0
)");
  Diagnostics errors;
  CHECK_FALSE(load_config(file, errors));
  const std::string text = all(errors);
  const std::string f = file.string();
  CHECK_THAT(text, Catch::Contains(f + ":3:13: 'templates' names '" + (dir.path() / "missing-folder").string() +
                                   "', which is not a folder"));
  CHECK_THAT(text, Catch::Contains(f + ":4:11: unknown key 'merchnt' in [tactd]"));
  CHECK_THAT(text, Catch::Contains(f + ":7:11: the default locale 'de' is not in 'supported'"));
  CHECK_THAT(text, Catch::Contains(
                       f + ":9:13: 'Europe/Atlantis' is not an IANA time zone (like \"Europe/Amsterdam\" or \"UTC\")"));
  CHECK_THAT(text, Catch::Contains(f + ":12:28: 'max_per_customer_per_day' must be between 1 and 1000"));
  CHECK(errors.size() == 5);
}

TEST_CASE("a value of the wrong type says what it should be") {
  TempDir dir;
  const auto file = write_config(dir, "[tactd]\nrules = 3\n[locale]\nsupported = \"en\"\n");
  Diagnostics errors;
  CHECK_FALSE(load_config(file, errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains(":2:9: 'rules' must be a string, not an integer"));
  CHECK_THAT(text, Catch::Contains(":4:13: 'supported' must be a list of strings, like [\"a\", \"b\"]"));
}

TEST_CASE("quiet hours and the timer grace are read, and mistakes reported") {
  TempDir dir;
  Diagnostics errors;
  auto config = load_config(write_config(dir,
                                         "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                         "[quiet_hours]\nstart = \"22:30\"\nend = \"07:15\"\n"
                                         "[timers]\ngrace = \"2h\"\n"),
                            errors);
  INFO(all(errors));
  REQUIRE(config);
  REQUIRE(config->quiet_hours);
  CHECK(config->quiet_hours->start == 22 * 60 + 30);
  CHECK(config->quiet_hours->end == 7 * 60 + 15);
  CHECK(config->timer_grace == std::chrono::hours{2});

  TempDir bad;
  const auto file = write_config(bad,
                                 "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                 "[quiet_hours]\nstart = \"9pm\"\nend = \"24:00\"\n[timers]\ngrace = \"soon\"\n");
  errors.clear();
  CHECK_FALSE(load_config(file, errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains(":5:9: 'start' must be a time of day like \"21:00\", not '9pm'"));
  CHECK_THAT(text, Catch::Contains(":6:7: 'end' must be a time of day like \"21:00\", not '24:00'"));
  CHECK_THAT(text, Catch::Contains(":8:9: 'grace': 'soon' is not a duration"));

  TempDir empty;
  errors.clear();
  CHECK_FALSE(load_config(write_config(empty,
                                       "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                       "[quiet_hours]\nstart = \"08:00\"\nend = \"08:00\"\n"),
                          errors));
  CHECK_THAT(all(errors), Catch::Contains("quiet hours that end when they start would never end"));
}

TEST_CASE("sources are read with their folder resolved, and their mistakes reported") {
  TempDir dir;
  Diagnostics errors;
  auto config = load_config(write_config(dir,
                                         "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                         "[[source]]\nname = \"drops\"\ntype = \"spool\"\npath = \"spool\"\n"
                                         "interval = \"2s\"\n"),
                            errors);
  INFO(all(errors));
  REQUIRE(config);
  REQUIRE(config->sources.size() == 1);
  CHECK(config->sources[0].name == "drops");
  CHECK(config->sources[0].type == "spool");
  CHECK(config->sources[0].path == dir.path() / "spool");
  CHECK(config->sources[0].interval == std::chrono::seconds{2});

  TempDir bad;
  errors.clear();
  CHECK_FALSE(load_config(write_config(bad,
                                       "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                       "[[source]]\nname = \"a\"\ntype = \"ftp\"\npath = \"x\"\n"
                                       "[[source]]\nname = \"a\"\ntype = \"spool\"\ninterval = \"0s\"\n"),
                          errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains(":6:8: unknown source type 'ftp' (expected spool, sqlite or http)"));
  CHECK_THAT(text, Catch::Contains(":9:8: source name 'a' is used twice"));
  CHECK_THAT(text, Catch::Contains("source 'a' needs 'path' (a string)"));
  CHECK_THAT(text, Catch::Contains(":11:12: 'interval' must be between 1s and 1d; a source is polled, not spun on"));
}

TEST_CASE("an sqlite source needs a cursor query and a mapping, each checked") {
  TempDir dir;
  Diagnostics errors;
  auto config =
      load_config(write_config(dir,
                               "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                               "[[source]]\nname = \"shop\"\ntype = \"sqlite\"\npath = \"shop.db\"\n"
                               "query = \"SELECT * FROM orders WHERE updated_at > :cursor ORDER BY updated_at\"\n"
                               "cursor_column = \"updated_at\"\n"
                               "[source.mapping]\ntype = \"order\"\nid = \"/id\"\n"
                               "[source.mapping.fields]\nstatus = \"/state\"\n"
                               "[source.mapping.values.status]\npaid = \"confirmed\"\n\"*\" = \"placed\"\n"),
                  errors);
  INFO(all(errors));
  REQUIRE(config);
  const SourceConfig& source = config->sources.at(0);
  REQUIRE(source.mappings.size() == 1);
  CHECK(source.mappings[0].type == EntityType::kOrder);
  REQUIRE(source.mappings[0].fields.size() == 1);
  CHECK(source.mappings[0].fields[0].values.at("paid") == "confirmed");
  CHECK(source.mappings[0].fields[0].values.at("*") == "placed");

  TempDir bad;
  errors.clear();
  CHECK_FALSE(load_config(write_config(bad,
                                       "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                       "[[source]]\nname = \"shop\"\ntype = \"sqlite\"\npath = \"shop.db\"\n"
                                       "query = \"SELECT * FROM orders\"\ncursor_column = \"u\"\n"
                                       "[source.mapping]\ntype = \"parcel\"\nid = \"id\"\n"
                                       "[source.mapping.values.state]\nx = \"y\"\n"),
                          errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains(":8:9: the query must read rows after ':cursor'"));
  CHECK_THAT(text, Catch::Contains(":11:8: unknown entity type 'parcel'"));
  CHECK_THAT(text, Catch::Contains(":12:6: 'id' is not a JSON pointer (like \"/id\" or \"/customer/id\")"));
  CHECK_THAT(text,
             Catch::Contains("[source.mapping.values.state] must be a table for a field in [source.mapping.fields]"));
}

TEST_CASE("an http source reads its URL, cursor, paging and auth, and says what is wrong with them") {
  TempDir dir;
  dir.write("shop-token", "tok-123\n");
  Diagnostics errors;
  auto config = load_config(write_config(dir, R"toml([tactd]
rules = "rules"
templates = "templates"
[[source]]
name = "shop"
type = "http"
url = "https://shop.example/orders.json?limit=250"
interval = "1m"
jitter = "10s"
items = "/orders"
cursor_param = "updated_at_min"
cursor_field = "/updated_at"
follow_links = true
[source.headers]
Accept-Language = "nl"
[source.auth]
type = "basic"
username = "tactd"
secret_file = "shop-token"
[[source.mapping]]
type = "customer"
id = "/customer/id"
[[source.mapping]]
type = "order"
id = "/id"
[source.mapping.fields]
status = ["/cancel_reason", "/fulfillment_status"]
)toml"),
                            errors);
  INFO(all(errors));
  REQUIRE(config);
  const SourceConfig& source = config->sources.at(0);
  CHECK(source.url == "https://shop.example/orders.json?limit=250");
  CHECK(source.jitter == std::chrono::seconds{10});
  CHECK(source.follow_links);
  CHECK(source.auth.type == HttpAuth::Type::kBasic);
  CHECK(source.auth.secret == "tok-123");
  CHECK(source.headers.at(0) == std::pair<std::string, std::string>{"Accept-Language", "nl"});
  REQUIRE(source.mappings.size() == 2);
  CHECK(source.mappings[1].fields.at(0).pointers == std::vector<std::string>{"/cancel_reason", "/fulfillment_status"});

  TempDir bad;
  errors.clear();
  CHECK_FALSE(load_config(write_config(bad, R"toml([tactd]
rules = "rules"
templates = "templates"
[[source]]
name = "shop"
type = "http"
url = "ftp://shop.example/"
cursor_param = "since"
[source.auth]
type = "digest"
[source.mapping]
type = "order"
id = "/id"
)toml"),
                          errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains(":7:7: 'url' must start with http:// or https://"));
  CHECK_THAT(text, Catch::Contains("'cursor_param' needs 'cursor_field' or 'next_cursor'"));
  CHECK_THAT(text, Catch::Contains(":10:8: unknown auth type 'digest' (expected bearer, basic or header)"));
}

TEST_CASE("channels name a known provider with its credentials, and their mistakes are reported") {
  TempDir dir;
  dir.write("twilio-token", "tw-secret\n");
  setenv("TACTD_TEST_MAIL_KEY", "SG.key", 1);
  Diagnostics errors;
  auto config = load_config(write_config(dir, R"toml([tactd]
rules = "rules"
templates = "templates"
[[channel]]
channel = "email"
provider = "sendgrid"
from = "Shop <shop@example.com>"
secret_env = "TACTD_TEST_MAIL_KEY"
[[channel]]
channel = "sms"
provider = "twilio"
account = "AC1"
from = "+3197010000001"
secret_file = "twilio-token"
rate = 0.5
burst = 2
max_attempts = 5
backoff = "5s"
max_age = "2h"
)toml"),
                            errors);
  INFO(all(errors));
  REQUIRE(config);
  REQUIRE(config->channels.size() == 2);
  CHECK(config->channels[0].secret == "SG.key");
  CHECK(config->channels[1].channel == Channel::kSms);
  CHECK(config->channels[1].secret == "tw-secret");
  CHECK(config->channels[1].rate == 0.5);
  CHECK(config->channels[1].burst == 2);
  CHECK(config->channels[1].max_attempts == 5);
  CHECK(config->channels[1].backoff == std::chrono::seconds{5});
  CHECK(config->channels[1].max_age == std::chrono::hours{2});

  TempDir bad;
  errors.clear();
  CHECK_FALSE(load_config(write_config(bad, R"toml([tactd]
rules = "rules"
templates = "templates"
[[channel]]
channel = "sms"
provider = "sendgrid"
from = "x"
[[channel]]
channel = "sms"
provider = "twilio"
from = "+31"
secret_env = "TACTD_TEST_MAIL_KEY"
rate = -1
[[channel]]
channel = "email"
provider = "smtp"
url = "https://mail.example"
from = "Shop"
)toml"),
                          errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains(":6:12: unknown sms provider 'sendgrid' (expected twilio, messagebird, webhook)"));
  CHECK_THAT(text, Catch::Contains(":9:11: channel 'sms' is configured twice"));
  CHECK_THAT(text, Catch::Contains("needs 'account'"));
  CHECK_THAT(text, Catch::Contains(":13:8: 'rate' must be a number of requests per second above 0"));
  CHECK_THAT(text, Catch::Contains(":17:7: an smtp 'url' is smtp://host:587 (STARTTLS) or smtps://host:465 (TLS)"));
  CHECK_THAT(text, Catch::Contains(":18:8: 'from' must be an email address, like \"Our shop <shop@example.com>\""));
}

TEST_CASE("a send cut off is retried on a webhook and held elsewhere, unless on_unknown says otherwise") {
  TempDir dir;
  dir.write("twilio-token", "tw-secret\n");
  Diagnostics errors;
  auto config = load_config(write_config(dir, R"toml([tactd]
rules = "rules"
templates = "templates"
[[channel]]
channel = "email"
provider = "webhook"
url = "https://hooks.example/mail"
[[channel]]
channel = "sms"
provider = "twilio"
account = "AC1"
from = "+3197010000001"
secret_file = "twilio-token"
)toml"),
                            errors);
  INFO(all(errors));
  REQUIRE(config);
  CHECK(config->channels[0].on_unknown == ChannelConfig::OnUnknown::kRetry);
  CHECK(config->channels[1].on_unknown == ChannelConfig::OnUnknown::kHold);

  TempDir other;
  other.write("twilio-token", "tw-secret\n");
  config = load_config(write_config(other, R"toml([tactd]
rules = "rules"
templates = "templates"
[[channel]]
channel = "email"
provider = "webhook"
url = "https://hooks.example/mail"
on_unknown = "hold"
[[channel]]
channel = "sms"
provider = "twilio"
account = "AC1"
from = "+3197010000001"
secret_file = "twilio-token"
on_unknown = "maybe"
)toml"),
                       errors);
  CHECK_FALSE(config);
  CHECK_THAT(all(errors), Catch::Contains(":15:14: 'on_unknown' must be \"retry\""));
  CHECK_THAT(all(errors), !Catch::Contains(":8:"));
}

TEST_CASE("known providers are those of each channel") {
  CHECK(known_provider(Channel::kEmail, "sendgrid"));
  CHECK(known_provider(Channel::kEmail, "mailgun"));
  CHECK(known_provider(Channel::kEmail, "smtp"));
  CHECK(known_provider(Channel::kEmail, "webhook"));
  CHECK_FALSE(known_provider(Channel::kEmail, "twilio"));
  CHECK(known_provider(Channel::kSms, "twilio"));
  CHECK(known_provider(Channel::kSms, "messagebird"));
  CHECK(known_provider(Channel::kSms, "webhook"));
  CHECK_FALSE(known_provider(Channel::kSms, "smtp"));
  CHECK_FALSE(known_provider(Channel::kSms, ""));
}

TEST_CASE("commands that send nothing load the configuration without its secrets") {
  TempDir dir;
  unsetenv("TACTD_TEST_UNSET_KEY");
  const auto file = write_config(dir, R"toml([tactd]
rules = "rules"
templates = "templates"
[[channel]]
channel = "email"
provider = "sendgrid"
from = "shop@example.com"
secret_env = "TACTD_TEST_UNSET_KEY"
)toml");
  Diagnostics errors;
  CHECK_FALSE(load_config(file, errors));
  CHECK_THAT(all(errors), Catch::Contains("the environment variable 'TACTD_TEST_UNSET_KEY' is not set"));
  errors.clear();
  auto config = load_config(file, errors, Secrets::kSkip);
  INFO(all(errors));
  REQUIRE(config);
  CHECK(config->channels.at(0).secret == kUnreadSecret);
}

TEST_CASE("the push endpoint reads its secrets from a file or the environment, and never runs open") {
  TempDir dir;
  dir.write("token", "abc123\n");
  setenv("TACTD_CONFIG_TEST_SECRET", "k3y", 1);
  Diagnostics errors;
  auto config = load_config(write_config(dir,
                                         "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                         "[push]\nlisten = \"0.0.0.0:9000\"\ntoken_file = \"token\"\n"
                                         "hmac_secret_env = \"TACTD_CONFIG_TEST_SECRET\"\n"),
                            errors);
  INFO(all(errors));
  REQUIRE(config);
  REQUIRE(config->push);
  CHECK(config->push->address == "0.0.0.0");
  CHECK(config->push->port == 9000);
  CHECK(config->push->token == "abc123");
  CHECK(config->push->hmac_secret == "k3y");
  CHECK(config->push->max_held_bytes == 2u << 20);  // the default

  TempDir held;
  held.write("token", "abc123\n");
  errors.clear();
  config = load_config(write_config(held,
                                    "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                    "[push]\ntoken_file = \"token\"\nmax_held_bytes = 1048576\n"),
                       errors);
  INFO(all(errors));
  REQUIRE(config);
  CHECK(config->push->max_held_bytes == 1u << 20);
  errors.clear();
  CHECK_FALSE(load_config(write_config(held,
                                       "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                       "[push]\ntoken_file = \"token\"\nmax_held_bytes = 1000\n"),
                          errors));
  CHECK_THAT(all(errors), Catch::Contains(":6:18: 'max_held_bytes' must be between 65536 and 1073741824 bytes"));

  TempDir open;
  errors.clear();
  CHECK_FALSE(load_config(write_config(open,
                                       "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                       "[push]\nlisten = \"localhost\"\n"),
                          errors));
  std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains(":5:10: 'listen' must be address:port, like \"127.0.0.1:8425\""));

  TempDir unset;
  errors.clear();
  CHECK_FALSE(load_config(write_config(unset,
                                       "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n"
                                       "[push]\ntoken_env = \"TACTD_CONFIG_TEST_UNSET\"\n"),
                          errors));
  CHECK_THAT(all(errors), Catch::Contains("the environment variable 'TACTD_CONFIG_TEST_UNSET' is not set"));

  TempDir none;
  errors.clear();
  CHECK_FALSE(
      load_config(write_config(none, "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n[push]\n"), errors));
  CHECK_THAT(all(errors), Catch::Contains("the endpoint never accepts unauthenticated requests"));
}

TEST_CASE("the admin endpoint, the log level, the stop grace and sync are read, and mistakes reported") {
  TempDir dir;
  const std::string head = "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n";
  Diagnostics errors;
  auto config = load_config(write_config(dir, head), errors);
  REQUIRE(config);
  CHECK_FALSE(config->admin);  // no [admin]: no endpoint
  CHECK(config->log_level == "info");
  CHECK(config->stop_grace == std::chrono::seconds{10});
  CHECK(config->full_sync);  // durable unless told otherwise

  config =
      load_config(write_config(dir, head + "stop_grace = \"3s\"\nsync = \"normal\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
                                           "[log]\nlevel = \"debug\"\n"),
                  errors);
  INFO(all(errors));
  REQUIRE(config);
  REQUIRE(config->admin);
  CHECK(config->admin->address == "127.0.0.1");
  CHECK(config->admin->port == 0);
  CHECK(config->log_level == "debug");
  CHECK(config->stop_grace == std::chrono::seconds{3});
  CHECK_FALSE(config->full_sync);

  errors.clear();
  CHECK_FALSE(load_config(write_config(dir, head + "stop_grace = \"0s\"\nsync = \"off\"\n[admin]\nlisten = \"9425\"\n"
                                                   "[log]\nlevel = \"loud\"\n"),
                          errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains("tactd.toml:4:14: 'stop_grace' must be more than 0s"));
  CHECK_THAT(text, Catch::Contains("tactd.toml:5:8: 'sync' must be \"full\"") && Catch::Contains("not 'off'"));
  CHECK_THAT(text, Catch::Contains("tactd.toml:7:10: 'listen' must be address:port") && Catch::Contains("not '9425'"));
  CHECK_THAT(text, Catch::Contains("'level' must be one of trace, debug, info, warn, error; not 'loud'"));
}

TEST_CASE("the admin token comes from a file or a systemd credential and is absent without one") {
  TempDir dir;
  dir.write("admin-token", "t0ken\n");
  std::filesystem::create_directories(dir.path() / "credentials");
  dir.write("credentials/admin-token", "from-systemd\n");
  const std::string head = "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n[admin]\nlisten = \"127.0.0.1:0\"\n";
  Diagnostics errors;
  auto config = load_config(write_config(dir, head + "token_file = \"admin-token\"\n"), errors);
  INFO(all(errors));
  REQUIRE(config);
  CHECK(config->admin->token == "t0ken");

  setenv("CREDENTIALS_DIRECTORY", (dir.path() / "credentials").c_str(), 1);
  config = load_config(write_config(dir, head + "token_credential = \"admin-token\"\n"), errors);
  unsetenv("CREDENTIALS_DIRECTORY");
  REQUIRE(config);
  CHECK(config->admin->token == "from-systemd");

  config = load_config(write_config(dir, head), errors);
  REQUIRE(config);
  CHECK(config->admin->token.empty());  // the /v1/ routes answer 403

  config = load_config(write_config(dir, head + "token_file = \"admin-token\"\n"), errors, Secrets::kSkip);
  REQUIRE(config);
  CHECK(config->admin->token == kUnreadSecret);

  errors.clear();
  CHECK_FALSE(load_config(write_config(dir, head + "token_file = \"absent\"\n"), errors));
  CHECK_THAT(all(errors), Catch::Contains("tactd.toml:6:") && Catch::Contains("cannot read"));
}

TEST_CASE("a secret can come from a systemd credential, and a missing one is named") {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "credentials");
  dir.write("credentials/tactd_push-token", "s3cret-token\n");
  const auto file = write_config(dir, R"(
[tactd]
rules = "rules"
templates = "templates"

[push]
token_credential = "tactd_push-token"
)");
  Diagnostics errors;
  unsetenv("CREDENTIALS_DIRECTORY");
  CHECK_FALSE(load_config(file, errors));
  CHECK_THAT(all(errors), Catch::Contains("'token_credential' needs $CREDENTIALS_DIRECTORY"));

  setenv("CREDENTIALS_DIRECTORY", (dir.path() / "credentials").c_str(), 1);
  errors.clear();
  auto config = load_config(file, errors);
  INFO(all(errors));
  REQUIRE(config);
  CHECK(config->push->token == "s3cret-token");

  errors.clear();
  CHECK_FALSE(load_config(write_config(dir,
                                       "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n[push]\n"
                                       "token_credential = \"../tactd.toml\"\n"),
                          errors));
  CHECK_THAT(all(errors), Catch::Contains("must be a credential's name"));
  errors.clear();
  CHECK_FALSE(load_config(write_config(dir,
                                       "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n[push]\n"
                                       "token_credential = \"absent\"\ntoken_env = \"X\"\n"),
                          errors));
  CHECK_THAT(all(errors), Catch::Contains("give one of 'token_file', 'token_env' and 'token_credential'"));
  unsetenv("CREDENTIALS_DIRECTORY");
}

TEST_CASE("the operators' channel reads its interval and an email or a webhook with its secret, and mistakes") {
  TempDir dir;
  const std::string head = "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n";
  const std::string mail =
      "[[channel]]\nchannel = \"email\"\nprovider = \"smtp\"\nurl = \"smtp://127.0.0.1:25\"\n"
      "from = \"Shop <shop@example.com>\"\n";
  Diagnostics errors;
  auto config = load_config(write_config(dir, head), errors);
  REQUIRE(config);
  CHECK_FALSE(config->operators);  // no [operators]: the journal only

  config = load_config(write_config(dir, head + mail + "[operators]\nemail = \"ops@shop.example\"\n"), errors);
  INFO(all(errors));
  REQUIRE(config);
  REQUIRE(config->operators);
  CHECK(config->operators->digest == std::chrono::minutes{15});
  CHECK(config->operators->email == "ops@shop.example");
  CHECK(config->operators->webhook.empty());

  dir.write("hook-secret", "hook-s3cret\n");
  setenv("TACTD_TEST_HOOK", "https://chat.example/hooks/T0/B0/XYZ", 1);
  config = load_config(write_config(dir, head + "[operators]\ndigest = \"2s\"\nwebhook_env = \"TACTD_TEST_HOOK\"\n"
                                                "secret_file = \"hook-secret\"\nauth = \"bearer\"\n"),
                       errors);
  REQUIRE(config);
  CHECK(config->operators->digest == std::chrono::seconds{2});
  CHECK(config->operators->webhook == "https://chat.example/hooks/T0/B0/XYZ");
  CHECK(config->operators->secret == "hook-s3cret");
  CHECK(config->operators->auth == OperatorsConfig::Auth::kBearer);
  unsetenv("TACTD_TEST_HOOK");

  auto mistakes = [&](const std::string& text) {
    Diagnostics found;
    CHECK_FALSE(load_config(write_config(dir, head + text), found));
    return all(found);
  };
  CHECK_THAT(mistakes("[operators]\ndigest = \"0s\"\nwebhook = \"https://chat.example/h\"\n"),
             Catch::Contains("tactd.toml:5:10: 'digest' must be between 1s and 1d"));
  CHECK_THAT(mistakes("[operators]\ndigest = \"1m\"\n"), Catch::Contains("[operators] needs one of 'email'"));
  CHECK_THAT(mistakes("[operators]\nemail = \"ops@shop.example\"\nwebhook = \"https://chat.example/h\"\n"),
             Catch::Contains("[operators] needs one of 'email'"));
  CHECK_THAT(mistakes("[operators]\nemail = \"ops@shop.example\"\n"),
             Catch::Contains("'email' is sent over the email [[channel]], and there is none"));
  CHECK_THAT(mistakes(mail + "[operators]\nemail = \"ops at shop\"\n"),
             Catch::Contains("'email' must be an email address"));
  CHECK_THAT(mistakes("[operators]\nwebhook = \"chat.example/h\"\n"),
             Catch::Contains("'webhook' must start with https://"));
  CHECK_THAT(
      mistakes("[operators]\nwebhook = \"https://chat.example/h\"\nauth = \"basic\"\nsecret_file = \"hook-secret\"\n"),
      Catch::Contains("'auth' must be \"hmac\" (X-Tactd-Signature) or \"bearer\""));
  CHECK_THAT(mistakes("[operators]\nwebhook = \"https://chat.example/h\"\nauth = \"bearer\"\n"),
             Catch::Contains("'auth' needs the secret"));
  CHECK_THAT(mistakes("[operators]\nwebhook = \"https://chat.example/h\"\nchannel = \"x\"\n"),
             Catch::Contains("unknown key 'channel'"));
}

TEST_CASE("durations are checked for sense: no zero, negative or absurd intervals, timeouts and ages") {
  TempDir dir;
  Diagnostics errors;
  CHECK_FALSE(load_config(write_config(dir, R"toml([tactd]
rules = "rules"
templates = "templates"
[timers]
grace = "-1h"
[push]
listen = "127.0.0.1:0"
token_env = "X"
max_skew = "0s"
[[source]]
name = "shop"
type = "http"
url = "https://shop.example/orders"
timeout = "0s"
max_backoff = "99999999999999999999d"
[[channel]]
channel = "sms"
provider = "webhook"
url = "https://sms.example/send"
from = "+3197010000001"
timeout = "0s"
max_age = "0s"
backoff = "40d"
)toml"),
                          errors, Secrets::kSkip));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains(":5:9: 'grace': '-1h' is not a duration"));
  CHECK_THAT(text, Catch::Contains(":9:12: 'max_skew' must be between 1s and 1h"));
  CHECK_THAT(text, Catch::Contains(":14:11: 'timeout' must be between 1s and 10m"));
  CHECK_THAT(text, Catch::Contains(":15:15: 'max_backoff': '99999999999999999999d' is longer than any duration"));
  CHECK_THAT(text, Catch::Contains(":21:11: 'timeout' must be between 1s and 10m"));
  CHECK_THAT(text, Catch::Contains(":22:11: 'max_age' must be between 1m and 30d"));
  CHECK_THAT(text, Catch::Contains(":23:11: 'backoff' must be between 1s and 1d"));
}

TEST_CASE("[inbound] reads its listener, public URL, secrets, pause and support destination, and mistakes") {
  TempDir dir;
  const std::string head = "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n";
  dir.write("twilio-token", "tw-s3cret\n");
  setenv("TACTD_TEST_INBOUND", "in-s3cret", 1);
  Diagnostics errors;
  auto config = load_config(
      write_config(dir, head + "[inbound]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://shop.example/tactd/\"\n"
                               "twilio_token_file = \"twilio-token\"\nhmac_secret_env = \"TACTD_TEST_INBOUND\"\n"
                               "pause = \"2d\"\nforward_webhook = \"https://desk.example/h\"\n"),
      errors);
  INFO(all(errors));
  REQUIRE(config);
  REQUIRE(config->inbound);
  CHECK(config->inbound->port == 0);
  CHECK(config->inbound->public_url == "https://shop.example/tactd");  // without the trailing '/'
  CHECK(config->inbound->twilio_token == "tw-s3cret");
  CHECK(config->inbound->hmac_secret == "in-s3cret");
  CHECK(config->inbound->messagebird_key.empty());
  CHECK(config->inbound->pause == std::chrono::hours{48});
  CHECK(config->inbound->forward_webhook == "https://desk.example/h");
  unsetenv("TACTD_TEST_INBOUND");

  auto mistakes = [&](const std::string& text) {
    Diagnostics found;
    CHECK_FALSE(load_config(write_config(dir, head + text), found));
    return all(found);
  };
  CHECK_THAT(mistakes("[inbound]\nlisten = \"127.0.0.1:0\"\n"),
             Catch::Contains("[inbound] needs at least one of 'twilio_token_*'"));
  CHECK_THAT(mistakes("[inbound]\ntwilio_token_file = \"twilio-token\"\n"),
             Catch::Contains("'public_url' must be the https:// URL the provider posts to"));
  CHECK_THAT(mistakes("[inbound]\ntwilio_token_file = \"twilio-token\"\npublic_url = \"https://x\"\npause = \"40d\"\n"),
             Catch::Contains("'pause' must be between 0s (no pause) and 30d"));
  CHECK_THAT(mistakes("[inbound]\ntwilio_token_file = \"twilio-token\"\npublic_url = \"https://x\"\n"
                      "forward_email = \"support@shop.example\"\n"),
             Catch::Contains("'forward_email' is sent over the email [[channel]], and there is none"));
  CHECK_THAT(mistakes("[inbound]\ntwilio_token_file = \"twilio-token\"\npublic_url = \"https://x\"\n"
                      "forward_webhook = \"desk.example\"\n"),
             Catch::Contains("'forward_webhook' must start with https://"));
}

TEST_CASE("action tables read their endpoint, signing key, timeout and attempts, and mistakes are reported") {
  TempDir dir;
  dir.write("voucher-key", "v-secret\n");
  Diagnostics errors;
  auto config = load_config(write_config(dir, R"toml([tactd]
rules = "rules"
templates = "templates"
[[action]]
name = "voucher"
url = "https://shop.example/api/vouchers"
secret_file = "voucher-key"
timeout = "3s"
max_attempts = 4
backoff = "10s"
[[action]]
name = "refund"
url = "http://127.0.0.1:8080/refunds"
secret_file = "voucher-key"
)toml"),
                            errors);
  INFO(all(errors));
  REQUIRE(config);
  REQUIRE(config->actions.size() == 2);
  const ActionConfig* voucher = config->action("voucher");
  REQUIRE(voucher);
  CHECK(voucher->url == "https://shop.example/api/vouchers");
  CHECK(voucher->secret == "v-secret");
  CHECK(voucher->timeout == std::chrono::seconds{3});
  CHECK(voucher->max_attempts == 4);
  CHECK(voucher->backoff == std::chrono::seconds{10});
  const ActionConfig* refund = config->action("refund");
  REQUIRE(refund);
  CHECK(refund->timeout == std::chrono::seconds{5});  // the defaults
  CHECK(refund->max_attempts == 3);
  CHECK_FALSE(config->action("gift"));

  errors.clear();
  CHECK_FALSE(load_config(write_config(dir, R"toml([tactd]
rules = "rules"
templates = "templates"
[[action]]
name = "voucher"
url = "ftp://shop.example/vouchers"
secret = "inline"
timeout = "0s"
max_attempts = 0
[[action]]
name = "voucher"
url = "https://shop.example/vouchers"
[[action]]
name = "two words"
url = "https://shop.example/vouchers"
secret_file = "voucher-key"
tiemout = "5s"
)toml"),
                          errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains("tactd.toml:6:7: 'url' must start with https:// (or http://)"));
  CHECK_THAT(text, Catch::Contains("tactd.toml:7:10: the key stays out of the configuration"));
  CHECK_THAT(text, Catch::Contains("tactd.toml:8:11: 'timeout' must be between 1s and 2m"));
  CHECK_THAT(text, Catch::Contains("tactd.toml:9:16: 'max_attempts' must be between 1 and 20"));
  CHECK_THAT(text, Catch::Contains("tactd.toml:11:8: action 'voucher' is configured twice"));
  CHECK_THAT(text, Catch::Contains("tactd.toml:12:7: an action is signed (X-Tactd-Signature)"));
  CHECK_THAT(text, Catch::Contains("tactd.toml:14:8: an action's 'name' may only use letters"));
  CHECK_THAT(text, Catch::Contains("unknown key 'tiemout' in action 'two words'"));
}

TEST_CASE("a PostgreSQL URL selects that backend, its password comes from a file, and a password in it is refused") {
  TempDir dir;
  dir.write("db-password", "s3cret\n");
  Diagnostics errors;
  auto in_tactd = load_config(
      write_config(dir, "[tactd]\ntemplates = \"templates\"\nstate = \"postgresql://tactd@db.example:5432/tactd\"\n"),
      errors, Secrets::kSkip);
  REQUIRE(in_tactd);
  CHECK(in_tactd->state_url == "postgresql://tactd@db.example:5432/tactd");
  CHECK(in_tactd->state_password.empty());

  auto table = load_config(
      write_config(dir,
                   "[tactd]\ntemplates = \"templates\"\n[state]\nurl = \"postgres://tactd@db/tactd?sslmode=require\"\n"
                   "password_file = \"db-password\"\n"),
      errors, Secrets::kSkip);
  REQUIRE(table);
  CHECK(table->state_url == "postgres://tactd@db/tactd?sslmode=require");
  CHECK(table->state_password == "s3cret");  // read even when the other secrets are skipped
  CHECK(errors.empty());

  auto sqlite = load_config(write_config(dir, "[tactd]\ntemplates = \"templates\"\nstate = \"state.db\"\n"), errors);
  REQUIRE(sqlite);
  CHECK(sqlite->state_url.empty());
  CHECK(sqlite->state_path == dir.path() / "state.db");

  const auto file =
      write_config(dir, "[tactd]\ntemplates = \"templates\"\nstate = \"postgresql://tactd:hunter2@db/tactd\"\n");
  CHECK_FALSE(load_config(file, errors));
  CHECK_THAT(all(errors), Catch::Contains(file.string() + ":3:") &&
                              Catch::Contains("'state' must not hold the database's password") &&
                              !Catch::Contains("hunter2"));
  errors.clear();
  CHECK_FALSE(load_config(
      write_config(
          dir,
          "[tactd]\ntemplates = \"templates\"\nstate = \"postgresql://db/t\"\n[state]\nurl = \"postgresql://db/t\"\n"),
      errors));
  CHECK_THAT(all(errors), Catch::Contains("the state is named twice"));
  errors.clear();
  CHECK_FALSE(load_config(
      write_config(dir, "[tactd]\ntemplates = \"templates\"\n[state]\nurl = \"/var/lib/tactd/state.db\"\n"), errors));
  CHECK_THAT(all(errors), Catch::Contains("'url' must be a PostgreSQL URL"));
  errors.clear();
  CHECK_FALSE(load_config(
      write_config(dir, "[tactd]\ntemplates = \"templates\"\n[state]\nurl = \"postgresql://db/t?password=x\"\n"),
      errors));
  CHECK_THAT(all(errors), Catch::Contains("'url' must not hold the password"));
}
