// The stories that depend on time: deadlines (story 4) and quiet hours
// (story 9), all on the virtual clock, plus restarts between scheduling a
// timer and firing it.
#include <catch2/catch.hpp>

#include "model/clock.h"
#include "pipeline/pipeline.h"
#include "scenario/scenario.h"
#include "support/temp_dir.h"

using namespace tactd;
using namespace tactd::test;
using Catch::Contains;

namespace {

std::string laptop(const char* at, const char* status, const char* promised_by = "2026-11-20T12:00:00+01:00") {
  return order("L-1", "c-42", at, status, {{"merchant", "Laptop Corner"}, {"promised_by", promised_by}});
}

std::string parcel(const char* at, nlohmann::json fields) {
  fields["order"] = "L-1";
  fields["carrier"] = "PostNL";
  return obs("shipment", "S-1", at, fields);
}

std::vector<std::string> kinds(const Run& run) {
  std::vector<std::string> out;
  for (const auto& n : run.sent) out.push_back(n["kind"].get<std::string>() + "@" + n["at"].get<std::string>());
  return out;
}

Timestamp at(const char* text) { return *parse_rfc3339(text); }

}  // namespace

TEST_CASE(
    "story 4: a late ETA gets a heads-up with the new time, the broken promise an apology, delivery a follow-up") {
  const Run run = simulate_lines({
      kAnna,
      laptop("2026-11-20T09:00:00+01:00", "shipped"),
      parcel("2026-11-20T09:30:00+01:00", {{"status", "in_transit"}, {"eta", "2026-11-20T11:30:00+01:00"}}),
      parcel("2026-11-20T10:15:00+01:00", {{"eta", "2026-11-20T13:30:00+01:00"}}),
      parcel("2026-11-20T13:40:00+01:00", {{"status", "delivered"}}),
      laptop("2026-11-20T13:45:00+01:00", "delivered"),
  });
  INFO(run.err);
  CHECK(kinds(run) == std::vector<std::string>{"heads_up@2026-11-20T10:15:00+01:00",
                                               "apology@2026-11-20T12:00:00+01:00",
                                               "follow_up@2026-11-20T13:45:00+01:00"});
  REQUIRE(run.sent.size() == 3);
  CHECK(run.sent[0]["rule"] == "delivery-eta-late");
  CHECK_THAT(run.sent[0]["body"].get<std::string>(), Contains("13:30") && Contains("12:00"));
  CHECK(run.sent[1]["rule"] == "delivery-promise-broken");
  CHECK_THAT(run.sent[1]["body"].get<std::string>(), Contains("13:30"));
  CHECK(run.sent[2]["rule"] == "delivery-follow-up");
}

TEST_CASE("story 4: an ETA exactly at the promised time is no heads-up, 30 minutes before, still undelivered, is") {
  const Run run = simulate_lines({
      kAnna,
      laptop("2026-11-20T09:00:00+01:00", "shipped"),
      parcel("2026-11-20T09:30:00+01:00", {{"status", "in_transit"}, {"eta", "2026-11-20T12:00:00+01:00"}}),
      parcel("2026-11-20T11:50:00+01:00", {{"status", "delivered"}}),
      laptop("2026-11-20T11:52:00+01:00", "delivered"),
  });
  INFO(run.err);
  CHECK(kinds(run) ==
        std::vector<std::string>{"heads_up@2026-11-20T11:30:00+01:00", "follow_up@2026-11-20T11:52:00+01:00"});
  CHECK(run.sent[0]["rule"] == "delivery-promise-at-risk");
}

TEST_CASE("story 4: flapping ETAs still produce one heads-up") {
  const Run run = simulate_lines({
      kAnna,
      laptop("2026-11-20T09:00:00+01:00", "shipped"),
      parcel("2026-11-20T09:10:00+01:00", {{"status", "in_transit"}, {"eta", "2026-11-20T13:00:00+01:00"}}),
      parcel("2026-11-20T09:20:00+01:00", {{"eta", "2026-11-20T11:00:00+01:00"}}),
      parcel("2026-11-20T09:30:00+01:00", {{"eta", "2026-11-20T13:10:00+01:00"}}),
      parcel("2026-11-20T09:40:00+01:00", {{"eta", "2026-11-20T11:10:00+01:00"}}),
      parcel("2026-11-20T11:05:00+01:00", {{"status", "delivered"}}),
      laptop("2026-11-20T11:06:00+01:00", "delivered"),
  });
  INFO(run.err);
  CHECK(kinds(run) ==
        std::vector<std::string>{"heads_up@2026-11-20T09:10:00+01:00", "follow_up@2026-11-20T11:06:00+01:00"});
}

TEST_CASE("story 4: a promise moved later by the shop moves its timers, and delivery in time cancels them") {
  const Run run = simulate_lines({
      kAnna,
      laptop("2026-11-20T09:00:00+01:00", "shipped"),
      laptop("2026-11-20T10:00:00+01:00", "shipped", "2026-11-20T15:00:00+01:00"),
      parcel("2026-11-20T14:00:00+01:00", {{"status", "delivered"}}),
      laptop("2026-11-20T14:05:00+01:00", "delivered", "2026-11-20T15:00:00+01:00"),
  });
  INFO(run.err);
  // On time after all: no heads-up, no apology, no follow-up; the first-order thank-you.
  CHECK(kinds(run) == std::vector<std::string>{"thank_you@2026-11-20T14:05:00+01:00"});
}

TEST_CASE("story 4: an order cancelled before its promised time gets no heads-up and no late apology") {
  const Run run = simulate_lines({
      kAnna,
      laptop("2026-11-20T09:00:00+01:00", "shipped"),
      laptop("2026-11-20T10:00:00+01:00", "cancelled"),
  });
  INFO(run.err);
  CHECK(kinds(run) == std::vector<std::string>{"apology@2026-11-20T10:00:00+01:00"});
  CHECK(run.sent[0]["rule"] == "order-cancelled");
}

TEST_CASE("story 9: a change during quiet hours waits until the morning in the customer's time zone") {
  const Run run = simulate_lines({
      kAnna,
      laptop("2026-11-20T20:00:00+01:00", "shipped", "2026-11-21T18:00:00+01:00"),
      parcel("2026-11-20T23:10:00+01:00", {{"status", "delivery_failed"}}),
  });
  INFO(run.err);
  REQUIRE(run.sent.size() >= 1);  // later: the heads-up and apology for the promise of 18:00
  CHECK(run.sent[0]["kind"] == "explanation");
  CHECK(run.sent[0]["at"] == "2026-11-21T08:00:00+01:00");
}

TEST_CASE("story 9: quiet hours follow the customer's zone, not the server's") {
  const Run run = simulate_lines({
      obs("customer", "c-ny", "2026-11-20T09:00:00Z",
          {{"email", "n@example.com"}, {"timezone", "America/New_York"}, {"locale", "en"}}),
      order("N-1", "c-ny", "2026-11-20T20:00:00Z", "shipped"),
      obs("shipment", "S-9", "2026-11-21T03:30:00Z", {{"order", "N-1"}, {"status", "exception"}}),  // 22:30 there
  });
  INFO(run.err);
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["at"] == "2026-11-21T08:00:00-05:00");
}

TEST_CASE("story 9: an urgent message, like a cancelled dinner, is not held until morning") {
  const Run run = simulate_lines({kAnna, order("D-1", "c-42", "2026-11-20T23:00:00+01:00", "cancelled")});
  REQUIRE(run.sent.size() == 1);
  CHECK(run.sent[0]["at"] == "2026-11-20T23:00:00+01:00");
}

TEST_CASE("a restart between scheduling and firing fires the due timer late, once") {
  StoryState state;
  state.close();
  Diagnostics errors;
  auto snapshot = load_snapshot(source_dir() / "config/tactd.toml", errors);
  REQUIRE(snapshot);
  auto apply = [](Pipeline& pipeline, const std::string& line) {
    std::string error;
    auto observation = parse_observation(line, error);
    REQUIRE(observation);
    return pipeline.apply(*observation);
  };
  {
    auto store = state.open_again();
    VirtualClock clock(at("2026-11-20T09:00:00+01:00"));
    Pipeline pipeline(*snapshot, *store, clock);
    apply(pipeline, kAnna);
    apply(pipeline, laptop("2026-11-20T09:00:00+01:00", "shipped"));
    CHECK(pipeline.next_timer() == at("2026-11-20T11:30:00+01:00"));
  }  // the daemon stops before the timer is due
  auto store = state.open_again();
  VirtualClock clock(at("2026-11-20T11:40:00+01:00"));  // ten minutes late, within the grace
  Pipeline pipeline(*snapshot, *store, clock);
  const Outcome late = pipeline.fire_due();
  REQUIRE(late.notifications.size() == 1);
  CHECK(late.notifications[0].rule == "delivery-promise-at-risk");
  CHECK(pipeline.fire_due().notifications.empty());
  CHECK(pipeline.next_timer() == at("2026-11-20T12:00:00+01:00"));
  clock.advance_to(at("2026-11-20T12:00:00+01:00"));
  const Outcome broken = pipeline.fire_due();
  REQUIRE(broken.notifications.size() == 1);
  CHECK(broken.notifications[0].kind == Kind::kApology);
  // What remains is Anna's check-in, half a year after this last contact.
  CHECK(pipeline.next_timer() == at("2026-11-20T12:00:00+01:00") + std::chrono::days{180});
}

TEST_CASE("a timer found overdue by more than the grace is skipped and reported") {
  PipelineStory story("2026-11-20T09:00:00+01:00");
  auto& [snapshot, store, clock, pipeline] = story;
  story.apply(kAnna);
  story.apply(laptop("2026-11-20T09:00:00+01:00", "shipped"));
  clock.advance_to(at("2026-11-20T18:00:00+01:00"));  // 6.5 hours after 11:30, the grace is 6 hours
  const Outcome outcome = pipeline.fire_due();
  CHECK(outcome.notifications.size() == 1);  // the 12:00 apology is exactly 6 hours late: still within
  REQUIRE(outcome.problems.size() == 1);
  CHECK_THAT(outcome.problems[0].text,
             Contains("order/L-1: rule 'delivery-promise-at-risk' was due at "
                      "2026-11-20T10:30:00Z, longer ago than [timers] grace allows; skipped"));
}

TEST_CASE("a burst of due timers is fired a bounded number at a time, the rest on the next call") {
  PipelineStory story("2026-11-20T09:00:00+01:00");
  auto& [snapshot, store, clock, pipeline] = story;
  story.apply(kAnna);
  story.apply(laptop("2026-11-20T09:00:00+01:00", "shipped"));
  clock.advance_to(at("2026-11-20T12:00:00+01:00"));  // the heads-up's and the apology's timers both due
  const Outcome first = pipeline.fire_due(1);
  REQUIRE(pipeline.next_timer());
  CHECK(*pipeline.next_timer() <= clock.now());  // one left for the next turn
  const Outcome second = pipeline.fire_due(1);
  REQUIRE(pipeline.next_timer());
  CHECK(*pipeline.next_timer() > clock.now());  // both fired
  CHECK(first.notifications.size() + second.notifications.size() >= 1);
}

TEST_CASE("a due timer of a rule whose timers a reload is cancelling is removed unfired, then set again fires once") {
  PipelineStory story("2026-11-20T09:00:00+01:00");
  auto& [snapshot, store, clock, pipeline] = story;
  story.apply(kAnna);
  story.apply(laptop("2026-11-20T09:00:00+01:00", "shipped"));
  // The heads-up (11:30) comes due while a reload that changed its rule is
  // still removing the rule's old timers: it must not fire under the rule
  // as it is now.
  clock.advance_to(at("2026-11-20T11:40:00+01:00"));
  const Outcome held = pipeline.fire_due(Pipeline::kFireBatch, {"delivery-promise-at-risk"});
  CHECK(held.notifications.empty());
  CHECK(held.held_back.empty());
  CHECK(store->due_timers(clock.now(), 10).empty());  // removed, not left due
  CHECK(pipeline.next_timer() == at("2026-11-20T12:00:00+01:00"));
  // The cancellation done, the rule's timers are set again: it fires once.
  CHECK_FALSE(pipeline.reschedule_known(EntityType::kOrder, "", 100) == std::nullopt);
  const Outcome fired = pipeline.fire_due();
  REQUIRE(fired.notifications.size() == 1);
  CHECK(fired.notifications[0].rule == "delivery-promise-at-risk");
  CHECK(pipeline.fire_due().notifications.empty());
}

TEST_CASE("an observation at the same instant as a timer is applied first, so a cancelled order gets no heads-up") {
  const Run run = simulate_lines({
      kAnna, laptop("2026-11-20T09:00:00+01:00", "shipped"),
      laptop("2026-11-20T11:30:00+01:00", "cancelled"),  // exactly when the heads-up timer is due
  });
  INFO(run.err);
  CHECK(kinds(run) == std::vector<std::string>{"apology@2026-11-20T11:30:00+01:00"});
  CHECK(run.sent[0]["rule"] == "order-cancelled");
}

TEST_CASE("story 7: after half a year without contact, a check-in, any contact restarts the silence") {
  nlohmann::json ben = nlohmann::json::parse(kBen);
  ben["observed_at"] = "2026-01-10T10:00:00Z";
  ben["fields"]["last_contact_at"] = "2026-01-10T10:00:00Z";  // reported by the source
  const Run run = simulate_lines(
      {
          ben.dump(),
          // A cancellation on 1 May is a contact: the silence runs from then.
          order("B-1", "c-7", "2026-05-01T12:00:00Z", "cancelled"),
      },
      at("2027-06-01T00:00:00Z"));
  INFO(run.err);
  REQUIRE(run.sent.size() == 3);
  CHECK(run.sent[0]["kind"] == "apology");
  CHECK(run.sent[1]["kind"] == "check_in");
  CHECK(run.sent[1]["at"] == "2026-10-28T12:00:00+00:00");  // 1 May + 180 days, in London
  CHECK_THAT(run.sent[1]["body"].get<std::string>(), Contains("Friday 1 May 2026"));
  CHECK(run.sent[2]["kind"] == "check_in");  // the first check-in started a new silence
  CHECK(run.sent[2]["at"] == "2027-04-26T13:00:00+01:00");
}

TEST_CASE("story 7: no check-in for a customer who opted out, nor before the silence is long enough") {
  nlohmann::json ben = nlohmann::json::parse(kBen);
  ben["observed_at"] = "2026-01-10T10:00:00Z";
  ben["fields"]["last_contact_at"] = "2026-01-10T10:00:00Z";
  ben["fields"]["opt_out"] = true;
  CHECK(simulate_lines({ben.dump()}, at("2027-01-01T00:00:00Z")).sent.empty());
  ben["fields"]["opt_out"] = false;
  CHECK(simulate_lines({ben.dump()}, at("2026-07-08T09:59:00Z")).sent.empty());
  CHECK(simulate_lines({ben.dump()}, at("2026-07-09T10:00:00Z")).sent.size() == 1);
}
