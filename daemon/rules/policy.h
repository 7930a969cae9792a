// Policy: whether, and over which channel, an intent becomes a notification.
//
// In order: an unknown customer cannot be reached; an opted-out customer
// (their `opt_out` field) gets nothing; a notification with the same idempotency key is never made
// twice (`once` makes that key per rule and entity); a rule's cooldown per
// customer; the daily cap per customer across all rules (rolling 24 hours),
// which delays a message until it fits rather than dropping it;
// a pause of the entity (a reply: ReplyDesk) delays the message until it
// ends; then the channel: the customer's `prefers` first when the rule
// allows it, then the rule's order, skipping channels without a contact
// detail and channels the customer opted out of by replying STOP (held back
// "opt_out" when that leaves none); last
// the time: a non-urgent message decided during quiet hours (in the
// customer's time zone) waits until they end.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "model/notification.h"
#include "rules/rule_set.h"
#include "store/contact_store.h"
#include "store/outbox_store.h"

namespace tactd {

struct Decision {
  enum class Verdict {
    kSend,         // send over `channel` to `to`
    kHeldBack,     // deliberately not sent; `reason` says why
    kUnreachable,  // should be sent but cannot; `reason` is a diagnostic for operators
  };
  Verdict verdict = Verdict::kHeldBack;
  std::string reason;
  // A fixed word for metrics: held back "opt_out", "duplicate", "cooldown";
  // unreachable "unknown_customer", "no_channel"; sent later "daily_cap" or
  // "quiet_hours" or "paused" (empty when sent now). A send "paused" has the
  // pause's reason in `reason`.
  std::string code;
  Channel channel = Channel::kEmail;
  std::string to;
  Timestamp send_at;  // when to send: now, or later for the daily cap or quiet hours
};

// The customer's IANA time zone: their `timezone` when the system knows it,
// else the configured default.
std::string customer_time_zone(const nlohmann::json& customer, const Config& config);

class Policy {
 public:
  // `config`, `outbox` and `contacts` must outlive the Policy.
  Policy(const Config& config, const OutboxStore& outbox, const ContactStore& contacts)
      : config_(config), outbox_(outbox), contacts_(contacts) {}

  // `customer` holds the customer's fields, or null when the customer has
  // never been observed. Reads the store; changes nothing.
  Decision decide(const Rule& rule, const Intent& intent, const nlohmann::json& customer, Timestamp now) const;

 private:
  const Config& config_;
  const OutboxStore& outbox_;
  const ContactStore& contacts_;
};

}  // namespace tactd
