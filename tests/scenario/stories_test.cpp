// The customer stories of DESIGN.md, each run through `simulate` with the
// shipped configuration, rules and templates.
#include <catch2/catch.hpp>

#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "scenario/scenario.h"
#include "support/temp_dir.h"

using namespace tactd;
using Catch::Contains;
using tactd::test::TempDir;

using namespace tactd::test;

TEST_CASE("story 1: a cancelled order gets one prompt apology with the reason and the refund") {
  const Run run = simulate_lines({
      kAnna,
      order("A-1001", "c-42", "2026-11-20T17:05:00+01:00", "placed"),
      order("A-1001", "c-42", "2026-11-20T17:30:00+01:00", "cancelled",
            {{"cancel_reason", "onze keuken is vanavond overbelast"}}),
  });
  INFO(run.err);
  CHECK(run.status == 0);
  REQUIRE(run.sent.size() == 1);
  const auto& n = run.sent[0];
  CHECK(n["at"] == "2026-11-20T17:30:00+01:00");
  CHECK(n["rule"] == "order-cancelled");
  CHECK(n["kind"] == "apology");
  CHECK(n["customer"] == "c-42");
  CHECK(n["entity"] == "order/A-1001");
  CHECK(n["channel"] == "sms");
  CHECK(n["to"] == "+31612345678");
  CHECK(n["subject"].is_null());
  const std::string body = n["body"];
  CHECK_THAT(body, Contains("onze keuken is vanavond overbelast"));
  CHECK_THAT(body, Contains("€ 31,40"));
  CHECK_THAT(body, Contains("Trattoria Da Marco"));
}

TEST_CASE("story 1 in English by email: the subject and the amount in the customer's locale") {
  const Run run = simulate_lines({
      kBen,
      order("A-2", "c-7", "2026-11-20T17:05:00Z", "placed"),
      order("A-2", "c-7", "2026-11-20T17:30:00Z", "cancelled", {{"cancel_reason", "we ran out of fresh dough"}}),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  const auto& n = run.sent[0];
  CHECK(n["channel"] == "email");
  CHECK(n["to"] == "ben@example.com");
  CHECK(n["at"] == "2026-11-20T17:30:00+00:00");
  REQUIRE(n["subject"].is_string());
  CHECK_FALSE(n["subject"].get<std::string>().empty());
  const std::string body = n["body"];
  CHECK_THAT(body, Contains("we ran out of fresh dough"));
  CHECK_THAT(body, Contains("€31.40"));
  CHECK_THAT(body, Contains("Trattoria Da Marco"));
}

TEST_CASE("story 1 without a reason still apologises, without an empty reason") {
  const Run run = simulate_lines({kBen, order("A-3", "c-7", "2026-11-20T17:30:00Z", "cancelled")});
  REQUIRE(run.sent.size() == 1);
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), !Contains("reason:") && !Contains("  "));
}

TEST_CASE("story 3: the first delivered order gets a thank-you without upsell, later ones none") {
  const Run run = simulate_lines({
      kBen,
      order("B-1", "c-7", "2026-11-20T10:00:00Z", "shipped"),
      order("B-1", "c-7", "2026-11-20T12:00:00Z", "delivered"),
      order("B-2", "c-7", "2026-11-22T12:00:00Z", "placed"),
      order("B-2", "c-7", "2026-11-23T12:00:00Z", "delivered"),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  const auto& n = run.sent[0];
  CHECK(n["kind"] == "thank_you");
  CHECK(n["entity"] == "order/B-1");
  CHECK(n["at"] == "2026-11-20T12:00:00+00:00");
  const std::string body = n["body"];
  CHECK_THAT(body, Contains("Trattoria Da Marco"));
  for (const char* pitch : {"discount", "% off", "code", "buy", "offer", "newsletter"})
    CHECK_THAT(body, !Contains(pitch, Catch::CaseSensitive::No));
}

TEST_CASE("story 5: a failed delivery is explained with the carrier's reason and the next step") {
  const Run run = simulate_lines({
      kAnna,
      order("A-9", "c-42", "2026-11-19T10:00:00+01:00", "shipped", {{"merchant", "Laptop Corner"}}),
      obs("shipment", "S-1", "2026-11-20T08:00:00+01:00",
          {{"order", "A-9"}, {"status", "out_for_delivery"}, {"carrier", "PostNL"}, {"tracking", "3S123"}}),
      obs("shipment", "S-1", "2026-11-20T14:10:00+01:00",
          {{"status", "delivery_failed"}, {"exception_reason", "de weg was afgesloten"}}),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  const auto& n = run.sent[0];
  CHECK(n["kind"] == "explanation");
  CHECK(n["rule"] == "delivery-problem");
  CHECK(n["entity"] == "shipment/S-1");
  CHECK(n["customer"] == "c-42");
  CHECK(n["channel"] == "sms");
  CHECK(n["at"] == "2026-11-20T14:10:00+01:00");
  const std::string body = n["body"];
  CHECK_THAT(body, Contains("de weg was afgesloten"));
  CHECK_THAT(body, Contains("3S123"));
}

TEST_CASE("story 5: a carrier exception right after a failed delivery is within the cooldown") {
  const Run run = simulate_lines({
      kBen,
      order("B-9", "c-7", "2026-11-19T10:00:00Z", "shipped"),
      obs("shipment", "S-2", "2026-11-20T14:00:00Z", {{"order", "B-9"}, {"status", "delivery_failed"}}),
      obs("shipment", "S-2", "2026-11-20T14:30:00Z", {{"status", "exception"}}),
      obs("shipment", "S-2", "2026-11-21T09:00:00Z", {{"status", "in_transit"}}),
      obs("shipment", "S-2", "2026-11-21T18:00:00Z", {{"status", "exception"}, {"exception_reason", "damaged"}}),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 2);
  CHECK(run.sent[0]["at"] == "2026-11-20T14:00:00+00:00");
  CHECK(run.sent[1]["at"] == "2026-11-21T18:00:00+00:00");
  CHECK_THAT(run.sent[1]["body"].get<std::string>(), Contains("damaged"));
}

TEST_CASE("story 8: repeated identical snapshots produce one message") {
  const std::string cancelled = order("A-5", "c-42", "2026-11-20T17:30:00+01:00", "cancelled");
  const Run run = simulate_lines({kAnna, kAnna, cancelled, cancelled, cancelled, kAnna,
                                  order("A-5", "c-42", "2026-11-20T17:45:00+01:00", "cancelled")});
  INFO(run.err);
  CHECK(run.sent.size() == 1);
}

TEST_CASE("story 8: a status that flaps back to cancelled is not apologised for twice") {
  const Run run = simulate_lines({
      kAnna,
      order("A-6", "c-42", "2026-11-20T17:30:00+01:00", "cancelled"),
      order("A-6", "c-42", "2026-11-20T17:31:00+01:00", "placed"),
      order("A-6", "c-42", "2026-11-20T17:32:00+01:00", "cancelled"),
  });
  CHECK(run.sent.size() == 1);
}

TEST_CASE("the daily cap makes a customer's fourth message of the day wait, and loses nothing") {
  std::vector<std::string> lines{kAnna};
  for (const char* id : {"D-1", "D-2", "D-3", "D-4"})
    lines.push_back(order(id, "c-42", "2026-11-20T12:00:00Z", "cancelled"));
  const Run run = simulate_lines(lines);
  REQUIRE(run.sent.size() == 4);
  CHECK(run.sent[2]["at"] == "2026-11-20T13:00:00+01:00");
  CHECK(run.sent[3]["at"] == "2026-11-21T13:00:00+01:00");
}

TEST_CASE("an opted-out customer gets nothing") {
  const Run run = simulate_lines({
      obs("customer", "c-9", "2026-11-20T09:00:00Z", {{"email", "c@example.com"}, {"opt_out", true}}),
      order("A-7", "c-9", "2026-11-20T17:30:00Z", "cancelled"),
  });
  CHECK(run.status == 0);
  CHECK(run.sent.empty());
  CHECK(run.err.empty());
}

TEST_CASE("a customer who prefers SMS but has no phone number gets email") {
  const Run run = simulate_lines({
      obs("customer", "c-8", "2026-11-20T09:00:00Z", {{"email", "d@example.com"}, {"prefers", "sms"}}),
      order("A-8", "c-8", "2026-11-20T17:30:00Z", "cancelled"),
  });
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["channel"] == "email");
  CHECK(run.sent[0]["to"] == "d@example.com");
}

TEST_CASE("a customer no channel can reach is reported on standard error once the wait for an address is over") {
  const Run run = simulate_lines({
      obs("customer", "c-5", "2026-11-20T09:00:00Z", {{"name", "Eve"}}),
      order("A-9", "c-5", "2026-11-20T17:30:00Z", "cancelled"),
  });
  CHECK(run.status == 0);
  CHECK(run.sent.empty());
  CHECK_THAT(run.err, Contains("order/A-9: rule 'order-cancelled' waited since 2026-11-20T17:30:00Z for customer/c-5 "
                               "(no channel can reach customer 'c-5' for rule 'order-cancelled': no phone number for "
                               "sms, no email address for email); given up, nothing sent"));
}

TEST_CASE("a malformed observation line is reported with its number and the other lines still run") {
  const Run run = simulate_lines({
      kAnna,
      R"({"type":"order","id":"X","observed_at":"not a time","fields":{}})",
      "{ this is not json",
      order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled"),
  });
  CHECK(run.status == 1);
  CHECK(run.sent.size() == 1);
  CHECK_THAT(run.err, Contains("input.jsonl:2: rejected: field 'observed_at': 'not a time' is not an RFC 3339 "
                               "date-time"));
  CHECK_THAT(run.err,
             Contains("input.jsonl:3: rejected: malformed JSON at column 4: syntax error while parsing object key"));
  CHECK_THAT(run.err, Contains("2 lines were rejected; the others ran"));
}

TEST_CASE("the demo observations produce the stories' messages") {
  TempDir dir;
  SimulateOptions options{test::source_dir() / "config/tactd.toml",
                          test::source_dir() / "config/demo/observations.jsonl", std::nullopt, false};
  std::ostringstream out, err;
  CHECK(tactd::simulate(options, out, err) == 0);
  const std::string text = out.str();
  CHECK_THAT(text, Contains("\"rule\":\"order-cancelled\""));
  CHECK_THAT(text, Contains("\"rule\":\"first-order-thanks\""));
  for (const char* rule : {"delivery-problem", "delivery-eta-late", "delivery-promise-broken", "delivery-follow-up",
                           "price-change", "payment-arrangement", "check-in"})
    CHECK_THAT(text, Contains(std::string("\"rule\":\"") + rule + "\""));
  CHECK_THAT(err.str(), Contains("subscription/SUB-8: rule 'price-change': the change takes effect"));
  CHECK_THAT(err.str(), Contains("no channel can reach customer 'c-eve'"));
}
