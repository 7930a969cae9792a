// Nothing is lost because of arrival order: a moment whose customer, order
// or address is not known yet waits for it (durably, [policy]
// wait_for_links; a timer within [timers] grace) and goes out as soon as it
// arrives, rendered with it.
#include <catch2/catch.hpp>

#include "scenario/scenario.h"

using namespace tactd;
using namespace tactd::test;
using Catch::Contains;

namespace {}  // namespace

TEST_CASE("an order cancelled before its customer was seen gets its apology as soon as the customer arrives") {
  const Run run = simulate_lines({
      order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"),
      order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
      anna_at("2026-11-20T17:40:00+01:00").dump(),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["rule"] == "order-cancelled");
  CHECK(run.sent[0]["at"] == "2026-11-20T17:40:00+01:00");
  CHECK(run.sent[0]["to"] == "+31612345678");
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), Contains("Anna") && Contains("kitchen overloaded"));
}

TEST_CASE("a customer who gains a phone number later gets the message that waited for it") {
  nlohmann::json anna = anna_at("2026-11-20T09:00:00+01:00");
  anna["fields"].erase("phone");
  anna["fields"].erase("email");
  nlohmann::json reachable = anna_at("2026-11-20T17:50:00+01:00");
  const Run run = simulate_lines({
      anna.dump(),
      order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"),
      order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
      reachable.dump(),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["at"] == "2026-11-20T17:50:00+01:00");
  CHECK(run.sent[0]["channel"] == "sms");
}

TEST_CASE("a customer who never arrives: the wait ends, nothing is sent, and operators are told") {
  const Run run = simulate_lines({
      order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"),
      order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
  });
  CHECK(run.sent.empty());
  CHECK_THAT(run.err, Contains("order/A-1: rule 'order-cancelled' waited since 2026-11-20T16:30:00") &&
                          Contains("for customer/c-42") && Contains("given up"));
}

TEST_CASE("a customer who arrives after the wait is over gets nothing late") {
  const Run run = simulate_lines({
      order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"),
      order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
      anna_at("2026-11-20T18:45:00+01:00").dump(),  // wait_for_links is 1h
  });
  CHECK(run.sent.empty());
  CHECK_THAT(run.err, Contains("given up"));
}

TEST_CASE("a failed delivery reported before its order was seen is explained once the order arrives") {
  const Run run = simulate_lines({
      kAnna,
      obs("shipment", "S-1", "2026-11-20T10:00:00+01:00",
          {{"order", "W-1"},
           {"carrier", "PostNL"},
           {"status", "delivery_failed"},
           {"exception_reason", "nobody home"}}),
      order("W-1", "c-42", "2026-11-20T10:20:00+01:00", "shipped", {{"merchant", "Webwinkel"}}),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["rule"] == "delivery-problem");
  CHECK(run.sent[0]["at"] == "2026-11-20T10:20:00+01:00");
  CHECK(run.sent[0]["entity"] == "shipment/S-1");
}

TEST_CASE("a broken promise whose customer is seen only after the deadline is apologised for within the grace") {
  const Run run = simulate_lines({
      order("L-1", "c-42", "2026-11-20T09:00:00+01:00", "shipped",
            {{"merchant", "Laptop Corner"}, {"promised_by", "2026-11-20T12:00:00+01:00"}}),
      anna_at("2026-11-20T13:00:00+01:00").dump(),
  });
  INFO(run.err);
  std::vector<std::string> rules;
  for (const auto& n : run.sent) rules.push_back(n["rule"].get<std::string>() + "@" + n["at"].get<std::string>());
  CHECK(rules == std::vector<std::string>{"delivery-promise-broken@2026-11-20T13:00:00+01:00"});
}
