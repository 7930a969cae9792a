// Intents (what a rule wants to say) and notifications (what policy and
// rendering made of it).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/entity.h"
#include "model/time.h"

namespace tactd {

// The message kinds of DESIGN.md.
enum class Kind { kApology, kExplanation, kPriceChangeReason, kThankYou, kHeadsUp, kFollowUp, kCheckIn };

std::string_view to_string(Kind kind);
std::optional<Kind> parse_kind(std::string_view text);
std::string_view kind_list();

enum class Channel { kEmail, kSms };

std::string_view to_string(Channel channel);
std::optional<Channel> parse_channel(std::string_view text);

// A rule's wish to contact a customer about an entity.
struct Intent {
  std::string rule;
  Kind kind = Kind::kApology;
  EntityRef entity;
  std::string customer;
  // What made the rule fire: identifies the trigger instance, so that the
  // idempotency key is deterministic (e.g. "status=cancelled@2026-11-20T16:30:00Z").
  std::string trigger;
  Timestamp at;
};

// The deterministic idempotency key of an intent: rule, entity and trigger
// instance. With `once` the trigger instance is left out, so the key is
// unique per rule and entity.
std::string idempotency_key(const Intent& intent, bool once);

// An address as replies and opt-outs compare it: for email the address
// itself (the part in <...> when there is one), trimmed and in lower case;
// for SMS the number's digits only ("+31 6-1234 5678" -> "31612345678"):
// providers post numbers with and without the '+'.
std::string address_key(Channel channel, std::string_view address);

// A rendered message, ready for the outbox.
struct Notification {
  std::string idempotency_key;
  Timestamp at;  // when it is due to be sent
  std::string rule;
  Kind kind = Kind::kApology;
  std::string customer;
  EntityRef entity;
  Channel channel = Channel::kEmail;
  std::string to;
  std::optional<std::string> subject;  // email only
  std::string body;
  std::string locale;
  std::string time_zone;  // the customer's IANA zone, for showing `at` locally
  // The change that triggered it ({"field", "old", "new"}), so that it can
  // be rendered again when it is released; null for timers.
  nlohmann::json event;
  // The [[action]] its rule takes before it is sent (a voucher's API); empty:
  // none. The delivery side takes it once, stores the answer with the outbox
  // row, and renders the message again with it.
  std::string action;
  // What the action answered (a JSON object), once taken; null while it is
  // still to be taken, when it failed for good, or without an action.
  nlohmann::json action_answer;
  // Email only: where the recipient's reply goes ("Anna <anna@example.nl>")
  // when not to the channel's `from`. Only a reply forwarded to support sets
  // it; the outbox does not store it.
  std::optional<std::string> reply_to = std::nullopt;
};

// One contact with a customer: the memory that policies and templates use.
struct Contact {
  std::string customer;
  Timestamp at;
  Kind kind = Kind::kApology;
  std::string rule;
  EntityRef entity;
  Channel channel = Channel::kEmail;
  std::string idempotency_key;
};

}  // namespace tactd
