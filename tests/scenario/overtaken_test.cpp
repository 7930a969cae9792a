// A message that waited (quiet hours, the daily cap, a retry) is checked
// again when it is released: the customer never gets what the world has
// overtaken, and what still holds goes out with the data known then.
#include <catch2/catch.hpp>

#include "scenario/scenario.h"

using namespace tactd;
using namespace tactd::test;
using Catch::Contains;

namespace {

std::string laptop(const char* at, const char* status, const char* promised_by) {
  return order("L-1", "c-42", at, status, {{"merchant", "Laptop Corner"}, {"promised_by", promised_by}});
}

std::string parcel(const char* at, nlohmann::json fields) {
  fields["order"] = "L-1";
  fields["carrier"] = "PostNL";
  return obs("shipment", "S-1", at, fields);
}

std::vector<std::string> rules(const Run& run) {
  std::vector<std::string> out;
  for (const auto& n : run.sent) out.push_back(n["rule"].get<std::string>() + "@" + n["at"].get<std::string>());
  return out;
}

}  // namespace

TEST_CASE("a promise that breaks during quiet hours and is kept before morning gets no apology in the morning") {
  // Anna's laptop is promised by 21:30: the heads-up (21:00) and the apology
  // (21:30) are decided in quiet hours and wait for 08:00; the parcel arrives
  // at 22:10. By morning neither is true any more, and the follow-up only
  // follows up on a contact that never happened.
  const Run run = simulate_lines({
      kAnna,
      laptop("2026-11-20T18:00:00+01:00", "shipped", "2026-11-20T21:30:00+01:00"),
      parcel("2026-11-20T18:05:00+01:00", {{"status", "in_transit"}, {"eta", "2026-11-20T21:00:00+01:00"}}),
      parcel("2026-11-20T22:10:00+01:00", {{"status", "delivered"}}),
      laptop("2026-11-20T22:10:00+01:00", "delivered", "2026-11-20T21:30:00+01:00"),
  });
  INFO(run.err);
  CHECK(rules(run).empty());
}

TEST_CASE("a promise that breaks during quiet hours and is still not kept gets the apology in the morning") {
  const Run run = simulate_lines({
      kAnna,
      laptop("2026-11-20T18:00:00+01:00", "shipped", "2026-11-20T21:30:00+01:00"),
      parcel("2026-11-20T18:05:00+01:00", {{"status", "in_transit"}, {"eta", "2026-11-20T21:00:00+01:00"}}),
      parcel("2026-11-20T23:00:00+01:00", {{"eta", "2026-11-21T10:15:00+01:00"}}),
  });
  INFO(run.err);
  // One message: the apology supersedes the waiting heads-up.
  REQUIRE(rules(run) == std::vector<std::string>{"delivery-promise-broken@2026-11-21T08:00:00+01:00"});
  // Rendered when it leaves: with the ETA the carrier gave at 23:00.
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), Contains("10:15"));
}

namespace {

// A failed delivery at 22:30 is explained at 08:00 (not urgent).
std::vector<std::string> failed_at_night(std::vector<std::string> then) {
  std::vector<std::string> lines{
      kAnna,
      order("L-1", "c-42", "2026-11-20T09:00:00+01:00", "shipped", {{"merchant", "Laptop Corner"}}),
      parcel("2026-11-20T22:30:00+01:00", {{"status", "delivery_failed"}, {"exception_reason", "nobody home"}}),
  };
  lines.insert(lines.end(), then.begin(), then.end());
  return lines;
}

}  // namespace

TEST_CASE("an explanation that waits for the morning goes out then") {
  const Run run = simulate_lines(failed_at_night({}));
  INFO(run.err);
  CHECK(rules(run) == std::vector<std::string>{"delivery-problem@2026-11-21T08:00:00+01:00"});
}

TEST_CASE("an opt-out that arrives while a message waits means the message is not sent") {
  nlohmann::json anna = nlohmann::json::parse(kAnna);
  anna["observed_at"] = "2026-11-20T23:30:00+01:00";
  anna["fields"]["opt_out"] = true;
  const Run run = simulate_lines(failed_at_night({anna.dump()}));
  INFO(run.err);
  CHECK(run.sent.empty());
}

TEST_CASE("a failed delivery the carrier retries successfully before morning is not explained") {
  const Run run = simulate_lines(failed_at_night({
      parcel("2026-11-20T23:10:00+01:00", {{"status", "delivered"}}),
  }));
  INFO(run.err);
  CHECK(run.sent.empty());
}

TEST_CASE("a message that waited is rendered with the name the customer has when it leaves") {
  nlohmann::json anna = nlohmann::json::parse(kAnna);
  anna["observed_at"] = "2026-11-20T23:30:00+01:00";
  anna["fields"]["name"] = "Anne de Vries";  // the shop corrected a typo
  const Run run = simulate_lines(failed_at_night({anna.dump()}));
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["at"] == "2026-11-21T08:00:00+01:00");
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), Contains("Anne"));
}

TEST_CASE("a message on its way is not marked overtaken by a later decision: its verdict, or a restart, settles it") {
  PipelineStory story("2026-11-20T17:30:00+01:00");
  story.apply(kAnna);
  story.apply(order("L-1", "c-42", "2026-11-20T17:00:00+01:00", "shipped"));
  story.apply(parcel("2026-11-20T17:05:00+01:00", {{"status", "in_transit"}}));
  story.apply(
      order("L-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}));
  // The delivery loop claims the apology and sends it.
  const auto claimed =
      story.store->claim_due_notifications(Channel::kSms, 10, story.clock.now(), std::chrono::minutes{1});
  REQUIRE(claimed.size() == 1);
  REQUIRE(claimed[0].notification.rule == "order-cancelled");
  // Meanwhile the shop undoes the cancellation, and the parcel's delivery
  // fails: the apology no longer holds and supersedes the explanation no more.
  story.apply(order("L-1", "c-42", "2026-11-20T17:31:00+01:00", "shipped"));
  story.clock.advance_to(*parse_rfc3339("2026-11-20T17:32:00+01:00"));
  const Outcome failed = story.apply(parcel("2026-11-20T17:32:00+01:00", {{"status", "delivery_failed"}}));
  CHECK(failed.notifications.size() == 1);  // the explanation
  // The apology may have reached Anna: it is still on its way, so that its
  // verdict records what happened, and a restart before it finds it cut off.
  const auto apology = story.store->outbox_entry(claimed[0].id);
  REQUIRE(apology);
  CHECK(apology->status == OutboxStatus::kPending);
  CHECK(apology->sending_since);
  REQUIRE(story.store->interrupted().size() == 1);
  CHECK(story.store->interrupted()[0].id == claimed[0].id);
}
