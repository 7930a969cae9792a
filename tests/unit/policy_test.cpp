#include "rules/policy.h"
#include "store/store.h"

#include <catch2/catch.hpp>

using namespace tactd;
using namespace std::chrono_literals;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

Rule rule(std::vector<Channel> channels, bool once = false, Duration cooldown = Duration::zero()) {
  Rule r;
  r.id = "r";
  r.kind = Kind::kApology;
  r.template_name = "t";
  r.channels = std::move(channels);
  r.once = once;
  r.cooldown = cooldown;
  return r;
}

Intent intent(const char* entity = "A", const char* trigger = "status=\"cancelled\"@t1") {
  return Intent{"r", Kind::kApology, EntityRef{EntityType::kOrder, entity}, "c-1", trigger, at("2026-11-20T10:00:00Z")};
}

Notification sent(const Intent& i, bool once, Timestamp when) {
  Notification n;
  n.idempotency_key = idempotency_key(i, once);
  n.at = when;
  n.rule = i.rule;
  n.kind = i.kind;
  n.customer = i.customer;
  n.entity = i.entity;
  n.channel = Channel::kEmail;
  n.to = "x@example.com";
  n.body = "b";
  return n;
}

const nlohmann::json kCustomer = {{"email", "a@example.com"}, {"phone", "+31600000000"}, {"prefers", "sms"}};

struct Fixture {
  Config config;
  std::unique_ptr<Store> store = Store::open_temporary();
  Policy policy{config, *store, *store};
};

}  // namespace

TEST_CASE("the customer's preferred channel comes first when the rule allows it") {
  Fixture f;
  const Decision d = f.policy.decide(rule({Channel::kEmail, Channel::kSms}), intent(), kCustomer, intent().at);
  CHECK(d.verdict == Decision::Verdict::kSend);
  CHECK(d.channel == Channel::kSms);
  CHECK(d.to == "+31600000000");
}

TEST_CASE("a preference the rule does not allow is ignored") {
  Fixture f;
  const Decision d = f.policy.decide(rule({Channel::kEmail}), intent(), kCustomer, intent().at);
  CHECK(d.channel == Channel::kEmail);
  CHECK(d.to == "a@example.com");
}

TEST_CASE("no phone number falls back to email") {
  Fixture f;
  const nlohmann::json customer = {{"email", "a@example.com"}, {"prefers", "sms"}};
  const Decision d = f.policy.decide(rule({Channel::kSms, Channel::kEmail}), intent(), customer, intent().at);
  CHECK(d.verdict == Decision::Verdict::kSend);
  CHECK(d.channel == Channel::kEmail);
}

TEST_CASE("a customer no channel can reach gets a clear diagnostic") {
  Fixture f;
  const nlohmann::json customer = {{"name", "Eve"}, {"email", ""}};
  const Decision d = f.policy.decide(rule({Channel::kSms, Channel::kEmail}), intent(), customer, intent().at);
  CHECK(d.verdict == Decision::Verdict::kUnreachable);
  CHECK(d.reason ==
        "no channel can reach customer 'c-1' for rule 'r': no phone number for sms, no email address for email");
}

TEST_CASE("an unknown customer cannot be reached") {
  Fixture f;
  const Decision d = f.policy.decide(rule({Channel::kSms}), intent(), nullptr, intent().at);
  CHECK(d.verdict == Decision::Verdict::kUnreachable);
  CHECK(d.reason == "customer 'c-1' is unknown: no observation of that customer has been seen");
}

TEST_CASE("an opted-out customer gets nothing") {
  Fixture f;
  nlohmann::json customer = kCustomer;
  customer["opt_out"] = true;
  const Decision d = f.policy.decide(rule({Channel::kSms}), intent(), customer, intent().at);
  CHECK(d.verdict == Decision::Verdict::kHeldBack);
  CHECK(d.reason == "the customer opted out");
  customer["opt_out"] = false;
  CHECK(f.policy.decide(rule({Channel::kSms}), intent(), customer, intent().at).verdict == Decision::Verdict::kSend);
}

TEST_CASE("a 'once' rule sends one message per entity, whatever the trigger") {
  Fixture f;
  const Rule once = rule({Channel::kSms}, true);
  REQUIRE(f.store->enqueue(sent(intent("A", "first"), true, intent().at)));
  const Decision again = f.policy.decide(once, intent("A", "second"), kCustomer, intent().at + 1h);
  CHECK(again.verdict == Decision::Verdict::kHeldBack);
  CHECK(again.reason == "already sent once for order/A");
  CHECK(f.policy.decide(once, intent("B", "first"), kCustomer, intent().at + 1h).verdict == Decision::Verdict::kSend);
}

TEST_CASE("without 'once' the same change is still never sent twice") {
  Fixture f;
  const Rule repeatable = rule({Channel::kSms});
  REQUIRE(f.store->enqueue(sent(intent("A", "t1"), false, intent().at)));
  CHECK(f.policy.decide(repeatable, intent("A", "t1"), kCustomer, intent().at).reason ==
        "already sent for this change");
  CHECK(f.policy.decide(repeatable, intent("A", "t2"), kCustomer, intent().at).verdict == Decision::Verdict::kSend);
}

TEST_CASE("a cooldown holds back the rule's next message to the same customer until it has passed") {
  Fixture f;
  const Rule cooling = rule({Channel::kSms}, false, 2h);
  REQUIRE(f.store->enqueue(sent(intent("A", "t1"), false, at("2026-11-20T10:00:00Z"))));
  const Decision soon = f.policy.decide(cooling, intent("B", "t2"), kCustomer, at("2026-11-20T11:59:59Z"));
  CHECK(soon.verdict == Decision::Verdict::kHeldBack);
  CHECK(soon.reason == "in cooldown: this rule last wrote to the customer at 2026-11-20T10:00:00Z");
  CHECK(f.policy.decide(cooling, intent("B", "t2"), kCustomer, at("2026-11-20T12:00:00Z")).verdict ==
        Decision::Verdict::kSend);
}

TEST_CASE("the daily cap per customer delays a message until it fits in the rolling 24 hours") {
  Fixture f;
  f.config.max_per_customer_per_day = 2;
  f.store->enqueue(sent(intent("A", "t1"), false, at("2026-11-20T08:00:00Z")));
  f.store->enqueue(sent(intent("B", "t1"), false, at("2026-11-20T09:00:00Z")));
  const Decision capped =
      f.policy.decide(rule({Channel::kSms}), intent("C", "t1"), kCustomer, at("2026-11-20T10:00:00Z"));
  CHECK(capped.verdict == Decision::Verdict::kSend);
  CHECK(capped.send_at == at("2026-11-21T08:00:00Z"));  // when the 08:00 message leaves the window
  f.store->enqueue(sent(intent("C", "t1"), false, capped.send_at));
  // The next one waits for the 09:00 message to leave, past the one already waiting.
  CHECK(f.policy.decide(rule({Channel::kSms}), intent("D", "t1"), kCustomer, at("2026-11-20T11:00:00Z")).send_at ==
        at("2026-11-21T09:00:00Z"));
  CHECK(f.policy.decide(rule({Channel::kSms}), intent("E", "t1"), kCustomer, at("2026-11-22T12:00:00Z")).send_at ==
        at("2026-11-22T12:00:00Z"));
}

TEST_CASE("a message delayed by the cap into quiet hours waits for the morning") {
  Fixture f;
  f.config.max_per_customer_per_day = 1;
  f.config.quiet_hours = Config::QuietHours{21 * 60, 8 * 60};
  f.store->enqueue(sent(intent("A", "t1"), false, at("2026-11-20T22:00:00Z")));
  CHECK(f.policy.decide(rule({Channel::kSms}), intent("B", "t1"), kCustomer, at("2026-11-20T23:00:00Z")).send_at ==
        at("2026-11-22T08:00:00Z"));
}

TEST_CASE("quiet hours hold a non-urgent message until they end in the customer's zone") {
  Fixture f;
  f.config.quiet_hours = Config::QuietHours{21 * 60, 8 * 60};
  nlohmann::json customer = kCustomer;
  customer["timezone"] = "Europe/Amsterdam";
  const Rule normal = rule({Channel::kSms});
  // 22:30 in Amsterdam: held until 08:00 the next morning.
  Decision d = f.policy.decide(normal, intent(), customer, at("2026-11-20T21:30:00Z"));
  CHECK(d.verdict == Decision::Verdict::kSend);
  CHECK(d.send_at == at("2026-11-21T07:00:00Z"));
  // 03:00 in Amsterdam: held until 08:00 the same day.
  CHECK(f.policy.decide(normal, intent(), customer, at("2026-11-21T02:00:00Z")).send_at == at("2026-11-21T07:00:00Z"));
  // 08:00 exactly: quiet hours are over.
  CHECK(f.policy.decide(normal, intent(), customer, at("2026-11-21T07:00:00Z")).send_at == at("2026-11-21T07:00:00Z"));
  // 20:59: not yet quiet.
  CHECK(f.policy.decide(normal, intent(), customer, at("2026-11-20T19:59:00Z")).send_at == at("2026-11-20T19:59:00Z"));
  // An urgent rule is sent at once.
  Rule urgent = normal;
  urgent.urgent = true;
  CHECK(f.policy.decide(urgent, intent(), customer, at("2026-11-20T21:30:00Z")).send_at == at("2026-11-20T21:30:00Z"));
}

TEST_CASE("quiet hours that do not wrap past midnight, and a customer without a zone") {
  Fixture f;
  f.config.quiet_hours = Config::QuietHours{12 * 60, 13 * 60};
  f.config.default_time_zone = "UTC";
  const Decision d = f.policy.decide(rule({Channel::kSms}), intent(), kCustomer, at("2026-11-20T12:15:00Z"));
  CHECK(d.send_at == at("2026-11-20T13:00:00Z"));
  CHECK(customer_time_zone(kCustomer, f.config) == "UTC");
  CHECK(customer_time_zone({{"timezone", "Asia/Tokyo"}}, f.config) == "Asia/Tokyo");
  CHECK(customer_time_zone({{"timezone", "Mars/Base"}}, f.config) == "UTC");
}
