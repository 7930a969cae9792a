#include <utility>  // before Boost.Asio

#include "channels/operator_digest.h"

#include <spdlog/spdlog.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <string_view>

#include <nlohmann/json.hpp>

#include "channels/delivery.h"
#include "net/http_client.h"
#include "ops/logging.h"
#include "signing/signing.h"

namespace tactd {
namespace {

namespace asio = boost::asio;

// The longest run() sleeps while nothing is due.
constexpr Duration kMaxSleep = std::chrono::minutes{1};
// Room kept at the end of a digest's text for the lines that close it.
constexpr std::size_t kTrailer = 300;

// The kinds of finding in the order a digest lists them, each with what it
// means for a person.
struct KindMeaning {
  std::string_view kind;
  std::string_view meaning;
};
constexpr std::array<KindMeaning, 12> kKinds{{
    {"short_notice", "a change takes effect sooner than the rule's minimum notice; not sent"},
    {"missing_field", "the message lacks a field it cannot go without; not sent"},
    {"no_channel", "no contact detail reaches the customer; not sent"},
    {"unknown_customer", "the customer was never observed; not sent"},
    {"no_customer", "the entity names no customer; not sent"},
    {"gave_up_waiting", "a customer, order or address it waited for did not arrive in time; not sent"},
    {"render_failed", "the template could not be filled; not sent"},
    {"timer_late", "a timer was found too late, after downtime; skipped"},
    {"dead_letter", "the provider refused the message, or its retries ran out; given up"},
    {"unknown_outcome",
     "a send was cut off by a crash or a stop, and the provider does not deduplicate; held until resolved"},
    {"action_failed", "a rule's action (a voucher) failed for good; the message went without it"},
    {"forward_refused",
     "support's forward_email or forward_webhook refused a customer's reply for good; it stays unforwarded, tried "
     "again every 10 minutes and at once after a reload that changes [inbound]"},
}};

// Position of `kind` in kKinds; unknown kinds after the known ones.
std::size_t rank(std::string_view kind) {
  for (std::size_t i = 0; i < kKinds.size(); ++i)
    if (kKinds[i].kind == kind) return i;
  return kKinds.size();
}

// The kinds present in `findings`, in digest order, with their counts.
std::vector<std::pair<std::string, std::size_t>> kinds_of(const std::vector<Finding>& findings) {
  std::vector<std::pair<std::string, std::size_t>> kinds;
  for (const Finding& f : findings) {
    auto it = std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) { return k.first == f.kind; });
    if (it == kinds.end())
      kinds.emplace_back(f.kind, 1);
    else
      ++it->second;
  }
  std::stable_sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) {
    return rank(a.first) != rank(b.first) ? rank(a.first) < rank(b.first) : a.first < b.first;
  });
  return kinds;
}

// `text` on one line (line breaks and tabs become spaces), at most `max`
// bytes, never cut inside a UTF-8 character; a cut ends in "...".
std::string one_line(std::string_view text, std::size_t max) {
  std::string out;
  for (const char c : text) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (out.size() <= max) return out;
  std::size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  return out + "...";
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// Slack reads `&`, `<` and `>` as markup (links, @channel); it asks for them
// escaped. Mattermost shows the entities as the characters.
std::string chat_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else
      out += c;
  }
  return out;
}

}  // namespace

// --- Digest ---

std::string Digest::subject() const {
  std::string subject = "tactd: " + plural(findings.size() + dropped, "finding needs", "findings need") + " a person (";
  bool first = true;
  for (const auto& [kind, count] : kinds_of(findings)) {
    subject += (first ? "" : ", ") + std::to_string(count) + " " + kind;
    first = false;
  }
  if (dropped > 0) subject += (first ? "" : ", ") + std::to_string(dropped) + " not kept";
  return subject + ")";
}

std::string Digest::text() const {
  std::string out = "tactd: " + plural(findings.size() + dropped, "finding needs", "findings need") + " a person";
  if (!findings.empty()) {
    const std::string first = format_rfc3339(findings.front().at);
    const std::string last = format_rfc3339(findings.back().at);
    out += first == last ? ", found " + first : ", found between " + first + " and " + last;
  }
  out += ".\n";
  std::size_t shown = 0;
  bool full = false;
  for (const auto& [kind, count] : kinds_of(findings)) {
    const std::size_t at = rank(kind);
    std::string heading = "\n" + kind + " (" + std::to_string(count) + ")";
    if (at < kKinds.size()) heading += ": " + std::string(kKinds[at].meaning);
    heading += "\n";
    if (out.size() + heading.size() + kTrailer > kMaxText) {
      full = true;
      break;
    }
    out += heading;
    for (const Finding& f : findings) {
      if (f.kind != kind) continue;
      // Every line names the rule; most texts do already.
      const std::string rule = "rule '" + f.rule + "'";
      const std::string said = f.text.find(rule) == std::string::npos ? f.text + " (" + rule + ")" : f.text;
      const std::string line = "- " + one_line(said, kMaxLine) + "\n";
      if (out.size() + line.size() + kTrailer > kMaxText) {
        full = true;
        break;
      }
      out += line;
      ++shown;
    }
    if (full) break;
  }
  if (shown < findings.size())
    out += "\n... and " + plural(findings.size() - shown, "more finding", "more findings") +
           " not shown here (the digest is cut at " + std::to_string(kMaxText) + " bytes).\n";
  if (dropped > 0)
    out += "\n" + plural(dropped, "more finding was", "more findings were") + " not kept: at most " +
           std::to_string(OperatorDigest::kMaxFindings) + " wait for a digest at once.\n";
  if (shown < findings.size() || dropped > 0) out += "The journal has every one: journalctl -u tactd -p warning\n";
  return out;
}

// --- OperatorDigest ---

void OperatorDigest::add(Finding finding) {
  if (findings_.size() >= kMaxFindings) {
    ++dropped_;
    return;
  }
  finding.at = clock_.now();
  findings_.push_back(std::move(finding));
}

std::optional<Timestamp> OperatorDigest::due() const {
  if (findings_.empty()) return std::nullopt;
  Timestamp due = findings_.front().at + interval_;
  if (last_taken_) due = std::max(due, *last_taken_ + interval_);
  return due;
}

std::optional<Digest> OperatorDigest::take(bool force) {
  const auto when = due();
  const Timestamp now = clock_.now();
  if (!when || (!force && now < *when)) return std::nullopt;
  Digest digest{{std::make_move_iterator(findings_.begin()), std::make_move_iterator(findings_.end())}, dropped_};
  findings_.clear();
  dropped_ = 0;
  last_taken_ = now;
  return digest;
}

void OperatorDigest::put_back(Digest digest) {
  dropped_ += digest.dropped;
  for (auto it = digest.findings.rbegin(); it != digest.findings.rend(); ++it) findings_.push_front(std::move(*it));
  while (findings_.size() > kMaxFindings) {  // the newest go
    findings_.pop_back();
    ++dropped_;
  }
}

// --- requests ---

ProviderRequest operator_webhook_request(const OperatorsConfig& config, const Digest& digest, Timestamp now) {
  ProviderRequest request;
  request.http.method = "POST";
  request.http.url = config.webhook;
  request.http.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.timeout);
  request.http.headers.emplace_back("Content-Type", "application/json");
  request.http.body = nlohmann::json{{"text", chat_escape(digest.text())}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (config.secret.empty()) return request;
  request.secrets.push_back(config.secret);
  if (config.auth == OperatorsConfig::Auth::kBearer) {
    request.http.headers.emplace_back("Authorization", "Bearer " + config.secret);
  } else {
    const std::string timestamp =
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
    request.http.headers.emplace_back("X-Tactd-Timestamp", timestamp);
    request.http.headers.emplace_back("X-Tactd-Signature",
                                      webhook_signature(config.secret, timestamp, request.http.body));
  }
  return request;
}

Notification operator_email(const OperatorsConfig& config, const Digest& digest, Timestamp now) {
  Notification n;
  n.idempotency_key = "operators-digest@" + format_rfc3339(now);
  n.at = now;
  n.rule = "operators";
  n.kind = Kind::kExplanation;
  n.channel = Channel::kEmail;
  n.to = config.email;
  n.subject = digest.subject();
  n.body = digest.text();
  n.locale = "en";
  n.time_zone = "UTC";
  return n;
}

// --- OperatorChannel ---

OperatorChannel::OperatorChannel(HttpClient& http, SmtpClient& smtp, const Clock& clock)
    : http_(http), smtp_(smtp), clock_(clock), digest_(clock, OperatorsConfig{}.digest) {}

OperatorChannel::~OperatorChannel() = default;

void OperatorChannel::configure(const std::optional<OperatorsConfig>& config, const ChannelConfig* email) {
  if (!config) {
    if (auto waiting = digest_.take(true))
      spdlog::info("operators: no [operators] any more; findings waiting dropped {}",
                   kv("findings", std::to_string(waiting->findings.size())));
    config_.reset();
    email_.reset();
    return;
  }
  config_ = config;
  digest_.set_interval(config->digest);
  email_.reset();
  if (!config->email.empty() && email) email_ = Sender::create(*email, http_, smtp_, clock_);
  wake();
}

void OperatorChannel::report(Finding finding) {
  if (!config_) return;
  const bool first = digest_.waiting() == 0;
  digest_.add(std::move(finding));
  if (first) wake();  // a window opens
}

void OperatorChannel::start_shutdown(Timestamp deadline) {
  stop_deadline_ = deadline;
  wake();
}

void OperatorChannel::wake() {
  if (sleep_) sleep_->cancel();
}

asio::awaitable<void> OperatorChannel::run() {
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  while (!stop_deadline_) {
    if (config_) {
      if (auto digest = digest_.take()) {
        const auto verdict = co_await send(*digest, clock_.now() + kMaxWait);
        settle(std::move(*digest), verdict, stop_deadline_ && clock_.now() >= *stop_deadline_);
        continue;
      }
    }
    Duration wait = kMaxSleep;
    if (auto due = digest_.due()) wait = std::clamp<Duration>(*due - clock_.now(), Duration{1}, wait);
    sleep.expires_after(wait);
    sleep_ = &sleep;
    boost::system::error_code ec;  // cancelled: woken
    co_await sleep.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    sleep_ = nullptr;
  }
  // Stopping: what waits goes now, once.
  if (config_ && clock_.now() < *stop_deadline_) {
    if (auto digest = digest_.take(true)) {
      const auto verdict = co_await send(*digest, *stop_deadline_);
      settle(std::move(*digest), verdict, true);
    }
  } else if (auto digest = digest_.take(true)) {
    settle(std::move(*digest), Verdict{Verdict::kRetry, std::nullopt, "the stop grace was over"}, true);
  }
  finished_ = true;
  if (finish_wait_) finish_wait_->cancel();
}

asio::awaitable<void> OperatorChannel::finished() {
  if (finished_) co_return;
  asio::steady_timer wait(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
  finish_wait_ = &wait;
  boost::system::error_code ec;  // cancelled: run() returned
  co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  finish_wait_ = nullptr;
}

asio::awaitable<std::optional<Verdict>> OperatorChannel::send(const Digest& digest, Timestamp limit) {
  // Shared with the callback, which may run after this coroutine gave up.
  struct Attempt {
    std::optional<Verdict> verdict;
    asio::steady_timer* wake = nullptr;
  };
  auto attempt = std::make_shared<Attempt>();
  auto done = [attempt](Verdict verdict) {
    attempt->verdict = std::move(verdict);
    if (attempt->wake) attempt->wake->cancel();
  };
  const Timestamp now = clock_.now();
  if (!config_->webhook.empty()) {
    ProviderRequest request = operator_webhook_request(*config_, digest, now);
    const Clock* clock = &clock_;
    http_.fetch(std::move(request.http),
                [done, clock](HttpClientResponse response) { done(judge(response, clock->now())); });
  } else if (email_) {
    email_->send(operator_email(*config_, digest, now), done);
  } else {
    done(Verdict{Verdict::kPermanent, std::nullopt, "there is no email [[channel]] to send the digest through"});
  }
  asio::steady_timer wait(co_await asio::this_coro::executor);
  while (!attempt->verdict) {
    const Timestamp until = stop_deadline_ ? std::min(limit, *stop_deadline_) : limit;
    const Timestamp at = clock_.now();
    if (at >= until) break;
    wait.expires_after(until - at);
    attempt->wake = &wait;
    sleep_ = &wait;  // start_shutdown() may shorten the wait
    boost::system::error_code ec;
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    attempt->wake = nullptr;
    sleep_ = nullptr;
  }
  co_return attempt->verdict;
}

void OperatorChannel::settle(Digest digest, const std::optional<Verdict>& verdict, bool last_chance) {
  const std::string findings = std::to_string(digest.findings.size() + digest.dropped);
  const std::string to = config_ ? (config_->email.empty() ? "webhook" : config_->email) : "";
  if (verdict && verdict->kind == Verdict::kDelivered) {
    failures_ = 0;
    spdlog::info("operators: digest sent {} {}", kv("findings", findings), kv("to", to));
    return;
  }
  const std::string why = verdict ? verdict->reason : "no answer in time";
  const bool permanent = verdict && verdict->kind == Verdict::kPermanent;
  if (!permanent && !last_chance && ++failures_ < kMaxAttempts) {
    spdlog::warn("operators: digest not delivered, it goes with the next one {} {} {}", kv("findings", findings),
                 kv("to", to), kv("answer", why));
    digest_.put_back(std::move(digest));
    return;
  }
  failures_ = 0;
  spdlog::error("operators: digest given up; its findings follow {} {} {}", kv("findings", findings), kv("to", to),
                kv("answer", why));
  for (const Finding& f : digest.findings)
    spdlog::error("operators: undelivered finding {} {} {}", kv("kind", f.kind), kv("rule", f.rule),
                  kv("detail", f.text));
  if (digest.dropped > 0)
    spdlog::error("operators: findings not kept (the queue was full) {}", kv("count", std::to_string(digest.dropped)));
}

}  // namespace tactd
