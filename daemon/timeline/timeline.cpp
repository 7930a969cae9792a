#include "timeline/timeline.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <sstream>
#include <utility>

namespace tactd {
namespace {

// Events at the same instant are shown in the order they happen: what was
// observed, what the customer wrote, what was decided about a message, its
// attempts.
int rank(std::string_view type) {
  if (type == "first_seen") return 0;
  if (type == "observed") return 1;
  if (type == "reply") return 2;
  if (type == "opt_out" || type == "opt_in") return 3;
  if (type == "change") return 4;
  if (type == "decided") return 5;
  if (type == "held_back" || type == "not_made") return 6;
  if (type == "attempt") return 8;
  return 7;  // overtaken, dropped, decision
}

std::string value_text(const nlohmann::json& value) {
  if (value.is_null()) return "(none)";
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string entity_summary(const Entity& entity) {
  std::string text = entity.ref.str();
  if (const std::string status = text_field(entity.fields, "status"); !status.empty()) text += ", status " + status;
  return text;
}

std::string one_line(std::string text, std::size_t max) {
  for (char& c : text)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return text.size() > max ? text.substr(0, max - 3) + "..." : text;
}

// The events of one outbox entry, oldest first.
void add_message(const Store& store, const OutboxEntry& entry, std::vector<TimelineEvent>& events) {
  const std::vector<OutboxDecision> decisions = store.decisions(entry.id);
  const std::vector<DeliveryAttempt> attempts = store.attempts(entry.id);
  if (!entry.unreadable.empty()) {
    // Only its id, status and reason hold; it shows where its first decision was.
    if (decisions.empty()) return;
    events.push_back({decisions.front().at,
                      "decided",
                      "",
                      entry.id,
                      "unreadable message, set aside: " + entry.unreadable,
                      {{"status", to_string(entry.status)}}});
    return;
  }
  const Notification& n = entry.notification;
  const std::string entity = n.entity.str();
  const Timestamp decided_at = decisions.empty() ? n.at : decisions.front().at;
  if (!n.event.is_null() && n.event.is_object()) {
    const std::string field = n.event.value("field", "");
    const nlohmann::json none;
    const nlohmann::json& old_value = n.event.contains("old") ? n.event["old"] : none;
    const nlohmann::json& new_value = n.event.contains("new") ? n.event["new"] : none;
    events.push_back({decided_at,
                      "change",
                      entity,
                      entry.id,
                      entity + " " + field + ": " + value_text(old_value) + " -> " + value_text(new_value),
                      {{"field", field}, {"old", old_value}, {"new", new_value}}});
  }
  nlohmann::json message{{"rule", n.rule},
                         {"kind", to_string(n.kind)},
                         {"channel", to_string(n.channel)},
                         {"to", n.to},
                         {"status", to_string(entry.status)},
                         {"attempts", entry.attempts},
                         {"due", format_rfc3339(n.at)},
                         {"subject", n.subject ? nlohmann::json(*n.subject) : nlohmann::json()},
                         {"body", n.body},
                         {"locale", n.locale}};
  if (!entry.last_error.empty()) message["last_error"] = entry.last_error;
  // Why it was queued: that it waits (quiet hours, the daily cap), or what it is.
  const std::string why = decisions.empty() || decisions.front().decision != "queued" ? "" : decisions.front().reason;
  message["reason"] = why;
  events.push_back({decided_at, "decided", entity, entry.id,
                    std::string(to_string(n.kind)) + " by " + std::string(to_string(n.channel)) + " to " + n.to +
                        " (rule " + n.rule + "); now " + std::string(to_string(entry.status)) +
                        (why.empty() ? "" : "; " + why),
                    std::move(message)});
  for (const OutboxDecision& d : decisions) {
    std::string type = "decision";
    if (d.decision == "queued") {
      // The pipeline words a deferral "waits until ..."; anything else the
      // decided event says.
      if (!d.reason.starts_with("waits until")) continue;
      type = "held_back";
    } else if (d.decision == "held back") {
      type = "held_back";
    } else if (d.decision == "overtaken" || d.decision == "dropped") {
      type = d.decision;
    }
    events.push_back({d.at,
                      type,
                      entity,
                      entry.id,
                      d.decision + (d.reason.empty() ? "" : ": " + d.reason),
                      {{"decision", d.decision}, {"reason", d.reason}}});
  }
  for (const DeliveryAttempt& a : attempts) {
    events.push_back({a.at,
                      "attempt",
                      entity,
                      entry.id,
                      "attempt " + std::to_string(a.number) + ": " + a.outcome +
                          (a.detail.empty() ? "" : " (" + one_line(a.detail, 200) + ")"),
                      {{"number", a.number}, {"outcome", a.outcome}, {"detail", a.detail}}});
  }
}

// Keeps the first `limit` of `rows` (the newest) and says whether there were more.
template <typename T>
bool cut(std::vector<T>& rows, std::size_t limit) {
  if (rows.size() <= limit) return false;
  rows.resize(limit);
  return true;
}

std::string local_time(Timestamp t, std::string_view zone) {
  const LocalTime local = to_local(t, zone);
  char text[32];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u %02d:%02d:%02d", local.year, local.month, local.day, local.hour,
                local.minute, local.second);
  return text;
}

HttpResponse answer(int status, const nlohmann::json& body) {
  return HttpResponse{
      status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json", {}};
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a path segment; nullopt on a broken escape.
std::optional<std::string> percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex_digit(text[i + 1]);
    const int low = hex_digit(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

}  // namespace

std::string customer_id_problem(std::string_view id) {
  if (id.empty()) return "the customer id is empty";
  if (id.size() > kMaxCustomerIdBytes)
    return "the customer id is " + std::to_string(id.size()) + " bytes long; at most " +
           std::to_string(kMaxCustomerIdBytes) + " are allowed";
  for (std::size_t i = 0; i < id.size(); ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f)
      return "the customer id has a control character (byte " + std::to_string(c) + ") at position " +
             std::to_string(i + 1);
  }
  return {};
}

Timeline build_timeline(const Store& store, const std::string& customer, Timestamp now, std::size_t limit) {
  Timeline timeline;
  timeline.customer = customer;
  timeline.limit = std::clamp<std::size_t>(limit, 1, kMaxTimelineLimit);
  const std::size_t rows = timeline.limit + 1;  // one more tells whether there are more

  std::vector<Entity> entities = store.customer_entities(customer, rows);
  std::vector<OutboxEntry> outbox = store.customer_outbox(customer, rows);
  std::vector<Reply> replies = store.customer_replies(customer, rows);
  std::vector<NotMade> not_made = store.customer_not_made(customer, rows);
  const std::vector<OptOut> opt_outs = store.customer_opt_outs(customer);
  timeline.known = !entities.empty() || !outbox.empty() || !replies.empty() || !opt_outs.empty() || !not_made.empty();
  if (!timeline.known) return timeline;
  timeline.truncated = cut(entities, timeline.limit) | cut(outbox, timeline.limit) | cut(replies, timeline.limit) |
                       cut(not_made, timeline.limit);

  std::vector<TimelineEvent>& events = timeline.events;
  bool customer_seen = false;
  for (auto it = entities.rbegin(); it != entities.rend(); ++it) {
    const Entity& e = *it;
    const std::string ref = e.ref.str();
    if (e.ref.type == EntityType::kCustomer) {
      customer_seen = true;
      timeline.name = text_field(e.fields, "name");
      timeline.time_zone = text_field(e.fields, "timezone");
    }
    const Timestamp first = e.first_seen.value_or(e.observed_at);
    if (first == e.observed_at) {
      events.push_back({first, "first_seen", ref, 0, "first known: " + entity_summary(e), {{"fields", e.fields}}});
    } else {
      events.push_back({first, "first_seen", ref, 0, "first known: " + e.ref.str(), nlohmann::json::object()});
      events.push_back(
          {e.observed_at, "observed", ref, 0, "latest snapshot: " + entity_summary(e), {{"fields", e.fields}}});
    }
    if (auto pause = store.paused(e.ref, now)) timeline.paused.push_back({ref, pause->until, pause->reason});
  }
  if (!customer_seen) {
    const EntityRef ref{EntityType::kCustomer, customer};
    if (auto pause = store.paused(ref, now)) timeline.paused.push_back({ref.str(), pause->until, pause->reason});
  }
  for (auto it = replies.rbegin(); it != replies.rend(); ++it) {
    const Reply& r = *it;
    const std::string about = r.entity ? r.entity->str() : "";
    events.push_back(
        {r.at,
         "reply",
         about,
         0,
         std::string(r.stop ? "STOP " : "") + "reply by " + std::string(to_string(r.channel)) + " from " + r.from +
             ": " + one_line(r.text, 200),
         {{"channel", to_string(r.channel)},
          {"from", r.from},
          {"subject", r.subject ? nlohmann::json(*r.subject) : nlohmann::json()},
          {"text", r.text},
          {"stop", r.stop},
          {"about", about.empty() ? nlohmann::json() : nlohmann::json(about)},
          {"forwarded_at", r.forwarded_at ? nlohmann::json(format_rfc3339(*r.forwarded_at)) : nlohmann::json()}}});
  }
  for (const OptOut& o : opt_outs) {
    events.push_back({o.at,
                      "opt_out",
                      "",
                      0,
                      "opted out of " + std::string(to_string(o.channel)),
                      {{"channel", to_string(o.channel)}, {"reply", o.reply_id}}});
    if (o.ended_at)
      events.push_back({*o.ended_at,
                        "opt_in",
                        "",
                        0,
                        "opted in again to " + std::string(to_string(o.channel)),
                        {{"channel", to_string(o.channel)}, {"reply", o.ended_by_reply}}});
  }
  for (auto it = outbox.rbegin(); it != outbox.rend(); ++it) add_message(store, *it, events);
  for (auto it = not_made.rbegin(); it != not_made.rend(); ++it)
    events.push_back({it->at,
                      "not_made",
                      it->entity.str(),
                      0,
                      "rule " + it->rule + " made no message (" + it->code + "): " + one_line(it->reason, 200),
                      {{"rule", it->rule}, {"code", it->code}, {"reason", it->reason}}});

  std::stable_sort(events.begin(), events.end(), [](const TimelineEvent& a, const TimelineEvent& b) {
    if (a.at != b.at) return a.at < b.at;
    return rank(a.type) < rank(b.type);
  });
  if (events.size() > timeline.limit) {
    events.erase(events.begin(), events.end() - static_cast<std::ptrdiff_t>(timeline.limit));
    timeline.truncated = true;
  }
  return timeline;
}

nlohmann::json to_json(const Timeline& timeline, std::string_view zone) {
  auto paused = nlohmann::json::array();
  for (const auto& p : timeline.paused)
    paused.push_back({{"entity", p.entity}, {"until", format_rfc3339(p.until, zone)}, {"reason", p.reason}});
  auto events = nlohmann::json::array();
  for (const auto& e : timeline.events) {
    nlohmann::json item{{"at", format_rfc3339(e.at, zone)},
                        {"type", e.type},
                        {"entity", e.entity.empty() ? nlohmann::json() : nlohmann::json(e.entity)},
                        {"message", e.message ? nlohmann::json(e.message) : nlohmann::json()},
                        {"summary", e.summary}};
    for (const auto& [key, value] : e.detail.items()) item[key] = value;
    events.push_back(std::move(item));
  }
  return {{"customer", timeline.customer},   {"known", timeline.known},    {"name", timeline.name},
          {"time_zone", timeline.time_zone}, {"limit", timeline.limit},    {"truncated", timeline.truncated},
          {"paused", std::move(paused)},     {"events", std::move(events)}};
}

std::string to_text(const Timeline& timeline, std::string_view zone) {
  std::ostringstream out;
  const std::string shown_zone = zone.empty() || !is_known_time_zone(zone) ? "UTC" : std::string(zone);
  out << "Customer " << timeline.customer;
  if (!timeline.name.empty()) out << " (" << timeline.name << ")";
  out << "; times in " << shown_zone;
  if (!timeline.time_zone.empty() && timeline.time_zone != shown_zone)
    out << " (the customer's zone is " << timeline.time_zone << ")";
  out << "\n";
  if (timeline.truncated)
    out << "Only the newest " << timeline.limit << " events are shown; older ones were left out (--limit).\n";
  for (const auto& p : timeline.paused)
    out << "Automated messages about " << p.entity << " are held back until " << local_time(p.until, shown_zone)
        << (p.reason.empty() ? "" : ": " + p.reason) << "\n";
  if (timeline.events.empty()) out << "Nothing is recorded for this customer.\n";
  for (const auto& e : timeline.events) {
    std::string type = e.type;
    std::replace(type.begin(), type.end(), '_', ' ');
    out << "\n" << local_time(e.at, shown_zone) << "  " << type;
    if (e.message) out << "  message " << e.message;
    out << "\n  " << e.summary << "\n";
    if (e.type == "decided" && e.detail.contains("body")) {
      if (e.detail["subject"].is_string()) out << "  | Subject: " << e.detail["subject"].get<std::string>() << "\n";
      std::istringstream body(e.detail["body"].get<std::string>());
      for (std::string line; std::getline(body, line);) out << "  | " << line << "\n";
    } else if (e.type == "reply") {
      if (e.detail["subject"].is_string()) out << "  > Subject: " << e.detail["subject"].get<std::string>() << "\n";
      std::istringstream text(e.detail["text"].get<std::string>());
      for (std::string line; std::getline(text, line);) out << "  > " << line << "\n";
    }
  }
  return out.str();
}

HttpResponse timeline_route(const Store& store, const HttpRequest& request, Timestamp now, std::string_view zone) {
  const std::string_view target = request.target;
  const std::size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query = question == std::string_view::npos ? "" : target.substr(question + 1);
  constexpr std::string_view kSuffix = "/timeline";
  if (!path.starts_with(kTimelineRoutePrefix) || !path.ends_with(kSuffix) ||
      path.size() < kTimelineRoutePrefix.size() + kSuffix.size())
    return answer(404, {{"error", "no such route; a customer's timeline is GET /v1/customers/{id}/timeline"}});
  const std::string_view raw =
      path.substr(kTimelineRoutePrefix.size(), path.size() - kTimelineRoutePrefix.size() - kSuffix.size());
  if (raw.find('/') != std::string_view::npos)
    return answer(404, {{"error",
                         "no such route; a customer's timeline is GET /v1/customers/{id}/timeline "
                         "(a '/' in the id is written %2F)"}});
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse refused = answer(405, {{"error", "use GET"}});
    refused.headers.emplace_back("Allow", "GET, HEAD");
    return refused;
  }
  const auto id = percent_decoded(raw);
  if (!id) return answer(400, {{"error", "the customer id has a broken percent escape"}});
  if (std::string problem = customer_id_problem(*id); !problem.empty()) return answer(400, {{"error", problem}});

  std::size_t limit = kDefaultTimelineLimit;
  for (std::size_t start = 0; start < query.size();) {
    const std::size_t end = std::min(query.find('&', start), query.size());
    const std::string_view pair = query.substr(start, end - start);
    start = end + 1;
    if (!pair.starts_with("limit=")) continue;  // other parameters play no part
    const std::string_view value = pair.substr(6);
    auto [stop, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
    if (ec != std::errc{} || stop != value.data() + value.size() || limit < 1 || limit > kMaxTimelineLimit)
      return answer(400, {{"error", "limit must be a number from 1 to " + std::to_string(kMaxTimelineLimit) +
                                        ", not '" + std::string(value) + "'"}});
  }
  const Timeline timeline = build_timeline(store, *id, now, limit);
  if (!timeline.known)
    return answer(
        404, {{"error", "no customer '" + *id + "' is known: nothing observed, sent or received"}, {"customer", *id}});
  return answer(200, to_json(timeline, zone));
}

}  // namespace tactd
