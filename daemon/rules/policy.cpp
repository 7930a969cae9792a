#include "rules/policy.h"

#include <algorithm>

namespace tactd {
namespace {

constexpr Duration kCapWindow = std::chrono::hours{24};

std::string contact_detail(const nlohmann::json& customer, Channel channel) {
  return text_field(customer, channel == Channel::kEmail ? "email" : "phone");
}

Decision held_back(std::string code, std::string reason) {
  return Decision{Decision::Verdict::kHeldBack, std::move(reason), std::move(code), {}, {}, {}};
}

Decision unreachable(std::string code, std::string reason) {
  return Decision{Decision::Verdict::kUnreachable, std::move(reason), std::move(code), {}, {}, {}};
}

bool in_quiet_hours(int minute, const Config::QuietHours& quiet) {
  if (quiet.start < quiet.end) return minute >= quiet.start && minute < quiet.end;
  return minute >= quiet.start || minute < quiet.end;  // wraps past midnight
}

}  // namespace

Decision Policy::decide(const Rule& rule, const Intent& intent, const nlohmann::json& customer, Timestamp now) const {
  if (!customer.is_object())
    return unreachable("unknown_customer",
                       "customer '" + intent.customer + "' is unknown: no observation of that customer has been seen");
  if (auto opt_out = customer.find("opt_out"); opt_out != customer.end() && *opt_out == true)
    return held_back("opt_out", "the customer opted out");
  if (outbox_.has_notification(idempotency_key(intent, rule.once)))
    return held_back("duplicate",
                     rule.once ? "already sent once for " + intent.entity.str() : "already sent for this change");
  if (rule.cooldown > Duration::zero()) {
    if (auto last = outbox_.last_notification(rule.id, intent.customer); last && now - last->at < rule.cooldown)
      return held_back("cooldown", "in cooldown: this rule last wrote to the customer at " + format_rfc3339(last->at));
  }
  // The daily cap delays rather than drops: the message waits until it fits
  // in the rolling 24 hours (the list includes messages already waiting).
  Timestamp earliest = now;
  const auto recent = outbox_.notifications_since(intent.customer, now - kCapWindow);
  const auto cap = static_cast<size_t>(config_.max_per_customer_per_day);
  if (recent.size() >= cap) earliest = std::max(now, recent[recent.size() - cap].at + kCapWindow);

  std::vector<Channel> order = rule.channels;
  if (auto prefers = parse_channel(text_field(customer, "prefers")); prefers) {
    auto it = std::find(order.begin(), order.end(), *prefers);
    if (it != order.end()) std::rotate(order.begin(), it, it + 1);
  }
  // A reply to a message about this entity: a person is talking now.
  std::string paused_why;
  if (auto pause = contacts_.paused(intent.entity, now); pause && pause->until > earliest) {
    earliest = pause->until;
    paused_why = pause->reason;
  }
  std::optional<OptOut> opted_out;  // of a channel that could have reached the customer
  for (Channel channel : order) {
    std::string to = contact_detail(customer, channel);
    if (to.empty()) continue;
    if (auto o = contacts_.opt_out(intent.customer, channel, address_key(channel, to))) {
      if (!opted_out) opted_out = o;
      continue;
    }
    Timestamp send_at = earliest;
    std::string code = !paused_why.empty() ? "paused" : earliest > now ? "daily_cap" : "";
    if (config_.quiet_hours && !rule.urgent) {
      const std::string zone = customer_time_zone(customer, config_);
      const LocalTime local = to_local(send_at, zone);
      if (in_quiet_hours(local.hour * 60 + local.minute, *config_.quiet_hours)) {
        send_at = next_local_time(send_at, config_.quiet_hours->end, zone);
        code = "quiet_hours";
      }
    }
    return Decision{Decision::Verdict::kSend,
                    code == "paused" ? paused_why : std::string(),
                    std::move(code),
                    channel,
                    std::move(to),
                    send_at};
  }
  if (opted_out)
    return held_back("opt_out", "the customer opted out of " + std::string(to_string(opted_out->channel)) +
                                    " (replied STOP at " + format_rfc3339(opted_out->at) + ")");
  std::string missing;
  for (Channel channel : rule.channels)
    missing += std::string(missing.empty() ? "" : ", ") +
               (channel == Channel::kEmail ? "no email address for email" : "no phone number for sms");
  return unreachable("no_channel",
                     "no channel can reach customer '" + intent.customer + "' for rule '" + rule.id + "': " + missing);
}

std::string customer_time_zone(const nlohmann::json& customer, const Config& config) {
  const std::string zone = text_field(customer, "timezone");
  return is_known_time_zone(zone) ? zone : config.default_time_zone;
}

}  // namespace tactd
