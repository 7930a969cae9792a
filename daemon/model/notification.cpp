#include "model/notification.h"

#include <array>

namespace tactd {
namespace {

constexpr std::array<std::pair<Kind, std::string_view>, 7> kKinds{{
    {Kind::kApology, "apology"},
    {Kind::kExplanation, "explanation"},
    {Kind::kPriceChangeReason, "price_change_reason"},
    {Kind::kThankYou, "thank_you"},
    {Kind::kHeadsUp, "heads_up"},
    {Kind::kFollowUp, "follow_up"},
    {Kind::kCheckIn, "check_in"},
}};

}  // namespace

std::string_view to_string(Kind kind) {
  for (const auto& [k, name] : kKinds)
    if (k == kind) return name;
  return "?";
}

std::optional<Kind> parse_kind(std::string_view text) {
  for (const auto& [k, name] : kKinds)
    if (name == text) return k;
  return std::nullopt;
}

std::string_view kind_list() {
  return "apology, explanation, price_change_reason, thank_you, heads_up, follow_up, check_in";
}

std::string_view to_string(Channel channel) { return channel == Channel::kEmail ? "email" : "sms"; }

std::optional<Channel> parse_channel(std::string_view text) {
  if (text == "email") return Channel::kEmail;
  if (text == "sms") return Channel::kSms;
  return std::nullopt;
}

std::string idempotency_key(const Intent& intent, bool once) {
  std::string key = intent.rule + ":" + intent.entity.str();
  if (!once) key += ":" + intent.trigger;
  return key;
}

}  // namespace tactd
