#include "model/entity.h"

#include <catch2/catch.hpp>

#include "model/clock.h"
#include "model/diagnostic.h"
#include "model/json_text.h"
#include "model/mailbox.h"
#include "model/notification.h"
#include "model/time.h"

using namespace tactd;
using namespace std::chrono_literals;

namespace {

Timestamp at(const char* text) {
  auto t = parse_rfc3339(text);
  REQUIRE(t);
  return *t;
}

Observation observe(const char* json) {
  std::string error;
  auto o = parse_observation(json, error);
  INFO(error);
  REQUIRE(o);
  return *o;
}

}  // namespace

TEST_CASE("RFC 3339 times with offsets name the same instant as in UTC") {
  CHECK(at("2026-11-20T17:30:00+01:00") == at("2026-11-20T16:30:00Z"));
  CHECK(at("2026-11-20T11:30:00-05:00") == at("2026-11-20T16:30:00z"));
  CHECK(at("2026-11-20T16:30:00.250Z") - at("2026-11-20T16:30:00Z") == 250ms);
  CHECK(at("2026-11-20T16:30:00.5Z") - at("2026-11-20T16:30:00Z") == 500ms);
}

TEST_CASE("malformed RFC 3339 times are rejected with the reason") {
  std::string error;
  CHECK_FALSE(parse_rfc3339("2026-11-20", &error));
  CHECK(error == "'2026-11-20' has no time of day (expected 'T' and hh:mm:ss after the date)");
  CHECK_FALSE(parse_rfc3339("2026-11-20T17:30:00", &error));
  CHECK(error == "'2026-11-20T17:30:00' has no time-zone offset (expected Z or +hh:mm after the time)");
  CHECK_FALSE(parse_rfc3339("2026-02-30T10:00:00Z", &error));
  CHECK(error == "'2026-02-30T10:00:00Z' is not a valid calendar date");
  CHECK_FALSE(parse_rfc3339("2026-11-20T25:00:00Z", &error));
  CHECK(error == "'2026-11-20T25:00:00Z' is not a valid time of day");
  CHECK_FALSE(parse_rfc3339("2026-11-20T10:00:00+0100", &error));
  CHECK(error == "'2026-11-20T10:00:00+0100' has a malformed offset (expected Z or +hh:mm)");
  CHECK_FALSE(parse_rfc3339("2026-11-20T10:00:00Zjunk", &error));
  CHECK(error == "'2026-11-20T10:00:00Zjunk' has unexpected text after the offset");
  CHECK_FALSE(parse_rfc3339("tomorrow", &error));
  CHECK(error == "'tomorrow' is not an RFC 3339 date-time (expected YYYY-MM-DDThh:mm:ss and an offset)");
}

TEST_CASE("times are shown in the customer's IANA zone, with daylight saving") {
  const Timestamp t = at("2026-11-20T16:30:00Z");
  CHECK(format_rfc3339(t, "Europe/Amsterdam") == "2026-11-20T17:30:00+01:00");
  CHECK(format_rfc3339(at("2026-07-01T16:30:00Z"), "Europe/Amsterdam") == "2026-07-01T18:30:00+02:00");
  CHECK(format_rfc3339(t, "America/New_York") == "2026-11-20T11:30:00-05:00");
  CHECK(format_rfc3339(t) == "2026-11-20T16:30:00Z");
  CHECK(format_rfc3339(t, "Not/AZone") == "2026-11-20T16:30:00Z");
  const LocalTime local = to_local(t, "Asia/Kolkata");
  CHECK(local.hour == 22);
  CHECK(local.minute == 0);
  CHECK(local.weekday == 5);  // Friday
  CHECK(is_known_time_zone("Europe/Amsterdam"));
  CHECK_FALSE(is_known_time_zone("Europe/Atlantis"));
}

TEST_CASE("durations are written with s, m, h and d units") {
  CHECK(parse_duration("30s") == Duration{30s});
  CHECK(parse_duration("30m") == Duration{30min});
  CHECK(parse_duration("2h") == Duration{2h});
  CHECK(parse_duration("7d") == Duration{std::chrono::days{7}});
  CHECK(parse_duration("1h30m") == Duration{90min});
  std::string error;
  CHECK_FALSE(parse_duration("30", &error));
  CHECK(error == "'30' has a number without a unit (use s, m, h or d)");
  CHECK_FALSE(parse_duration("3w", &error));
  CHECK(error == "'3w' has an unknown unit 'w' (use s, m, h or d)");
  CHECK_FALSE(parse_duration("", &error));
  CHECK_FALSE(parse_duration("m", &error));
}

TEST_CASE("the virtual clock moves only forward and only when told") {
  VirtualClock clock(at("2026-11-20T10:00:00Z"));
  CHECK(clock.now() == at("2026-11-20T10:00:00Z"));
  clock.advance_to(at("2026-11-20T11:00:00Z"));
  CHECK(clock.now() == at("2026-11-20T11:00:00Z"));
  clock.advance_to(at("2026-11-20T09:00:00Z"));
  CHECK(clock.now() == at("2026-11-20T11:00:00Z"));
}

TEST_CASE("an observation is parsed from the JSON contract") {
  const Observation o = observe(
      R"({"type":"order","id":"A-1001","observed_at":"2026-11-20T17:30:00+01:00",
          "fields":{"customer":"c-42","status":"cancelled","total":23.50}})");
  CHECK(o.ref.str() == "order/A-1001");
  CHECK(o.observed_at == at("2026-11-20T16:30:00Z"));
  CHECK(o.fields["status"] == "cancelled");
  CHECK(o.fields["total"] == 23.5);
}

TEST_CASE("malformed observations are rejected with what is wrong") {
  auto reject = [](const char* json) {
    std::string error;
    CHECK_FALSE(parse_observation(json, error));
    return error;
  };
  CHECK(reject(R"({"type":"order",)").rfind("malformed JSON at column", 0) == 0);
  CHECK(reject(R"([1,2])") == "an observation must be a JSON object with type, id, observed_at and fields");
  CHECK(reject(R"({"id":"1","observed_at":"2026-11-20T10:00:00Z","fields":{}})") ==
        "field 'type' is missing or not a string (expected one of customer, order, shipment, subscription, payment)");
  CHECK(reject(R"({"type":"parcel","id":"1","observed_at":"2026-11-20T10:00:00Z","fields":{}})") ==
        "field 'type': 'parcel' is not an entity type (expected one of customer, order, shipment, subscription, "
        "payment)");
  CHECK(reject(R"({"type":"order","observed_at":"2026-11-20T10:00:00Z","fields":{}})") ==
        "field 'id' is missing or not a string");
  CHECK(reject(R"({"type":"order","id":"","observed_at":"2026-11-20T10:00:00Z","fields":{}})") ==
        "field 'id' is empty");
  CHECK(reject(R"({"type":"order","id":"1","fields":{}})") ==
        "field 'observed_at' is missing or not a string (expected an RFC 3339 date-time)");
  CHECK(reject(R"({"type":"order","id":"1","observed_at":"yesterday","fields":{}})") ==
        "field 'observed_at': 'yesterday' is not an RFC 3339 date-time (expected YYYY-MM-DDThh:mm:ss and an offset)");
  CHECK(reject(R"({"type":"order","id":"1","observed_at":"2026-11-20T10:00:00Z"})") ==
        "field 'fields' is missing or not an object");
  CHECK(reject(R"({"type":"order","id":"1","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":42}})") ==
        "field 'fields.customer' must be a string id");
}

TEST_CASE("hostile JSON is rejected with its reason: absurd depth, numbers out of range, bytes that are not UTF-8") {
  auto reject = [](const std::string& json) {
    std::string error;
    CHECK_FALSE(parse_observation(json, error));
    return error;
  };
  const std::string deep = std::string(75000, '[') + std::string(75000, ']');  // ~150 KB
  const std::string head = R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z","fields":{"x":)";
  CHECK(reject(head + deep + "}}") == "JSON nested deeper than 64 arrays and objects");
  CHECK(reject(deep) == "JSON nested deeper than 64 arrays and objects");
  std::string error;
  const int room = kMaxJsonDepth - 2;  // the observation and its fields are two levels
  CHECK(parse_observation(head + std::string(room, '[') + std::string(room, ']') + "}}", error));
  CHECK_THAT(reject(head + "1e400}}"), Catch::StartsWith("JSON number out of range: ") && Catch::Contains("1e400"));
  CHECK_THAT(reject(head + "\"\xff\xfe\"}}"),
             Catch::StartsWith("malformed JSON at column ") && Catch::Contains("UTF-8"));
  CHECK_THAT(reject("\x8b\x1f\x00\x13garbage\x7f"), Catch::StartsWith("malformed JSON at column "));
}

TEST_CASE(
    "a numeric id is its exact integer text, and beyond 64 bits or with a fraction it is rejected, never wrapped") {
  auto with_id = [](const std::string& id) {
    return R"({"type":"order","id":)" + id + R"(,"observed_at":"2026-11-20T10:00:00Z","fields":{}})";
  };
  std::string error;
  auto big = parse_observation(with_id("9223372036854775807"), error);
  REQUIRE(big);
  CHECK(big->ref.id == "9223372036854775807");
  CHECK_FALSE(parse_observation(with_id("18446744073709551615"), error));
  CHECK(error ==
        "field 'id': 18446744073709551615 is not a whole number within the 64-bit range (at most "
        "9223372036854775807); send such ids as strings");
  CHECK_FALSE(parse_observation(with_id("123456789012345678901"), error));
  CHECK_THAT(error, Catch::Contains("is not a whole number within the 64-bit range"));
  CHECK_FALSE(parse_observation(with_id("1.5"), error));
  CHECK_THAT(error, Catch::StartsWith("field 'id': 1.5 is not a whole number"));
}

TEST_CASE("re-observing identical data yields no events") {
  const Observation first = observe(
      R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z","fields":{"status":"placed","total":10}})");
  const Entity known = merge(nullptr, first);
  Observation again = first;
  again.observed_at += std::chrono::minutes{5};
  CHECK(diff(&known, again).empty());
}

TEST_CASE("a changed field yields an event naming entity, field, old and new value") {
  const Entity known = merge(nullptr, observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z",
                                                  "fields":{"status":"placed","total":10}})"));
  const auto events = diff(&known, observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:05:00Z",
                                                "fields":{"status":"cancelled","total":10.0}})"));
  REQUIRE(events.size() == 1);
  CHECK(events[0].entity.str() == "order/A");
  CHECK(events[0].field == "status");
  CHECK(events[0].old_value == "placed");
  CHECK(events[0].new_value == "cancelled");
  CHECK(events[0].at == at("2026-11-20T10:05:00Z"));
}

TEST_CASE("a new entity yields an event per field, from null") {
  const auto events = diff(nullptr, observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z",
                                                 "fields":{"status":"placed","customer":"c-1"}})"));
  REQUIRE(events.size() == 2);
  CHECK(events[0].field == "customer");
  CHECK(events[1].field == "status");
  CHECK(events[1].old_value.is_null());
}

TEST_CASE("a partial observation keeps the fields it leaves out, and null clears a field") {
  const Entity known = merge(nullptr, observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z",
                                                  "fields":{"status":"placed","customer":"c-1","note":"x"}})"));
  const Observation partial = observe(
      R"({"type":"order","id":"A","observed_at":"2026-11-20T10:05:00Z","fields":{"status":"shipped","note":null}})");
  const auto events = diff(&known, partial);
  REQUIRE(events.size() == 2);
  CHECK(events[0].field == "note");
  CHECK(events[0].new_value.is_null());
  const Entity after = merge(&known, partial);
  CHECK(after.field("customer") == "c-1");
  CHECK(after.field("status") == "shipped");
  CHECK_FALSE(after.fields.contains("note"));
}

TEST_CASE("a full snapshot clears the fields it leaves out, each with an event to null") {
  const Entity known = merge(nullptr, observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z",
                                                  "fields":{"status":"placed","customer":"c-1","note":"x"}})"));
  const Observation full = observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:05:00Z",
                                       "partial":false,"fields":{"status":"shipped","customer":"c-1"}})");
  CHECK(full.partial == false);
  const auto events = diff(&known, full);
  REQUIRE(events.size() == 2);
  CHECK(events[0].field == "note");
  CHECK(events[0].old_value == "x");
  CHECK(events[0].new_value.is_null());
  CHECK(events[1].field == "status");
  const Entity after = merge(&known, full);
  CHECK(after.fields == nlohmann::json{{"status", "shipped"}, {"customer", "c-1"}});
}

TEST_CASE("an observation says whether it is partial with a boolean, or leaves it to its source") {
  CHECK_FALSE(observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z","fields":{}})").partial);
  const Observation partial =
      observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z","partial":true,"fields":{}})");
  CHECK(partial.partial == true);
  CHECK(to_json(partial)["partial"] == true);
  std::string error;
  CHECK_FALSE(parse_observation(
      R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z","partial":"yes","fields":{}})", error));
  CHECK(error == "field 'partial' must be true (only the fields named change) or false (a full snapshot)");
}

TEST_CASE("merging keeps when the entity was first seen") {
  Entity known = merge(nullptr, observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z",
                                            "fields":{"status":"placed"}})"));
  CHECK_FALSE(known.first_seen);
  known.first_seen = at("2026-11-20T10:00:01Z");
  const Entity after = merge(&known, observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T11:00:00Z",
                                                 "partial":false,"fields":{"status":"shipped"}})"));
  CHECK(after.first_seen == at("2026-11-20T10:00:01Z"));
}

TEST_CASE("linked entities: a shipment's order, an order's customer") {
  const Entity shipment = merge(nullptr, observe(R"({"type":"shipment","id":"S","observed_at":"2026-11-20T10:00:00Z",
                                                     "fields":{"order":"A"}})"));
  REQUIRE(shipment.parent());
  CHECK(shipment.parent()->str() == "order/A");
  CHECK_FALSE(shipment.customer_id());
  const Entity order = merge(nullptr, observe(R"({"type":"order","id":"A","observed_at":"2026-11-20T10:00:00Z",
                                                  "fields":{"customer":"c-1"}})"));
  CHECK(order.parent()->str() == "customer/c-1");
  CHECK(order.customer_id() == "c-1");
  const Entity customer =
      merge(nullptr, observe(R"({"type":"customer","id":"c-1","observed_at":"2026-11-20T10:00:00Z","fields":{}})"));
  CHECK_FALSE(customer.parent());
  CHECK(customer.customer_id() == "c-1");
}

TEST_CASE("idempotency keys are deterministic: per entity with once, per change without") {
  Intent intent{"order-cancelled",
                Kind::kApology,
                EntityRef{EntityType::kOrder, "A"},
                "c-1",
                "status=\"cancelled\"@2026-11-20T10:00:00Z",
                at("2026-11-20T10:00:00Z")};
  CHECK(idempotency_key(intent, true) == "order-cancelled:order/A");
  CHECK(idempotency_key(intent, false) == "order-cancelled:order/A:status=\"cancelled\"@2026-11-20T10:00:00Z");
}

TEST_CASE("kinds, channels and entity refs round-trip through text") {
  for (const char* k :
       {"apology", "explanation", "price_change_reason", "thank_you", "heads_up", "follow_up", "check_in"})
    CHECK(to_string(*parse_kind(k)) == k);
  CHECK_FALSE(parse_kind("discount"));
  CHECK(parse_channel("sms") == Channel::kSms);
  CHECK_FALSE(parse_channel("fax"));
  CHECK(parse_entity_ref("shipment/S-1")->id == "S-1");
  CHECK_FALSE(parse_entity_ref("shipment/"));
  CHECK_FALSE(parse_entity_ref("parcel/1"));
  CHECK(Diagnostic{"rules/a.toml", 3, 7, "bad"}.str() == "rules/a.toml:3:7: bad");
  CHECK(Diagnostic{"rules/a.toml", 0, 0, "bad"}.str() == "rules/a.toml: bad");
}

TEST_CASE("the next local time of day is found across midnight and daylight-saving changes") {
  CHECK(next_local_time(at("2026-11-20T21:30:00Z"), 8 * 60, "Europe/Amsterdam") == at("2026-11-21T07:00:00Z"));
  CHECK(next_local_time(at("2026-11-21T02:00:00Z"), 8 * 60, "Europe/Amsterdam") == at("2026-11-21T07:00:00Z"));
  CHECK(next_local_time(at("2026-11-21T07:00:00Z"), 8 * 60, "Europe/Amsterdam") == at("2026-11-21T07:00:00Z"));
  // The night the clocks go forward (29 March 2026): 08:00 is already summer time.
  CHECK(next_local_time(at("2026-03-28T22:00:00Z"), 8 * 60, "Europe/Amsterdam") == at("2026-03-29T06:00:00Z"));
  // 02:30 does not exist that night: the instant of the change.
  CHECK(next_local_time(at("2026-03-28T22:00:00Z"), 2 * 60 + 30, "Europe/Amsterdam") == at("2026-03-29T01:00:00Z"));
  CHECK(next_local_time(at("2026-11-20T10:00:00Z"), 9 * 60, "") == at("2026-11-21T09:00:00Z"));
}

TEST_CASE("a mailbox is a display name and a plain address, or nothing") {
  CHECK(parse_mailbox("Our shop <shop@example.com>")->name == "Our shop");
  CHECK(parse_mailbox("Our shop <shop@example.com>")->address == "shop@example.com");
  CHECK(parse_mailbox("\"Shop, Ltd\" <shop@example.com>")->name == "Shop, Ltd");
  CHECK(parse_mailbox("  ada@example.com ")->address == "ada@example.com");
  CHECK(parse_mailbox("ada@example.com")->name.empty());
  CHECK_FALSE(parse_mailbox("ada"));
  CHECK_FALSE(parse_mailbox("@example.com"));
  CHECK_FALSE(parse_mailbox("ada@"));
  CHECK_FALSE(parse_mailbox("a da@example.com"));
  CHECK_FALSE(parse_mailbox("ada@example.com\r\nBcc: eve@example.com"));
  CHECK_FALSE(parse_mailbox("<ada@example.com>, <eve@example.com>"));
  CHECK_FALSE(parse_mailbox("ada@x@example.com"));
}
