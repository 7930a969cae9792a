#include "channels/delivery.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>

#include <exception>
#include <map>

#include "support/faulty_store.h"

using namespace tactd;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

// A provider that accepts everything on the next turn of the loop and
// counts what it was given, by idempotency key; `on_send` runs as each
// request leaves.
class CountingSender final : public Sender {
 public:
  CountingSender(asio::io_context& io, std::map<std::string, int>& sent, std::function<void()> on_send)
      : io_(io), sent_(sent), on_send_(std::move(on_send)) {}
  void send(const Notification& notification, std::function<void(Verdict)> done) override {
    ++sent_[notification.idempotency_key];
    on_send_();
    asio::post(io_, [done = std::move(done)] { done(Verdict{Verdict::kDelivered, std::nullopt, "HTTP 202"}); });
  }

 private:
  asio::io_context& io_;
  std::map<std::string, int>& sent_;
  std::function<void()> on_send_;
};

Notification notification(int i, Timestamp due) {
  Notification n;
  n.idempotency_key = "test:" + std::to_string(i);
  n.at = due;
  n.rule = "test";
  n.customer = "c-" + std::to_string(i);
  n.entity = EntityRef{EntityType::kOrder, "O-" + std::to_string(i)};
  n.channel = Channel::kSms;
  n.to = "+31600000000";
  n.body = "Sorry.";
  n.locale = "en";
  return n;
}

// Delivery on a VirtualClock over a FaultyStore, driven turn by turn.
struct Bench {
  explicit Bench(int backlog, int concurrency, Delivery::ReleaseCheck release = {})
      : clock(at("2026-11-20T10:00:00Z")), faulty(*store) {
    for (int i = 0; i < backlog; ++i) store->enqueue(notification(i, clock.now()));
    ChannelConfig channel;
    channel.channel = Channel::kSms;
    channel.provider = "webhook";
    channel.concurrency = concurrency;
    channel.rate = 1000;
    channel.burst = 1000;
    std::vector<Delivery::Lane> lanes;
    lanes.push_back(Delivery::Lane{channel, std::make_unique<CountingSender>(io, sent, [this] {
                                     if (disk_fills_on_send)
                                       faulty.fail = true;  // after the claims, before the verdicts
                                   })});
    delivery = std::make_unique<Delivery>(faulty, clock, std::move(lanes), Delivery::Observer{}, std::move(release));
    asio::co_spawn(io, delivery->run(), [this](std::exception_ptr e) {
      finished = true;
      if (e) std::rethrow_exception(e);
    });
  }
  ~Bench() {
    delivery->start_shutdown(clock.now());
    io.poll();
  }
  // One look: wakes the loop and runs until only its sleep is left.
  void turn(Duration later = 1s) {
    clock.advance_to(clock.now() + later);
    delivery->wake();
    io.poll();
    io.restart();
  }
  std::size_t delivered() const { return store->outbox(OutboxStatus::kDelivered).size(); }

  asio::io_context io;
  VirtualClock clock;
  std::unique_ptr<Store> store = Store::open_temporary();
  FaultyStore faulty;
  std::map<std::string, int> sent;
  bool disk_fills_on_send = false;
  std::unique_ptr<Delivery> delivery;
  bool finished = false;
};

}  // namespace

TEST_CASE("the verdicts of one turn are stored in one transaction, with the claims of the next") {
  Bench bench(50, 64);
  bench.turn();
  CHECK(bench.sent.size() == 50);
  CHECK(bench.delivered() == 50);
  // Settling what a crash cut off, the 50 claims, then the 50 verdicts with
  // the next round's claims (none left).
  CHECK(bench.faulty.transactions == 3);
  CHECK(bench.delivery->in_flight() == 0);
  CHECK(bench.store->contacts("c-7").size() == 1);
}

TEST_CASE("a verdict the store refuses is kept and written again, and its channel sends nothing meanwhile") {
  Bench bench(5, 2);
  bench.disk_fills_on_send = true;  // the disk is full once the requests left
  bench.turn();
  CHECK(bench.sent.size() == 2);  // two attempts started; their verdicts could not be stored
  CHECK(bench.delivery->unstored() == 2);
  for (int i = 0; i < 20; ++i) bench.turn(1s);                    // 20 seconds of a full disk
  CHECK(bench.sent.size() == 2);                                  // nothing new started on the channel
  for (const auto& [key, times] : bench.sent) CHECK(times == 1);  // nothing sent again
  CHECK(bench.delivery->unstored() == 2);
  CHECK(bench.faulty.refused >= 20);
  CHECK(bench.delivered() == 0);

  bench.disk_fills_on_send = bench.faulty.fail = false;  // space again
  for (int i = 0; i < 5 && bench.delivered() < 5; ++i) bench.turn(1s);
  CHECK(bench.delivered() == 5);
  CHECK(bench.sent.size() == 5);
  for (const auto& [key, times] : bench.sent) CHECK(times == 1);
  CHECK(bench.delivery->unstored() == 0);
  CHECK(bench.delivery->in_flight() == 0);
  for (int i = 0; i < 5; ++i) CHECK(bench.store->contacts("c-" + std::to_string(i)).size() == 1);
}

TEST_CASE("a stop waits for the verdicts in flight to be stored") {
  Bench bench(3, 3);
  bench.disk_fills_on_send = true;
  bench.turn();
  CHECK(bench.delivery->unstored() == 3);
  bench.delivery->start_shutdown(bench.clock.now() + 10s);
  bench.turn(1s);
  CHECK_FALSE(bench.finished);  // still holding verdicts it could not store
  bench.disk_fills_on_send = bench.faulty.fail = false;
  bench.turn(1s);
  CHECK(bench.finished);
  CHECK(bench.delivered() == 3);
}

TEST_CASE("the claims of a round and the verdicts of the last commit together") {
  Bench bench(10, 4);
  bench.turn();
  // Each turn after the first stores 4 verdicts and claims 4 more, one
  // transaction each: settling, 3 rounds of claims, the last verdicts.
  CHECK(bench.delivered() == 10);
  CHECK(bench.faulty.transactions == 5);
  for (const auto& [key, times] : bench.sent) CHECK(times == 1);
  CHECK(bench.store->interrupted().empty());
}

TEST_CASE("an entry whose release check throws is held back, and the others go out at once") {
  int throws = 0;
  Bench bench(5, 8, [&throws](Store::Transaction&, const OutboxEntry& entry) -> std::optional<Notification> {
    if (entry.notification.idempotency_key == "test:2" && throws++ == 0) throw StoreError("a glitch reading it");
    return entry.notification;
  });
  bench.turn();  // the round is rolled back; the next one starts without the entry
  CHECK(bench.sent.empty());
  bench.turn(1s);
  CHECK(bench.sent.size() == 4);
  CHECK(bench.delivered() == 4);
  CHECK_FALSE(bench.sent.count("test:2"));
  REQUIRE(bench.store->outbox_entry(3));
  CHECK(bench.store->decisions(3).back().decision == "held back");
  bench.turn(Delivery::kFailureBackoff);
  CHECK(bench.delivered() == 5);
  for (const auto& [key, times] : bench.sent) CHECK(times == 1);
}
