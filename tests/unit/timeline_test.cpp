// The support desk's timeline (issue 14), built over a real SQLite store that
// the pipeline and the reply desk filled as in the stories: observe, decide,
// deliver, fail, reply, STOP. The shipped configuration, a virtual clock.
#include "timeline/timeline.h"

#include <catch2/catch.hpp>

#include <algorithm>

#include "inbound/reply_desk.h"
#include "model/clock.h"
#include "pipeline/pipeline.h"
#include "scenario/reply_story.h"
#include "scenario/scenario.h"
#include "support/temp_dir.h"

using namespace tactd;
using namespace tactd::test;
using Catch::Contains;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

InboundMessage sms(const std::string& from, const std::string& text) {
  return InboundMessage{Channel::kSms, "json", "", from, "+3197010203040", std::nullopt, text, {}};
}

// The story of replies, with the timeline read from its store.
class Story : public ReplyStory {
 public:
  Timeline timeline(const std::string& customer = "c-42", std::size_t limit = kDefaultTimelineLimit) const {
    return build_timeline(*store, customer, clock.now(), limit);
  }
};

std::vector<std::string> types(const Timeline& timeline) {
  std::vector<std::string> out;
  for (const auto& e : timeline.events) out.push_back(e.type);
  return out;
}

const TimelineEvent* find(const Timeline& timeline, std::string_view type, long long message = -1) {
  for (const auto& e : timeline.events)
    if (e.type == type && (message < 0 || e.message == message)) return &e;
  return nullptr;
}

bool in_time_order(const Timeline& timeline) {
  return std::is_sorted(timeline.events.begin(), timeline.events.end(),
                        [](const TimelineEvent& a, const TimelineEvent& b) { return a.at < b.at; });
}

}  // namespace

TEST_CASE(
    "the support desk sees what Anna was told: the cancellation, the apology, a failed try, her reply, her STOP") {
  Story s;
  s.observe(kAnna, "2026-11-20T09:00:00+01:00");
  s.observe(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"), "2026-11-20T17:00:00+01:00");
  const Outcome cancelled = s.observe(
      order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
      "2026-11-20T17:30:00+01:00");
  REQUIRE(cancelled.notifications.size() == 1);
  const OutboxEntry apology = s.store->outbox().front();
  // The provider fails once, then takes it.
  s.clock.advance_to(at("2026-11-20T17:30:05+01:00"));
  s.store->claim({apology.id}, s.clock.now());
  s.store->record_failure(apology.id, s.clock.now(), "503 Service Unavailable", at("2026-11-20T17:31:05+01:00"));
  s.clock.advance_to(at("2026-11-20T17:31:05+01:00"));
  s.store->claim({apology.id}, s.clock.now());
  s.store->mark_delivered(apology.id, s.clock.now(), "201 {\"sid\": \"SM1\"}");
  // She writes back, then stops SMS.
  s.receive(sms("+31612345678", "Jammer.\nKan ik opnieuw bestellen?"), "2026-11-20T17:40:00+01:00");
  s.receive(sms("+31612345678", "STOP"), "2026-11-20T17:45:00+01:00");

  const Timeline t = s.timeline();
  CHECK(t.known);
  CHECK(t.customer == "c-42");
  CHECK(t.name == "Anna de Vries");
  CHECK(t.time_zone == "Europe/Amsterdam");
  CHECK_FALSE(t.truncated);
  CHECK(in_time_order(t));
  CHECK(types(t) == std::vector<std::string>{"first_seen", "first_seen", "observed", "change", "decided", "attempt",
                                             "attempt", "reply", "reply", "opt_out", "decided"});

  const TimelineEvent& order_seen = t.events[1];
  CHECK(order_seen.entity == "order/A-1");
  CHECK(order_seen.at == at("2026-11-20T17:00:00+01:00"));
  const TimelineEvent& change = t.events[3];
  CHECK(change.at == at("2026-11-20T17:30:00+01:00"));
  CHECK(change.detail["field"] == "status");
  CHECK(change.detail["old"] == "placed");
  CHECK(change.detail["new"] == "cancelled");
  CHECK(change.summary == "order/A-1 status: placed -> cancelled");

  const TimelineEvent& decided = t.events[4];
  CHECK(decided.message == apology.id);
  CHECK(decided.detail["rule"] == "order-cancelled");
  CHECK(decided.detail["channel"] == "sms");
  CHECK(decided.detail["to"] == "+31612345678");
  CHECK(decided.detail["status"] == "delivered");
  CHECK(decided.detail["body"] == apology.notification.body);  // the text as she received it
  CHECK_THAT(decided.detail["body"].get<std::string>(), Contains("kitchen overloaded"));

  CHECK(t.events[5].detail["outcome"] == "retry");
  CHECK(t.events[5].detail["detail"] == "503 Service Unavailable");
  CHECK(t.events[6].detail["outcome"] == "delivered");
  CHECK(t.events[6].at == at("2026-11-20T17:31:05+01:00"));

  CHECK(t.events[7].detail["text"] == "Jammer.\nKan ik opnieuw bestellen?");
  CHECK(t.events[7].detail["stop"] == false);
  CHECK(t.events[7].entity == "order/A-1");
  CHECK(t.events[8].detail["stop"] == true);
  CHECK(t.events[9].detail["channel"] == "sms");
  CHECK(t.events[10].detail["rule"] == std::string(kOptOutRule));  // the confirmation of the STOP

  // Her reply holds automated messages about the order back.
  REQUIRE(t.paused.size() == 1);
  CHECK(t.paused[0].entity == "order/A-1");
  CHECK(t.paused[0].until == at("2026-11-22T17:40:00+01:00"));

  const nlohmann::json json = to_json(t, "Europe/Amsterdam");
  CHECK(json["events"].size() == t.events.size());
  CHECK(json["events"][4]["at"] == "2026-11-20T17:30:00+01:00");
  CHECK(json["events"][4]["type"] == "decided");
  CHECK(json["events"][4]["message"] == apology.id);
  CHECK(json["events"][0]["message"].is_null());
  CHECK(json["paused"][0]["until"] == "2026-11-22T17:40:00+01:00");

  const std::string text = to_text(t, "Europe/Amsterdam");
  CHECK_THAT(text, Contains("Customer c-42 (Anna de Vries); times in Europe/Amsterdam\n"));
  CHECK_THAT(text, Contains("held back until 2026-11-22 17:40:00"));
  CHECK_THAT(text, Contains("2026-11-20 17:30:05  attempt  message " + std::to_string(apology.id) +
                            "\n  attempt 1: retry (503 Service Unavailable)\n"));
  CHECK_THAT(text, Contains("  > Jammer.\n  > Kan ik opnieuw bestellen?\n"));
  CHECK_THAT(text, Contains("  | ") && Contains("kitchen overloaded"));
  CHECK_THAT(to_text(t, "UTC"), Contains("2026-11-20 16:30:05  attempt"));
}

TEST_CASE("a message held back, one overtaken and one dropped show with their reasons") {
  Story s;
  s.observe(kAnna, "2026-11-20T09:00:00+01:00");
  s.observe(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"), "2026-11-20T17:00:00+01:00");
  s.observe(order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled"), "2026-11-20T17:30:00+01:00");
  const OutboxEntry queued = s.store->outbox().front();
  // She writes before it leaves: it waits (a person is talking), then a STOP overtakes it.
  s.receive(sms("+31612345678", "Wat is er gebeurd?"), "2026-11-20T17:31:00+01:00");
  {
    Outcome outcome;
    auto transaction = s.store->begin();
    CHECK_FALSE(s.pipeline->release(*transaction, queued, outcome));
    transaction->commit();
  }
  s.receive(sms("+31612345678", "Afmelden"), "2026-11-22T18:00:00+01:00");  // after the pause
  {
    Outcome outcome;
    auto transaction = s.store->begin();
    CHECK_FALSE(s.pipeline->release(*transaction, *transaction->outbox_entry(queued.id), outcome));
    transaction->commit();
  }
  // An operator drops the confirmation.
  long long confirmation_id = 0;
  for (const auto& e : s.store->outbox())
    if (e.notification.rule == kOptOutRule) confirmation_id = e.id;
  REQUIRE(confirmation_id != 0);
  REQUIRE(s.store->drop(confirmation_id));
  s.store->record_decision(confirmation_id, s.clock.now(), "dropped", "an operator: not wanted");

  const Timeline t = s.timeline();
  CHECK(in_time_order(t));
  const TimelineEvent* held = find(t, "held_back", queued.id);
  REQUIRE(held);
  CHECK(held->at == at("2026-11-20T17:31:00+01:00"));
  CHECK_THAT(held->summary, Contains("held back") && Contains("the customer replied"));
  const TimelineEvent* overtaken = find(t, "overtaken", queued.id);
  REQUIRE(overtaken);
  CHECK_THAT(overtaken->detail["reason"].get<std::string>(), Contains("opted out of sms"));
  const TimelineEvent* decided = find(t, "decided", queued.id);
  REQUIRE(decided);
  CHECK(decided->detail["status"] == "overtaken");
  const TimelineEvent* dropped = find(t, "dropped", confirmation_id);
  REQUIRE(dropped);
  CHECK(dropped->summary == "dropped: an operator: not wanted");
  CHECK(find(t, "decided", confirmation_id)->detail["status"] == "dropped");
}

TEST_CASE("a message the policy held back shows why no message was made, and counts for its rule") {
  Story s;
  s.observe(obs("customer", "c-42", "2026-11-20T09:00:00+01:00",
                {{"name", "Anna de Vries"}, {"phone", "+31612345678"}, {"opt_out", true}}),
            "2026-11-20T09:00:00+01:00");
  s.observe(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"), "2026-11-20T17:00:00+01:00");
  const Outcome cancelled =
      s.observe(order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled"), "2026-11-20T17:30:00+01:00");
  CHECK(cancelled.notifications.empty());
  REQUIRE(cancelled.held_back.size() == 1);

  const Timeline t = s.timeline();
  const TimelineEvent* not_made = find(t, "not_made");
  REQUIRE(not_made);
  CHECK(not_made->at == at("2026-11-20T17:30:00+01:00"));
  CHECK(not_made->entity == "order/A-1");
  CHECK(not_made->detail["rule"] == "order-cancelled");
  CHECK(not_made->detail["code"] == "opt_out");
  CHECK_THAT(not_made->summary, Contains("rule order-cancelled made no message (opt_out)"));
  CHECK(in_time_order(t));

  const auto counts = s.store->not_made_counts(at("2026-11-20T17:00:00+01:00"));
  REQUIRE(counts.size() == 1);
  CHECK(counts[0].rule == "order-cancelled");
  CHECK(counts[0].code == "opt_out");
  CHECK(counts[0].count == 1);
  CHECK(s.store->not_made_counts(at("2026-11-20T17:30:00.001+01:00")).empty());
}

TEST_CASE("a STOP taken back by START shows as an opt-out and its end") {
  Story s;
  s.observe(kAnna, "2026-11-20T09:00:00+01:00");
  s.observe(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"), "2026-11-20T17:00:00+01:00");
  s.observe(order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled"), "2026-11-20T17:30:00+01:00");
  s.receive(sms("+31612345678", "STOP"), "2026-11-20T17:45:00+01:00");
  const ReplyOutcome start = s.receive(sms("+31612345678", "START"), "2026-11-21T08:00:00+01:00");
  REQUIRE(start.opted_in);

  const Timeline t = s.timeline();
  const TimelineEvent* opt_in = find(t, "opt_in");
  REQUIRE(opt_in);
  CHECK(opt_in->at == at("2026-11-21T08:00:00+01:00"));
  CHECK(opt_in->detail["channel"] == "sms");
  CHECK(opt_in->detail["reply"] == start.reply.id);
  CHECK(opt_in->summary == "opted in again to sms");
  CHECK(find(t, "opt_out"));
  CHECK(in_time_order(t));
}

TEST_CASE("a long history is cut to the newest events and says so, and an unknown customer has none") {
  Story s;
  s.observe(kAnna, "2026-11-20T09:00:00+01:00");
  for (int i = 0; i < 40; ++i) {
    Notification n;
    n.idempotency_key = "k-" + std::to_string(i);
    n.at = at("2026-11-21T09:00:00+01:00") + std::chrono::hours{i};
    n.rule = "check-in";
    n.kind = Kind::kCheckIn;
    n.customer = "c-42";
    n.entity = EntityRef{EntityType::kCustomer, "c-42"};
    n.channel = Channel::kEmail;
    n.to = "anna@example.nl";
    n.subject = "Hallo " + std::to_string(i);
    n.body = "bericht " + std::to_string(i);
    n.locale = "nl";
    n.time_zone = "Europe/Amsterdam";
    REQUIRE(s.store->enqueue(n));
  }
  const Timeline all = s.timeline();
  CHECK_FALSE(all.truncated);
  CHECK(all.events.size() == 41);

  const Timeline cut = s.timeline("c-42", 10);
  CHECK(cut.truncated);
  CHECK(cut.limit == 10);
  REQUIRE(cut.events.size() == 10);
  CHECK(cut.events.back().detail["body"] == "bericht 39");  // the newest are kept
  CHECK(cut.events.front().detail["body"] == "bericht 30");
  CHECK_THAT(to_text(cut, "Europe/Amsterdam"), Contains("Only the newest 10 events are shown"));
  CHECK(to_json(cut)["truncated"] == true);

  const Timeline nobody = s.timeline("c-404");
  CHECK_FALSE(nobody.known);
  CHECK(nobody.events.empty());
}

TEST_CASE("a customer id is refused when it is empty, too long or has control characters") {
  CHECK(customer_id_problem("c-42").empty());
  CHECK(customer_id_problem("klant/ø 7").empty());
  CHECK(customer_id_problem("") == "the customer id is empty");
  CHECK_THAT(customer_id_problem(std::string(257, 'x')), Contains("257 bytes long; at most 256"));
  CHECK(customer_id_problem(std::string(256, 'x')).empty());
  CHECK_THAT(customer_id_problem("c-4\n2"), Contains("control character (byte 10) at position 4"));
  CHECK_THAT(customer_id_problem(std::string("c\0", 2)), Contains("control character (byte 0)"));
}

TEST_CASE("the timeline route answers JSON, 404 for an unknown customer and 400 for a bad id or limit") {
  Story s;
  s.observe(kAnna, "2026-11-20T09:00:00+01:00");
  s.observe(obs("customer", "c 9/x", "2026-11-20T09:00:00+01:00", {{"name", "Odd Id"}}), "2026-11-20T09:00:00+01:00");
  const auto get = [&](const std::string& target, const std::string& method = "GET") {
    return timeline_route(*s.store, HttpRequest{method, target, {}, ""}, s.clock.now(), "Europe/Amsterdam");
  };
  const HttpResponse ok = get("/v1/customers/c-42/timeline");
  REQUIRE(ok.status == 200);
  CHECK(ok.content_type == "application/json");
  const auto body = nlohmann::json::parse(ok.body);
  CHECK(body["customer"] == "c-42");
  CHECK(body["limit"] == kDefaultTimelineLimit);
  CHECK(body["events"][0]["at"] == "2026-11-20T09:00:00+01:00");
  CHECK(nlohmann::json::parse(get("/v1/customers/c%209%2Fx/timeline").body)["name"] == "Odd Id");

  const HttpResponse unknown = get("/v1/customers/c-404/timeline");
  CHECK(unknown.status == 404);
  CHECK(nlohmann::json::parse(unknown.body)["error"] ==
        "no customer 'c-404' is known: nothing observed, sent or received");
  CHECK(get("/v1/customers/c%0A42/timeline").status == 400);
  CHECK(get("/v1/customers/c%4/timeline").status == 400);
  CHECK(get("/v1/customers/c%zz/timeline").status == 400);
  CHECK(get("/v1/customers//timeline").status == 400);
  CHECK(get("/v1/customers/" + std::string(300, 'x') + "/timeline").status == 400);
  CHECK(get("/v1/customers/c-42/timeline?limit=0").status == 400);
  CHECK(get("/v1/customers/c-42/timeline?limit=10001").status == 400);
  CHECK(get("/v1/customers/c-42/timeline?limit=ten").status == 400);
  CHECK_THAT(get("/v1/customers/c-42/timeline?limit=-1").body, Contains("limit must be a number from 1 to 10000"));
  CHECK(nlohmann::json::parse(get("/v1/customers/c-42/timeline?x=1&limit=1").body)["limit"] == 1);
  CHECK(get("/v1/customers/c-42/timeline", "POST").status == 405);
  CHECK(get("/v1/customers/c-42").status == 404);
  CHECK(get("/v1/customers/a/b/timeline").status == 404);
}
