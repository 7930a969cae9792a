#include "sources/push_group_commit.h"

#include <catch2/catch.hpp>

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

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
  request.headers["content-length"] = std::to_string(body.size());
  request.body = body;
  return request;
}

// The head of push(body), as the screen sees it before the body is read.
HttpRequest head(const std::string& body) {
  HttpRequest request = push(body);
  request.body.clear();
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
  explicit Fixture(Intake& intake, PushConfig c = config())
      : endpoint(std::move(c), intake, clock), group(io, endpoint) {}
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

TEST_CASE("a malformed push in a group gets its own 400 before the commit and the others are committed") {
  // Answers given by the time of the commit.
  class AnswersAtCommit final : public Intake {
   public:
    explicit AnswersAtCommit(const std::map<int, HttpResponse>& answers) : answers_(answers) {}
    bool commit(std::span<const Observation> observations, const SourceCursor* cursor, std::string& error) override {
      seen.push_back(answers_.size());
      return inner.commit(observations, cursor, error);
    }
    std::optional<std::string> cursor(const std::string& source) override { return inner.cursor(source); }
    RecordingIntake inner;
    std::vector<std::size_t> seen;

   private:
    const std::map<int, HttpResponse>& answers_;
  };
  std::map<int, HttpResponse> answers;
  AnswersAtCommit intake(answers);
  Fixture f(intake);
  const auto send = [&](int n, const std::string& body) {
    f.group.handle(push(body), [&answers, n](HttpResponse r) { answers[n] = std::move(r); });
  };
  send(1, observation("A-1"));
  send(2, observation("A-2") + "{\"type\":\"order\",\"id\":\"X\"}\n");
  send(3, observation("A-3"));
  CHECK(answers.empty());  // parsed when the group is taken up, not on arrival
  f.io.run();
  CHECK(intake.seen == std::vector<std::size_t>{1});  // the 400 did not wait for the commit
  CHECK(answers[2].status == 400);
  CHECK(nlohmann::json::parse(answers[2].body)["line"] == 2);
  REQUIRE(intake.inner.batches.size() == 1);
  CHECK(intake.inner.batches[0].size() == 2);
  CHECK(answers[1].status == 202);
  CHECK(answers[3].status == 202);
}

TEST_CASE("a push that holds no observation gets 400 and a group of nothing but such commits nothing") {
  RecordingIntake intake;
  Fixture f(intake);
  f.send(1, "\n  \n");
  f.io.run();
  CHECK(f.answers[1].status == 400);
  CHECK(intake.batches.empty());
}

TEST_CASE("a refused push is answered at once, before any group is taken up") {
  RecordingIntake intake;
  Fixture f(intake);
  f.send(1, observation("A-1"));
  HttpRequest wrong = push(observation("A-2"));
  wrong.headers["authorization"] = "Bearer not-the-token";
  f.group.handle(wrong, [&f](HttpResponse r) { f.answers[2] = std::move(r); });
  CHECK(f.answers.size() == 1);
  CHECK(f.answers[2].status == 401);
  f.io.run();
  CHECK(f.answers[1].status == 202);
  REQUIRE(intake.batches.size() == 1);
  CHECK(intake.batches[0].size() == 1);
}

#if defined(__GLIBC__)
namespace {

// Bytes of the heap in use now (one thread: the main arena, and the chunks
// glibc mapped on their own).
std::size_t heap_in_use() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

// Counts what is committed and keeps nothing of it; notes the heap in use
// at each commit.
class CountingIntake final : public Intake {
 public:
  bool commit(std::span<const Observation> observations, const SourceCursor*, std::string&) override {
    committed += observations.size();
    peak = std::max(peak, heap_in_use());
    return true;
  }
  std::optional<std::string> cursor(const std::string&) override { return std::nullopt; }
  std::size_t committed = 0;
  std::size_t peak = 0;
};

// An order as the latency bench pushes it (about 230 bytes).
std::string bench_order(int k) {
  return R"({"type":"order","id":"bo-)" + std::to_string(100000 + k) +
         R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"bc-)" + std::to_string(100000 + k) +
         R"(","status":"placed","cancel_reason":"kitchen overloaded","total":23.5,"currency":"EUR",)"
         R"("merchant":"Trattoria Da Marco","promised_by":"2030-01-01T18:00:00Z"}})" +
         "\n";
}

}  // namespace

TEST_CASE("a burst of large pushes waits as its text: at most one group is held parsed at a time") {
  // 20 requests of 1,000 lines, as the latency bench pushes its population.
  // Parsed, an observation takes several times the bytes of its line; the
  // requests waiting behind a group hold only their text.
  constexpr int kRequests = 20;
  CountingIntake intake;
  Fixture f(intake);
  std::vector<HttpRequest> requests;
  std::size_t text = 0;
  for (int r = 0; r < kRequests; ++r) {
    std::string body;
    for (std::size_t i = 0; i < PushGroupCommit::kMaxGroupObservations; ++i)
      body += bench_order(r * 1000 + static_cast<int>(i));
    text += body.size();
    requests.push_back(push(body));
  }
  // The text is read already (the requests' bodies); what the group holds
  // beyond it is measured from here.
  const std::size_t before = heap_in_use();
  for (int r = 0; r < kRequests; ++r)
    f.group.handle(std::move(requests[r]), [&f, r](HttpResponse a) { f.answers[r] = std::move(a); });
  const std::size_t waiting = heap_in_use();
  // One group's observations parsed, with their vector: well under this.
  const std::size_t one_group = PushGroupCommit::kMaxGroupObservations * 2048;
  INFO("text " << text << " bytes; heap in use before " << before << ", waiting " << waiting);
  CHECK(waiting < before + text / 4);  // next to nothing beyond the text
  f.io.run();
  INFO("heap in use at a commit at most " << intake.peak);
  CHECK(intake.peak < before + one_group);
  CHECK(intake.committed == kRequests * PushGroupCommit::kMaxGroupObservations);
  REQUIRE(f.answers.size() == kRequests);
  for (const auto& [r, answer] : f.answers) CHECK(answer.status == 202);
}
#endif

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

namespace {

// A push of `n` orders from `first` on, about 100 bytes each.
std::string orders(int first, int n) {
  std::string body;
  for (int i = first; i < first + n; ++i) body += observation("A-" + std::to_string(i));
  return body;
}

PushConfig holding(std::size_t max_held_bytes) {
  PushConfig c = Fixture::config();
  c.max_held_bytes = max_held_bytes;
  return c;
}

}  // namespace

TEST_CASE("pushes beyond max_held_bytes while groups wait are refused 503 on their head, and let in once they commit") {
  RecordingIntake intake;
  const std::string body = orders(1000, 200);  // about 20 KB, as each of the others
  Fixture f(intake, holding(3 * body.size()));
  // Three fit; their groups wait (the loop has not turned).
  for (int n = 1; n <= 3; ++n) {
    REQUIRE_FALSE(f.group.screen(head(orders(n * 1000, 200))));
    f.send(n, orders(n * 1000, 200));
  }
  CHECK(f.group.held() == 3 * body.size());
  auto refused = f.group.screen(head(orders(4000, 200)));
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->headers == std::vector<std::pair<std::string, std::string>>{{"Retry-After", "1"}});
  CHECK_THAT(nlohmann::json::parse(refused->body)["error"].get<std::string>(), Catch::Contains("max_held_bytes"));
  CHECK(f.group.refused() == 1);
  // A refusal on the head sets nothing aside: still refused.
  CHECK(f.group.screen(head(body)));
  f.io.run();  // the groups commit and are answered: their bodies go
  for (int n = 1; n <= 3; ++n) CHECK(f.answers[n].status == 202);
  CHECK(f.group.held() == 0);
  // Sent again, it goes in; nothing is lost.
  REQUIRE_FALSE(f.group.screen(head(orders(4000, 200))));
  f.send(4, orders(4000, 200));
  f.io.restart();
  f.io.run();
  CHECK(f.answers[4].status == 202);
  std::size_t committed = 0;
  for (const auto& batch : intake.batches) committed += batch.size();
  CHECK(committed == 800);
  CHECK(f.group.held() == 0);
}

TEST_CASE("a push larger than max_held_bytes goes in alone, and waits while anything else is held") {
  RecordingIntake intake;
  Fixture f(intake, holding(64 << 10));
  const std::string large = orders(0, 1000);  // about 100 KB
  REQUIRE(large.size() > (64u << 10));
  REQUIRE_FALSE(f.group.screen(head(large)));  // nothing held: let in
  auto small = f.group.screen(head(orders(5000, 1)));
  REQUIRE(small);
  CHECK(small->status == 503);
  f.send(1, large);
  f.io.run();
  CHECK(f.answers[1].status == 202);
  CHECK(f.group.held() == 0);
  CHECK_FALSE(f.group.screen(head(orders(5000, 1))));
}

TEST_CASE("a body with no Content-Length (chunked) is set aside at max_body, and given back when it is not read") {
  RecordingIntake intake;
  PushConfig c = holding(2 << 20);
  c.max_body = 1 << 20;
  Fixture f(intake, c);
  HttpRequest chunked = head("");
  chunked.headers.erase("content-length");
  chunked.headers["transfer-encoding"] = "chunked";
  REQUIRE_FALSE(f.group.screen(chunked));
  CHECK(f.group.held() == c.max_body);
  REQUIRE_FALSE(f.group.screen(chunked));
  CHECK(f.group.screen(chunked));  // a third would hold 3 MiB
  f.group.unscreened(chunked);     // one dropped mid-body
  f.group.unscreened(chunked);
  CHECK(f.group.held() == 0);
}

TEST_CASE("a connection that sends a head with a large Content-Length and drops gives back what it set aside") {
  namespace asio = boost::asio;
  RecordingIntake intake;
  Fixture f(intake, holding(64 << 10));
  int dropped = 0;
  auto server = HttpServer::start(
      f.io, "127.0.0.1", 0, {}, [&f](HttpRequest r, HttpResponder respond) { f.group.handle(std::move(r), respond); },
      [&f](const HttpRequest& h) { return f.group.screen(h); },
      [&f, &dropped](const HttpRequest& h) {
        f.group.unscreened(h);
        ++dropped;
      });
  const asio::ip::tcp::endpoint at{asio::ip::make_address("127.0.0.1"), server->port()};
  const auto run_until = [&f](const std::function<bool()>& done) {
    for (int i = 0; i < 1000 && !done(); ++i) f.io.run_for(std::chrono::milliseconds{10});
  };
  {
    // The whole budget announced, a little of it sent, then gone.
    asio::ip::tcp::socket socket(f.io);
    socket.connect(at);
    const std::string request = "POST /v1/observations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
                                "\r\nContent-Length: " + std::to_string(64 << 10) + "\r\n\r\n" + observation("A-0");
    asio::write(socket, asio::buffer(request));
  }
  run_until([&] { return dropped == 1; });
  REQUIRE(dropped == 1);
  CHECK(f.group.held() == 0);
  // A later push is let in and committed.
  asio::ip::tcp::socket socket(f.io);
  socket.connect(at);
  const std::string body = observation("A-1");
  const std::string request =
      "POST /v1/observations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " + kToken +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  asio::write(socket, asio::buffer(request));
  std::string answer;
  bool closed = false;
  asio::async_read(socket, asio::dynamic_buffer(answer),
                   [&closed](boost::system::error_code, std::size_t) { closed = true; });
  run_until([&] { return closed; });
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 202"));
  CHECK(f.group.refused() == 0);
  CHECK(f.group.held() == 0);
}
