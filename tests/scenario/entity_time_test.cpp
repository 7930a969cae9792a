// Time goes forward per entity: a stale snapshot (a carrier's cached page, a
// feed polled late) changes nothing; of two with the same time the later
// arrival wins. A partial update changes only the fields it names.
#include <catch2/catch.hpp>

#include "scenario/scenario.h"

using namespace tactd;
using namespace tactd::test;
using Catch::Contains;

namespace {

// Anna's customer record at `at` with another phone number.
std::string anna_with_phone(const char* at, const char* phone) {
  nlohmann::json anna = anna_at(at);
  anna["fields"]["phone"] = phone;
  return anna.dump();
}

std::string cancelled(const char* at) {
  return order("A-1", "c-42", at, "cancelled", {{"cancel_reason", "kitchen overloaded"}});
}

}  // namespace

TEST_CASE("a stale customer record after a fresh one: the apology goes to the number she has now") {
  const Run run = simulate_lines({
      kAnna,                                                         // 09:00, +31612345678
      anna_with_phone("2026-11-20T12:00:00+01:00", "+31687654321"),  // she changed her number
      anna_with_phone("2026-11-20T09:00:00+01:00", "+31612345678"),  // a cached page of 09:00, late
      order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"),
      cancelled("2026-11-20T17:30:00+01:00"),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["to"] == "+31687654321");
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), Contains("Hoi Anna") && Contains("kitchen overloaded"));
  CHECK_THAT(run.err, Contains("customer/c-42: stale: observed 2026-11-20T08:00:00Z, older than what is known "
                               "(observed 2026-11-20T11:00:00Z); ignored"));
}

TEST_CASE("a stale order status after the cancellation sends nothing wrong and undoes nothing") {
  // The kitchen's feed serves a page from before the cancellation: the order
  // does not go back to "preparing", and seeing the cancellation again later
  // is no new cancellation.
  const Run run = simulate_text({
      kBen,
      order("A-1", "c-7", "2026-11-20T17:00:00+01:00", "preparing"),
      order("A-1", "c-7", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
      order("A-1", "c-7", "2026-11-20T17:10:00+01:00", "preparing"),
      order("A-1", "c-7", "2026-11-20T17:45:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
  });
  INFO(run.err);
  CHECK_THAT(run.text, Contains("order/A-1  stale: observed 2026-11-20T16:10:00Z, older than what is known "
                                "(observed 2026-11-20T16:30:00Z); ignored"));
  // One apology, in English, by email: nothing else.
  CHECK_THAT(run.text, Contains("order/A-1  apology (order-cancelled) to c-7 by email ben@example.com [en]"));
  CHECK(run.text.find("apology (", run.text.find("apology (") + 1) == std::string::npos);
  CHECK_THAT(run.text, Contains("kitchen overloaded"));
}

TEST_CASE("an unchanged re-observation moves the entity's time: an older page after it is stale") {
  // The feed repeats the cancellation at 17:45; a cached page of 17:40 that
  // still says "preparing" is older than what is known and changes nothing.
  const Run run = simulate_text({
      kBen,
      order("A-1", "c-7", "2026-11-20T17:00:00+01:00", "preparing"),
      order("A-1", "c-7", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
      order("A-1", "c-7", "2026-11-20T17:45:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
      order("A-1", "c-7", "2026-11-20T17:40:00+01:00", "preparing"),
      order("A-1", "c-7", "2026-11-20T17:50:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
  });
  INFO(run.err);
  CHECK_THAT(run.text, Contains("order/A-1  stale: observed 2026-11-20T16:40:00Z, older than what is known "
                                "(observed 2026-11-20T16:45:00Z); ignored"));
  CHECK(run.text.find("apology (", run.text.find("apology (") + 1) == std::string::npos);
}

TEST_CASE("two records of the same moment: the one that arrived last decides, either way round") {
  const std::string first = anna_with_phone("2026-11-20T12:00:00+01:00", "+31611111111");
  const std::string second = anna_with_phone("2026-11-20T12:00:00+01:00", "+31622222222");
  for (const auto& [a, b, expected] : {std::tuple{first, second, "+31622222222"}, {second, first, "+31611111111"}}) {
    const Run run = simulate_lines({
        kAnna,
        a,
        b,
        order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"),
        cancelled("2026-11-20T17:30:00+01:00"),
    });
    INFO(run.err);
    REQUIRE(run.sent.size() == 1);
    CHECK(run.sent[0]["to"] == expected);
  }
}

TEST_CASE("a partial update changes only what it names: Anna keeps her name and language") {
  const std::string new_number = obs("customer", "c-42", "2026-11-20T12:00:00+01:00", {{"phone", "+31687654321"}});
  nlohmann::json partial = nlohmann::json::parse(new_number);
  partial["partial"] = true;
  const Run run = simulate_lines({
      kAnna,
      partial.dump(),
      order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"),
      cancelled("2026-11-20T17:30:00+01:00"),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["to"] == "+31687654321");
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), Contains("Hoi Anna") && Contains("het spijt ons"));
}

TEST_CASE("a full snapshot clears what it leaves out: without a phone Anna is written to by email") {
  nlohmann::json full = anna_at("2026-11-20T12:00:00+01:00");
  full["fields"].erase("phone");
  full["partial"] = false;
  const Run run = simulate_lines({
      kAnna,
      full.dump(),
      order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"),
      cancelled("2026-11-20T17:30:00+01:00"),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["channel"] == "email");
  CHECK(run.sent[0]["to"] == "anna@example.nl");
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), Contains("Anna") && Contains("kitchen overloaded"));
}
