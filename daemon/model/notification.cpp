#include "model/notification.h"

#include <array>
#include <cctype>

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

std::string address_key(Channel channel, std::string_view address) {
  std::string out;
  if (channel == Channel::kSms) {
    for (const char c : address)
      if (std::isdigit(static_cast<unsigned char>(c))) out += c;
    return out;
  }
  if (const auto open = address.rfind('<'); open != std::string_view::npos) {
    const auto close = address.find('>', open);
    address = address.substr(open + 1, close == std::string_view::npos ? std::string_view::npos : close - open - 1);
  }
  for (const char c : address)
    if (!std::isspace(static_cast<unsigned char>(c)))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace tactd
