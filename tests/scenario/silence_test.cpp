// Story 7, a long silence, counted right: from the first sighting of a
// customer nobody ever contacted, or from when the source says they became a
// customer.
#include <catch2/catch.hpp>

#include "scenario/scenario.h"

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
