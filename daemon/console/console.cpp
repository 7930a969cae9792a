#include "console/console.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <exception>
#include <set>
#include <utility>

#include "render/tone.h"
#include "timeline/timeline.h"

namespace tactd {

extern const std::string_view kConsoleCss;  // pages.cpp

namespace {

constexpr std::string_view kLoginPath = "/console/login";
constexpr std::size_t kMaxQueryBytes = 512;
constexpr std::size_t kTimelineEvents = 500;

constexpr std::array kStatuses{OutboxStatus::kPending, OutboxStatus::kUnknown,   OutboxStatus::kDead,
                               OutboxStatus::kDropped, OutboxStatus::kOvertaken, OutboxStatus::kDelivered};

struct NavItem {
  std::string_view href;
  std::string_view label;
  std::string_view page;
};
constexpr std::array kNav{
    NavItem{"/console/outbox", "Outbox", "outbox"}, NavItem{"/console/customer", "Customers", "customer"},
    NavItem{"/console/rules", "Rules", "rules"}, NavItem{"/console/reloads", "Reloads", "reloads"},
    NavItem{"/console/templates", "Templates", "templates"}};

void secure(HttpResponse& response) {
  response.headers.emplace_back("Content-Security-Policy",
                                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.headers.emplace_back("Referrer-Policy", "same-origin");
  response.headers.emplace_back("X-Frame-Options", "DENY");
}

HttpResponse redirect(std::string location) {
  HttpResponse response{303, {}, "text/plain; charset=utf-8", {}};
  response.headers.emplace_back("Location", std::move(location));
  return response;
}

std::string percent_encoded(std::string_view text) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xf]);
    }
  }
  return out;
}

// The value of cookie `name` in the Cookie header, or empty.
std::string cookie(const HttpRequest& request, std::string_view name) {
  const auto header = request.headers.find("cookie");
  if (header == request.headers.end()) return {};
  std::string_view rest = header->second;
  while (!rest.empty()) {
    std::string_view pair = rest.substr(0, rest.find(';'));
    rest.remove_prefix(std::min(rest.size(), pair.size() + 1));
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.starts_with(name) && pair.size() > name.size() && pair[name.size()] == '=')
      return std::string(pair.substr(name.size() + 1));
  }
  return {};
}

std::optional<long long> number(const std::string& text) {
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

std::optional<OutboxStatus> status_named(std::string_view name) {
  for (auto s : kStatuses)
    if (to_string(s) == name) return s;
  return std::nullopt;
}

// "waits until 2026-11-21T07:00:00+01:00 (quiet_hours): ..." -> "quiet_hours";
// else the reason up to its first colon.
std::string reason_key(const std::string& decision, const std::string& reason) {
  const auto open = reason.find(" (");
  const auto close = reason.find(')', open == std::string::npos ? 0 : open);
  if (reason.starts_with("waits until") && open != std::string::npos && close != std::string::npos)
    return reason.substr(open + 2, close - open - 2);
  std::string key = reason.substr(0, reason.find(':'));
  if (key.empty()) key = decision;
  return key.size() > 60 ? key.substr(0, 57) + "..." : key;
}

// A time for people: to the second, in `zone`.
std::string shown(Timestamp t, std::string_view zone) {
  return format_rfc3339(Timestamp{std::chrono::floor<std::chrono::seconds>(t)}, zone);
}

}  // namespace

Console::Console(ConsoleContext context, std::string token)
    : context_(std::move(context)),
      token_(std::move(token)),
      throttle_(context_.throttle ? context_.throttle : &own_throttle_) {}

void Console::set_token(std::string token) {
  if (token == token_) return;
  token_ = std::move(token);
  if (sessions_.size() > 0) spdlog::info("console: the admin token changed; {} sessions ended", sessions_.size());
  sessions_.clear();
}

std::string Console::zone() const {
  const std::string& zone = context_.snapshot().config->default_time_zone;
  return zone.empty() ? "UTC" : zone;
}

HttpResponse Console::page(int status, std::string_view name, nlohmann::json data, const ConsoleSession* session) {
  if (session) {
    data["signed_in"] = true;
    data["csrf"] = session->csrf;
    auto nav = nlohmann::json::array();
    for (const auto& item : kNav)
      nav.push_back({{"href", item.href}, {"label", item.label}, {"current", item.page == name}});
    data["nav"] = std::move(nav);
  }
  HttpResponse response{status, render_console_page(name, data), "text/html; charset=utf-8", {}};
  return response;
}

HttpResponse Console::handle(const HttpRequest& request) {
  const std::string_view target = request.target;
  const auto question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query_text =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  HttpResponse response = [&]() -> HttpResponse {
    const bool reads = request.method == "GET" || request.method == "HEAD";
    if (path == "/console/console.css") {
      if (!reads) return HttpResponse{405, "use GET\n", "text/plain; charset=utf-8", {{"Allow", "GET, HEAD"}}};
      return HttpResponse{200, std::string(kConsoleCss), "text/css; charset=utf-8", {}};
    }
    if (path == kLoginPath) return login(request, path);
    if (!reads && request.method != "POST")
      return HttpResponse{405, "use GET or POST\n", "text/plain; charset=utf-8", {{"Allow", "GET, HEAD, POST"}}};

    const Timestamp now = context_.clock->now();
    const auto session = sessions_.find(cookie(request, kCookie), now);
    if (!session) return redirect(std::string(kLoginPath));

    if (request.method == "POST") {
      if (std::string problem = cross_site_problem(request); !problem.empty())
        return page(403, "problem", {{"title", "Refused"}, {"heading", "Refused"}, {"message", problem}}, &*session);
      const auto form = form_fields(request.body);
      const auto csrf = form.find("csrf");
      if (csrf == form.end() || !same_secret(csrf->second, session->csrf))
        return page(403, "problem",
                    {{"title", "Refused"},
                     {"heading", "Refused"},
                     {"message", csrf == form.end() ? "the form carries no CSRF token; send it from a console page"
                                                    : "the form's CSRF token is not this session's; reload the page "
                                                      "and send it again"}},
                    &*session);
      if (path == "/console/logout") {
        sessions_.close(cookie(request, kCookie));
        HttpResponse out = redirect(std::string(kLoginPath));
        out.headers.emplace_back("Set-Cookie", std::string(kCookie) +
                                                   "=; Path=/console; Max-Age=0; HttpOnly; "
                                                   "SameSite=Strict");
        return out;
      }
      if (path == "/console/outbox/retry") return outbox_action("retry", form);
      if (path == "/console/outbox/drop") return outbox_action("drop", form);
      return page(404, "problem", {{"title", "Not found"}, {"heading", "Not found"}, {"message", "no such action"}},
                  &*session);
    }
    if (!reads) return HttpResponse{405, "use GET\n", "text/plain; charset=utf-8", {{"Allow", "GET, HEAD"}}};
    if (query_text.size() > kMaxQueryBytes)
      return page(414, "problem",
                  {{"title", "Too long"}, {"heading", "Too long"}, {"message", "the query is longer than 512 bytes"}},
                  &*session);
    const auto query = form_fields(query_text);
    if (path == "/console" || path == "/console/") return redirect("/console/outbox");
    if (path == "/console/outbox") return outbox_page(query, *session);
    if (path == "/console/customer") return customer_page(query, *session);
    if (path == "/console/rules") return rules_page(*session);
    if (path == "/console/reloads") return reloads_page(*session);
    if (path == "/console/templates") return templates_page(*session);
    return page(404, "problem",
                {{"title", "Not found"},
                 {"heading", "Not found"},
                 {"message", "the console has no page " + std::string(path)},
                 {"back", "/console/outbox"}},
                &*session);
  }();
  secure(response);
  if (request.method == "HEAD") response.body.clear();
  return response;
}

HttpResponse Console::login(const HttpRequest& request, std::string_view) {
  if (request.method == "GET" || request.method == "HEAD") return page(200, "login", {{"title", "Log in"}}, nullptr);
  if (request.method != "POST")
    return HttpResponse{405, "use GET or POST\n", "text/plain; charset=utf-8", {{"Allow", "GET, HEAD, POST"}}};
  if (std::string problem = cross_site_problem(request); !problem.empty())
    return page(403, "login", {{"title", "Log in"}, {"problem", problem}}, nullptr);
  if (token_.empty())
    return page(403, "login",
                {{"title", "Log in"},
                 {"problem",
                  "this tactd has no admin token, so nobody can log in: put one in a file readable by tactd, name it "
                  "in [admin] token_file (or token_credential, token_env) and reload"}},
                nullptr);
  const Timestamp now = context_.clock->now();
  // Guessing the token goes no faster than TokenThrottle::kMaxFailures a
  // minute; the answer does not say whether this token was right.
  if (const Duration wait = throttle_->wait(now); wait > Duration::zero()) {
    const auto seconds = TokenThrottle::seconds(wait);
    HttpResponse refused = page(429, "login",
                                {{"title", "Log in"},
                                 {"problem", "too many wrong tokens in the last minute: logins are refused for " +
                                                 std::to_string(seconds) + " s; try again then"}},
                                nullptr);
    refused.headers.emplace_back("Retry-After", std::to_string(seconds));
    return refused;
  }
  const auto form = form_fields(request.body);
  const auto token = form.find("token");
  if (token == form.end() || !same_secret(token->second, token_)) {
    if (throttle_->failed(now))
      spdlog::warn(
          "console: a login was refused (wrong token); {} wrong admin tokens within {} s: logins and the "
          "admin API are refused for a while",
          TokenThrottle::kMaxFailures,
          std::chrono::duration_cast<std::chrono::seconds>(TokenThrottle::kWindow).count());
    else
      spdlog::warn("console: a login was refused (wrong token)");
    return page(403, "login", {{"title", "Log in"}, {"problem", "that is not the admin token"}}, nullptr);
  }
  const ConsoleSession session = sessions_.open(now);
  spdlog::info("console: an operator logged in; {} sessions", sessions_.size());
  HttpResponse response = redirect("/console/outbox");
  response.headers.emplace_back(
      "Set-Cookie",
      std::string(kCookie) + "=" + session.id + "; Path=/console; Max-Age=" +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(ConsoleSessions::kLifetime).count()) +
          "; HttpOnly; SameSite=Strict");
  return response;
}

HttpResponse Console::outbox_page(const std::map<std::string, std::string>& query, const ConsoleSession& session) {
  Store& store = *context_.store;
  const std::string zone_name = zone();
  nlohmann::json data{{"title", "Outbox"}, {"zone", zone_name}, {"limit", std::to_string(kRowsPerStatus)}};
  OutboxStatus status = OutboxStatus::kPending;
  if (auto asked = query.find("status"); asked != query.end()) {
    if (auto named = status_named(asked->second))
      status = *named;
    else
      data["problem"] = "there is no status '" + asked->second + "'; showing pending";
  }
  if (auto done = query.find("done"); done != query.end()) {
    const auto id = query.contains("id") ? number(query.at("id")) : std::nullopt;
    const std::string entry = id ? "Outbox entry " + std::to_string(*id) : "The outbox entry";
    if (done->second == "retry") data["notice"] = entry + " will be sent again now.";
    if (done->second == "drop") data["notice"] = entry + " was dropped: it will not be sent.";
    if (done->second == "refused")
      data["problem"] = entry + " had changed meanwhile: it is not pending, dead or unknown any more.";
  }
  const auto counts = store.outbox_counts();
  auto statuses = nlohmann::json::array();
  for (auto s : kStatuses) {
    const auto found = counts.find(s);
    statuses.push_back({{"name", to_string(s)},
                        {"count", std::to_string(found == counts.end() ? 0 : found->second)},
                        {"current", s == status}});
  }
  data["statuses"] = std::move(statuses);
  data["status"] = to_string(status);
  auto rows = nlohmann::json::array();
  const bool actionable =
      status == OutboxStatus::kPending || status == OutboxStatus::kDead || status == OutboxStatus::kUnknown;
  for (const auto& e : store.latest_outbox(status, kRowsPerStatus)) {
    nlohmann::json row{{"id", std::to_string(e.id)}, {"can_act", actionable}, {"status", to_string(status)}};
    if (!e.unreadable.empty()) {
      row["last_error"] = e.last_error.empty() ? e.unreadable : e.last_error;
    } else {
      const Notification& n = e.notification;
      row.update({{"kind", to_string(n.kind)},
                  {"rule", n.rule},
                  {"customer", n.customer},
                  {"customer_query", percent_encoded(n.customer)},
                  {"channel", std::string(to_string(n.channel)) + " to " + n.to},
                  {"due", shown(e.next_attempt.value_or(n.at), zone_name)},
                  {"attempts", std::to_string(e.attempts)},
                  {"last_error", e.last_error}});
    }
    rows.push_back(std::move(row));
  }
  data["has_rows"] = !rows.empty();
  data["rows"] = std::move(rows);
  return page(200, "outbox", std::move(data), &session);
}

HttpResponse Console::outbox_action(std::string_view action, const std::map<std::string, std::string>& form) {
  const auto id = form.contains("id") ? number(form.at("id")) : std::nullopt;
  const std::string back_status =
      form.contains("status") && status_named(form.at("status")) ? form.at("status") : std::string("pending");
  if (!id) return redirect("/console/outbox?status=" + back_status + "&done=refused");
  Store& store = *context_.store;
  const Timestamp now = context_.clock->now();
  // What `tactd outbox retry|drop` does, and the decision recorded beside it.
  const bool done = action == "retry" ? store.retry(*id, now) : store.drop(*id);
  if (!done) {
    spdlog::info("console: {} of outbox entry {} refused: not pending, dead or unknown", action, *id);
    return redirect("/console/outbox?status=" + back_status + "&done=refused&id=" + std::to_string(*id));
  }
  store.record_decision(*id, now, action == "retry" ? "retried" : "dropped", "an operator, by the console");
  spdlog::info("console: an operator {} outbox entry {}", action == "retry" ? "retried" : "dropped", *id);
  if (action == "retry" && context_.outbox_changed) context_.outbox_changed();
  return redirect("/console/outbox?status=" + back_status + "&done=" + std::string(action) +
                  "&id=" + std::to_string(*id));
}

HttpResponse Console::customer_page(const std::map<std::string, std::string>& query, const ConsoleSession& session) {
  nlohmann::json data{{"title", "Customer timeline"}};
  const auto asked = query.find("q");
  if (asked == query.end() || asked->second.empty()) return page(200, "customer", std::move(data), &session);
  std::string q = asked->second;
  while (!q.empty() && q.back() == ' ') q.pop_back();
  while (!q.empty() && q.front() == ' ') q.erase(0, 1);
  data["q"] = q;
  data["title"] = "Customer " + q;
  if (std::string problem = customer_id_problem(q); !problem.empty()) {
    data["problem"] = problem;
    return page(400, "customer", std::move(data), &session);
  }
  const Store& store = *context_.store;
  const Timestamp now = context_.clock->now();
  Timeline timeline = build_timeline(store, q, now, kTimelineEvents);
  if (!timeline.known) {
    const auto found = store.customers_by_contact(q, 20);
    if (found.size() == 1) {
      timeline = build_timeline(store, found.front(), now, kTimelineEvents);
    } else if (found.size() > 1) {
      auto choices = nlohmann::json::array();
      for (const auto& id : found) choices.push_back({{"id", id}, {"query", percent_encoded(id)}});
      data["has_choices"] = true;
      data["choices"] = std::move(choices);
      return page(200, "customer", std::move(data), &session);
    }
  }
  if (!timeline.known) {
    data["problem"] = "no customer has the id, email address or phone number '" + q + "'";
    return page(404, "customer", std::move(data), &session);
  }
  const std::string zone_name = zone();
  auto events = nlohmann::json::array();
  for (const auto& e : timeline.events) {
    nlohmann::json event{{"at", shown(e.at, zone_name)},
                         {"at_utc", format_rfc3339(e.at, "UTC")},
                         {"type", e.type},
                         {"entity", e.entity},
                         {"summary", e.summary}};
    if (e.type == "decided") {
      if (e.detail.contains("subject") && e.detail["subject"].is_string()) event["subject"] = e.detail["subject"];
      if (e.detail.contains("body") && e.detail["body"].is_string()) event["text"] = e.detail["body"];
    } else if (e.type == "reply" && e.detail.contains("text") && e.detail["text"].is_string()) {
      event["text"] = e.detail["text"];
    }
    events.push_back(std::move(event));
  }
  auto paused = nlohmann::json::array();
  for (const auto& p : timeline.paused)
    paused.push_back({{"entity", p.entity}, {"until", shown(p.until, zone_name)}, {"reason", p.reason}});
  data["title"] = "Customer " + timeline.customer;
  data["timeline"] = {{"customer", timeline.customer},
                      {"name", timeline.name},
                      {"zone", zone_name},
                      {"truncated", timeline.truncated},
                      {"limit", std::to_string(timeline.limit)},
                      {"has_paused", !paused.empty()},
                      {"paused", std::move(paused)},
                      {"events", std::move(events)}};
  return page(200, "customer", std::move(data), &session);
}

HttpResponse Console::rules_page(const ConsoleSession& session) {
  const Store& store = *context_.store;
  const Snapshot snapshot = context_.snapshot();
  const std::string zone_name = zone();
  const Timestamp now = context_.clock->now();
  const Timestamp first_hour = std::chrono::floor<std::chrono::hours>(now) - std::chrono::hours{23};
  const Timestamp since = now - std::chrono::hours{24};

  struct Tally {
    std::string kind;
    std::size_t fired = 0, sent = 0, held = 0, overtaken = 0, dead = 0;
    std::map<std::string, std::size_t> reasons;
  };
  std::map<std::string, Tally> by_rule;
  std::vector<std::string> order;
  for (const auto& rule : snapshot.rules->rules()) {
    by_rule[rule.id].kind = to_string(rule.kind);
    order.push_back(rule.id);
  }
  std::vector<Timestamp> hours;
  for (int i = 0; i < 24; ++i) hours.push_back(first_hour + std::chrono::hours{i});
  std::map<std::string, std::vector<std::size_t>> per_hour;
  for (const auto& a : store.outbox_activity(since, kActivityRows)) {
    auto [it, added] = by_rule.try_emplace(a.rule);
    if (added) order.push_back(a.rule);
    Tally& t = it->second;
    if (t.kind.empty()) t.kind = to_string(a.kind);
    ++t.fired;
    if (a.status == OutboxStatus::kDelivered) ++t.sent;
    if (a.status == OutboxStatus::kOvertaken) ++t.overtaken;
    if (a.status == OutboxStatus::kDead) ++t.dead;
    if (a.created >= first_hour) {
      const auto slot =
          static_cast<std::size_t>(std::chrono::floor<std::chrono::hours>(a.created - first_hour).count());
      auto& counts = per_hour[std::string(to_string(a.kind))];
      counts.resize(hours.size(), 0);
      if (slot < counts.size()) ++counts[slot];
    }
  }
  // Held back, besides those not made (below): a message that waited
  // (quiet hours, a pause because the customer wrote) or was dropped before
  // it was sent (superseded, an operator), by reason; once per decision.
  for (const auto& d : store.decisions_since(since, kActivityRows)) {
    const bool waited = d.decision == "held back" || (d.decision == "queued" && !d.reason.empty());
    if (!waited && d.decision != "dropped") continue;
    auto [it, added] = by_rule.try_emplace(d.rule);
    if (added) order.push_back(d.rule);
    ++it->second.held;
    ++it->second.reasons[d.decision == "dropped" ? "dropped: " + reason_key(d.decision, d.reason)
                                                 : reason_key(d.decision, d.reason)];
  }
  // Decided but not made: the policy held it back (a cooldown, an opt-out,
  // a superseding message) or it could not be made (no channel, a field
  // missing). A rule fired for these too.
  for (const auto& n : store.not_made_counts(since)) {
    auto [it, added] = by_rule.try_emplace(n.rule);
    if (added) order.push_back(n.rule);
    it->second.fired += n.count;
    it->second.held += n.count;
    it->second.reasons[n.code] += n.count;
  }
  auto rules = nlohmann::json::array();
  for (const auto& id : order) {
    const Tally& t = by_rule[id];
    auto reasons = nlohmann::json::array();
    for (const auto& [reason, count] : t.reasons)
      reasons.push_back({{"reason", reason}, {"count", std::to_string(count)}});
    rules.push_back({{"id", id},
                     {"kind", t.kind},
                     {"fired", std::to_string(t.fired)},
                     {"sent", std::to_string(t.sent)},
                     {"held", std::to_string(t.held)},
                     {"has_reasons", !reasons.empty()},
                     {"reasons", std::move(reasons)},
                     {"overtaken", std::to_string(t.overtaken)},
                     {"dead", std::to_string(t.dead)}});
  }
  nlohmann::json data{{"title", "Rules"},
                      {"zone", zone_name},
                      {"since", shown(since, zone_name)},
                      {"until", shown(now, zone_name)},
                      {"held_note",
                       "Fired counts every message a rule decided, made or not. Held back counts the messages the "
                       "policy turned away or that could not be made (by their code: cooldown, opt_out, no_channel, "
                       "...), that waited (quiet hours, a pause) or were dropped before they were sent; a duplicate "
                       "of a message already in the outbox is not counted again."},
                      {"rules", std::move(rules)},
                      {"chart", hourly_chart(hours, per_hour, zone_name)}};
  return page(200, "rules", std::move(data), &session);
}

HttpResponse Console::reloads_page(const ConsoleSession& session) {
  const std::string zone_name = zone();
  auto reloads = nlohmann::json::array();
  for (const auto& r : context_.reloads->records()) {
    reloads.push_back({{"at", shown(r.at, zone_name)},
                       {"outcome", r.ok ? "took effect" : "refused: the running configuration stayed"},
                       {"outcome_class", r.ok ? "ok" : "refused"},
                       {"has_problems", !r.problems.empty()},
                       {"problems", r.problems}});
  }
  nlohmann::json data{{"title", "Reloads"},
                      {"zone", zone_name},
                      {"max", std::to_string(ReloadLog::kMax)},
                      {"has_reloads", !reloads.empty()},
                      {"reloads", std::move(reloads)}};
  return page(200, "reloads", std::move(data), &session);
}

HttpResponse Console::templates_page(const ConsoleSession& session) {
  const Snapshot snapshot = context_.snapshot();
  auto rules = nlohmann::json::array();
  for (const auto& rule : snapshot.rules->rules()) {
    auto examples = nlohmann::json::array();
    for (const auto& example : render_examples(
             snapshot, rule, [&](const std::string& locale) { return tone_example(rule.kind, locale, rule.id); })) {
      nlohmann::json shown{{"id", rule.id},
                           {"locale", example.locale},
                           {"channel", to_string(example.channel)},
                           {"path", example.path.string()},
                           {"error", example.error}};
      if (example.rendered) {
        if (example.rendered->subject) shown["subject"] = *example.rendered->subject;
        shown["body"] = example.rendered->body;
        if (example.channel == Channel::kSms) {
          const SmsLength length = sms_length(example.rendered->body);
          shown["sms"] = std::to_string(length.characters) + " characters, " + std::to_string(length.segments) +
                         (length.segments == 1 ? " segment, " : " segments, ") + (length.unicode ? "UCS-2" : "GSM-7");
        }
      }
      examples.push_back(std::move(shown));
    }
    rules.push_back({{"id", rule.id},
                     {"kind", to_string(rule.kind)},
                     {"template", rule.template_name},
                     {"examples", std::move(examples)}});
  }
  return page(200, "templates", {{"title", "Templates"}, {"rules", std::move(rules)}}, &session);
}

}  // namespace tactd
