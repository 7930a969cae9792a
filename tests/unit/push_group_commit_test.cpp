#include "sources/push_group_commit.h"

#include <catch2/catch.hpp>

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <stdexcept>

#include "support/recording_intake.h"

using namespace tactd;
using tactd::test::RecordingIntake;

namespace {

const std::string kToken = "group-token";

std::string observation(const std::string& id) {
  return R"({"type":"order","id":")" + id + R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"status":"placed"}})" +
         "\n";
}

HttpRequest push(const std::string& body) {
  HttpRequest request;
  request.method = "POST";
  request.target = "/v1/observations";
  request.headers["authorization"] = "Bearer " + kToken;
  request.body = body;
  return request;
}

// An intake that throws (a bug, not a store failure) on an order "boom".
class ThrowingIntake final : public Intake {
 public:
  bool commit(std::span<const Observation> observations, const SourceCursor* cursor, std::string& error) override {
    for (const Observation& o : observations)
      if (o.ref.id == "boom") throw std::logic_error("a bug in the pipeline");
    return inner.commit(observations, cursor, error);
  }
  std::optional<std::string> cursor(const std::string& source) override { return inner.cursor(source); }
  RecordingIntake inner;
};

// The endpoint and its group commit on a loop of their own; answers are
// kept by request number.
struct Fixture {
  explicit Fixture(Intake& intake) : endpoint(config(), intake, clock), group(io, endpoint) {}
  static PushConfig config() {
    PushConfig c;
    c.token = kToken;
    return c;
  }
  // Hands request `n` to the group; its answer lands in answers[n].
  void send(int n, const std::string& body) {
    group.handle(push(body), [this, n](HttpResponse r) { answers[n] = std::move(r); });
  }
  nlohmann::json body(int n) const { return nlohmann::json::parse(answers.at(n).body); }

  boost::asio::io_context io;
  VirtualClock clock{Timestamp{std::chrono::seconds{1'795'000'000}}};
  PushEndpoint endpoint;
  PushGroupCommit group;
  std::map<int, HttpResponse> answers;
};

}  // namespace

TEST_CASE("pushes that arrive together share one commit, each answered 202 with its own count after it") {
  RecordingIntake intake;
  Fixture f(intake);
  f.send(1, observation("A-1"));
  f.send(2, observation("A-2") + observation("A-3"));
  // One more that arrives a turn later still joins the group.
  boost::asio::post(f.io, [&] { f.send(3, observation("A-4")); });
  CHECK(f.answers.empty());  // nothing answered before the commit
  f.io.run();
  REQUIRE(intake.batches.size() == 1);
  REQUIRE(intake.batches[0].size() == 4);
  CHECK(intake.batches[0][0].ref.id == "A-1");  // in the order they came
  CHECK(intake.batches[0][3].ref.id == "A-4");
  REQUIRE(f.answers.size() == 3);
  CHECK(f.answers[1].status == 202);
  CHECK(f.body(1)["accepted"] == 1);
  CHECK(f.body(2)["accepted"] == 2);
  CHECK(f.body(3)["accepted"] == 1);
  CHECK(f.group.commits() == 1);
  CHECK(f.group.requests() == 3);
}

TEST_CASE("a group whose commit fails answers every request in it 503 with Retry-After") {
  RecordingIntake intake;
  intake.refuse = true;
  Fixture f(intake);
  for (int n = 1; n <= 3; ++n) f.send(n, observation("A-" + std::to_string(n)));
  f.io.run();
  REQUIRE(f.answers.size() == 3);
  for (int n = 1; n <= 3; ++n) {
    CHECK(f.answers[n].status == 503);
    CHECK_THAT(f.answers[n].body, Catch::Contains("disk full"));
    CHECK(f.answers[n].headers == std::vector<std::pair<std::string, std::string>>{{"Retry-After", "5"}});
  }
  CHECK(intake.batches.empty());
}

TEST_CASE("a malformed push in a group gets its own 400 at once and the others are committed") {
  RecordingIntake intake;
  Fixture f(intake);
  f.send(1, observation("A-1"));
  f.send(2, observation("A-2") + "{\"type\":\"order\",\"id\":\"X\"}\n");
  f.send(3, observation("A-3"));
  CHECK(f.answers.size() == 1);  // the 400 does not wait for the commit
  CHECK(f.answers[2].status == 400);
  CHECK(f.body(2)["line"] == 2);
  f.io.run();
  REQUIRE(intake.batches.size() == 1);
  CHECK(intake.batches[0].size() == 2);
  CHECK(f.answers[1].status == 202);
  CHECK(f.answers[3].status == 202);
}

TEST_CASE("a push that makes the commit throw gets 500 alone, and the rest of its group is committed") {
  ThrowingIntake intake;
  Fixture f(intake);
  f.send(1, observation("A-1"));
  f.send(2, observation("boom"));
  f.send(3, observation("A-3"));
  f.io.run();
  CHECK(f.answers[1].status == 202);
  CHECK(f.answers[2].status == 500);
  CHECK(f.answers[3].status == 202);
  CHECK(intake.inner.batches.size() == 2);  // one by one after the group failed
}

TEST_CASE("when intake stops during a group nothing of it is committed and all of it is answered 503") {
  RecordingIntake intake;
  Fixture f(intake);
  f.send(1, observation("A-1"));
  f.send(2, observation("A-2"));
  f.endpoint.stop_intake();
  f.send(3, observation("A-3"));  // after the stop: answered at once
  CHECK(f.answers.size() == 1);
  CHECK(f.answers[3].status == 503);
  f.io.run();
  REQUIRE(f.answers.size() == 3);
  CHECK(f.answers[1].status == 503);
  CHECK_THAT(f.answers[1].body, Catch::Contains("stopping"));
  CHECK(f.answers[2].status == 503);
  CHECK(intake.batches.empty());
}

TEST_CASE("a group holds at most kMaxGroupObservations, and the next ones wait for a group of their own") {
  RecordingIntake intake;
  Fixture f(intake);
  std::string big;
  for (std::size_t i = 0; i < PushGroupCommit::kMaxGroupObservations - 1; ++i)
    big += observation("B-" + std::to_string(i));
  f.send(1, big);
  f.send(2, observation("A-1") + observation("A-2"));  // would make it too big
  f.send(3, observation("A-3"));
  f.io.run();
  REQUIRE(intake.batches.size() == 2);
  CHECK(intake.batches[0].size() == PushGroupCommit::kMaxGroupObservations - 1);
  CHECK(intake.batches[1].size() == 3);
  CHECK(f.answers[1].status == 202);
  CHECK(f.answers[2].status == 202);
  CHECK(f.answers[3].status == 202);
}

TEST_CASE("flush commits and answers a waiting group at once") {
  RecordingIntake intake;
  Fixture f(intake);
  f.send(1, observation("A-1"));
  f.send(2, observation("A-2"));
  f.group.flush();
  CHECK(intake.batches.size() == 1);
  CHECK(f.answers.size() == 2);
  f.io.run();  // the look posted before finds nothing
  CHECK(intake.batches.size() == 1);
}

TEST_CASE("a push alone is committed in the loop's next turn, without waiting a turn for others") {
  RecordingIntake intake;
  Fixture f(intake);
  f.send(1, observation("A-1"));
  std::size_t committed_by_then = 0;
  boost::asio::post(f.io, [&] { committed_by_then = intake.batches.size(); });  // the turn after
  f.io.run();
  CHECK(committed_by_then == 1);
  CHECK(f.answers[1].status == 202);
}
