// Story 7, a long silence, counted right: from the first sighting of a
// customer nobody ever contacted (or from when the source says they became a
// customer), and never ended by a message that went to the dead letter.
#include <catch2/catch.hpp>

#include "model/clock.h"
#include "pipeline/pipeline.h"
#include "scenario/scenario.h"
#include "support/temp_dir.h"

using namespace tactd;
using namespace tactd::test;
using Catch::Contains;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

}  // namespace

TEST_CASE("a customer nobody ever contacted gets the check-in half a year after tactd first saw her, in Dutch") {
  const Run run = simulate_lines({kAnna}, at("2027-06-01T00:00:00Z"));
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["kind"] == "check_in");
  CHECK(run.sent[0]["at"] == "2027-05-19T10:00:00+02:00");  // 09:00 +01:00 on 20 November, plus 180 days
  CHECK(run.sent[0]["to"] == "+31612345678");               // she prefers SMS
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), Contains("Hoi Anna") && Contains("bevalt alles nog"));
}

TEST_CASE("a customer nobody ever contacted gets the check-in in English, silent since the source's customer_since") {
  nlohmann::json ben = nlohmann::json::parse(kBen);
  ben["fields"]["customer_since"] = "2026-09-01T08:00:00Z";
  const Run run = simulate_lines({ben.dump()}, at("2027-06-01T00:00:00Z"));
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["kind"] == "check_in");
  CHECK(run.sent[0]["at"] == "2027-02-28T08:00:00+00:00");  // 1 September plus 180 days
  CHECK(run.sent[0]["to"] == "ben@example.com");
  CHECK_THAT(run.sent[0]["subject"].get<std::string>(), Contains("It has been a while"));
}

TEST_CASE("a message that went to the dead letter does not end the silence") {
  PipelineStory story("2026-11-20T09:00:00+01:00");
  auto& [snapshot, store, clock, pipeline] = story;
  story.apply(kAnna);
  clock.advance_to(at("2026-11-20T17:30:00+01:00"));
  story.apply(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"));
  const Outcome cancelled = story.apply(
      order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}));
  REQUIRE(cancelled.notifications.size() == 1);
  // On its way, the apology is contact: the silence starts again from it.
  CHECK(pipeline.next_timer() == at("2026-11-20T17:30:00+01:00") + std::chrono::days{180});

  // The SMS provider refuses it for good: Anna never heard from us.
  const OutboxEntry apology = store->outbox().front();
  store->record_failure(apology.id, clock.now(), "invalid number", std::nullopt);
  pipeline.message_died("c-42");
  CHECK(pipeline.next_timer() == at("2026-11-20T09:00:00+01:00") + std::chrono::days{180});

  clock.advance_to(at("2026-11-20T09:00:00+01:00") + std::chrono::days{180});
  const Outcome due = pipeline.fire_due();
  REQUIRE(due.notifications.size() == 1);
  CHECK(due.notifications[0].kind == Kind::kCheckIn);
  CHECK_THAT(due.notifications[0].body, Contains("Anna"));
}
