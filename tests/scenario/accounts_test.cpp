// Stories 2 (price change with its reason) and 6 (payment difficulty), and
// supersession between rules.
#include <catch2/catch.hpp>

#include "scenario/scenario.h"

using namespace tactd::test;
using Catch::Contains;

namespace {

std::string subscription(const char* at, nlohmann::json fields) {
  fields["customer"] = "c-42";
  fields["merchant"] = "Sportschool Fit";
  return obs("subscription", "SUB-1", at, fields);
}

}  // namespace

TEST_CASE(
    "story 2: a price change with enough notice is explained at once: old and new price, reason, date, how to say no") {
  const Run run = simulate_lines({
      kAnna,
      subscription("2026-11-20T10:00:00+01:00", {{"plan", "yoga"}, {"price", 12.50}, {"currency", "EUR"}}),
      subscription("2026-11-21T10:00:00+01:00", {{"next_price", 22.00},
                                                 {"price_effective", "2027-01-01"},
                                                 {"price_reason", "de huur van onze zaal is verdubbeld"}}),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  const auto& n = run.sent[0];
  CHECK(n["kind"] == "price_change_reason");
  CHECK(n["at"] == "2026-11-21T10:00:00+01:00");
  const std::string body = n["body"];
  CHECK_THAT(body, Contains("€ 12,50") && Contains("€ 22,00") && Contains("1 januari 2027") &&
                       Contains("de huur van onze zaal is verdubbeld") && Contains("STOP"));
}

TEST_CASE("story 2: a price change with less than the minimum notice is reported to operators, not rushed") {
  const Run run = simulate_lines({
      kAnna,
      subscription("2026-11-20T10:00:00+01:00", {{"plan", "yoga"}, {"price", 12.50}}),
      subscription("2026-11-20T11:00:00+01:00",
                   {{"next_price", 22.00}, {"price_effective", "2026-11-21"}, {"price_reason", "hogere huur"}}),
  });
  CHECK(run.status == 0);
  CHECK(run.sent.empty());
  CHECK_THAT(run.err, Contains("input.jsonl:3: subscription/SUB-1: rule 'price-change': the change takes effect "
                               "2026-11-21T00:00:00Z, only 14 hours from now; the minimum notice is 30 days (short by "
                               "29 days)"));
}

TEST_CASE(
    "story 2: a price rise without a reason reaches no customer, and operators hear what the subscription lacks") {
  const Run run = simulate_lines({
      kAnna,
      kBen,
      subscription("2026-11-20T10:00:00+01:00", {{"plan", "yoga"}, {"price", 12.50}}),
      subscription("2026-11-21T10:00:00+01:00", {{"next_price", 22.00}, {"price_effective", "2027-01-01"}}),
      obs("subscription", "SUB-2", "2026-11-21T11:00:00+01:00",
          {{"customer", "c-7"},
           {"price", 9.00},
           {"next_price", 15.00},
           {"price_effective", "2027-01-01"},
           {"price_reason", "  "}}),
  });
  CHECK(run.status == 0);
  CHECK(run.sent.empty());
  CHECK_THAT(run.err, Contains("input.jsonl:4: subscription/SUB-1: rule 'price-change': subscription/SUB-1 has no "
                               "price_reason, which the message cannot go without. Not sent to the customer"));
  // Blank is as good as absent.
  CHECK_THAT(run.err, Contains("input.jsonl:5: subscription/SUB-2: rule 'price-change': subscription/SUB-2 has no "
                               "price_reason,"));
}

TEST_CASE("story 2 in English: a price rise with its reason is explained by email, in the customer's words") {
  const Run run = simulate_lines({
      kBen,
      obs("subscription", "SUB-3", "2026-11-20T10:00:00Z",
          {{"customer", "c-7"}, {"plan", "pilates"}, {"price", 9.00}, {"currency", "GBP"}}),
      obs("subscription", "SUB-3", "2026-11-21T10:00:00Z",
          {{"next_price", 15.00}, {"price_effective", "2027-01-01"}, {"price_reason", "our studio's rent doubled"}}),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  const auto& n = run.sent[0];
  CHECK(n["channel"] == "email");
  CHECK(n["kind"] == "price_change_reason");
  CHECK_THAT(n["subject"].get<std::string>(), Contains("1 January 2027"));
  CHECK_THAT(n["body"].get<std::string>(), Contains("£9.00") && Contains("£15.00") &&
                                               Contains("our studio's rent doubled") && Contains("1 January 2027"));
  CHECK(run.err.empty());
}

TEST_CASE("story 6: a customer in payment difficulty with an overdue payment is offered an arrangement, never dunned") {
  nlohmann::json anna = nlohmann::json::parse(kAnna);
  anna["fields"]["situations"] = {"payment_difficulty"};
  anna["fields"]["prefers"] = "email";
  const Run run = simulate_lines({
      anna.dump(),
      obs("payment", "P-1", "2026-11-20T10:00:00+01:00",
          {{"customer", "c-42"}, {"status", "due"}, {"amount", 49.95}, {"due_date", "2026-11-19"}}),
      obs("payment", "P-1", "2026-11-21T10:00:00+01:00", {{"status", "overdue"}}),
      obs("payment", "P-2", "2026-11-22T10:00:00+01:00",
          {{"customer", "c-7"}, {"status", "overdue"}, {"amount", 10}}),  // Ben: no difficulty, no message
      kBen,
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  const auto& n = run.sent[0];
  CHECK(n["kind"] == "explanation");
  CHECK(n["customer"] == "c-42");
  const std::string body = n["body"];
  CHECK_THAT(body, Contains("€ 49,95") && Contains("betalingsregeling") && Contains("19 november 2026"));
  for (const char* dunning : {"incasso", "aanmaning", "deurwaarder", "final notice", "laatste herinnering"})
    CHECK_THAT(body, !Contains(dunning, Catch::CaseSensitive::No));
}

TEST_CASE("supersession: a cancellation drops the delivery news still waiting for quiet hours to end") {
  const Run run = simulate_lines({
      kAnna,
      order("L-9", "c-42", "2026-11-20T20:00:00+01:00", "shipped"),
      obs("shipment", "S-9", "2026-11-20T23:10:00+01:00", {{"order", "L-9"}, {"status", "delivery_failed"}}),
      order("L-9", "c-42", "2026-11-21T06:30:00+01:00", "cancelled"),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["rule"] == "order-cancelled");
  CHECK(run.sent[0]["at"] == "2026-11-21T06:30:00+01:00");
}

TEST_CASE("supersession: a waiting apology that the delivery overtook holds nothing back and is not sent") {
  const Run run = simulate_lines({
      kAnna,
      order("L-8", "c-42", "2026-11-20T20:00:00+01:00", "shipped", {{"promised_by", "2026-11-20T22:00:00+01:00"}}),
      order("L-8", "c-42", "2026-11-20T22:30:00+01:00", "delivered", {{"promised_by", "2026-11-20T22:00:00+01:00"}}),
  });
  INFO(run.err);
  // 21:30 heads-up and 22:00 apology wait for 08:00; the delivery at 22:30
  // overtakes both (DESIGN.md invariant 8: "it is not there yet" would be
  // false in the morning), and the follow-up follows up on no contact.
  CHECK(run.sent.empty());
}
