// Benchmark: how fast the delivery loop drains a backlog, and whether its
// cost per notification grows with the backlog. The sender answers at once
// (delivered) on the next turn of the loop, so what is measured is the
// outbox work per notification: finding due entries, limits, recording the
// attempt and the contact (the verdicts of a turn in one transaction), and
// waking for the next.
//
//   build/tests/delivery_bench
#include <utility>  // before Boost.Asio

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdio>
#include <exception>

#include "channels/delivery.h"
#include "store/store.h"

using namespace tactd;
namespace asio = boost::asio;

namespace {

// A provider that accepts everything instantly.
class InstantSender final : public Sender {
 public:
  explicit InstantSender(asio::io_context& io) : io_(io) {}
  void send(const Notification&, std::function<void(Verdict)> done) override {
    asio::post(io_, [done = std::move(done)] { done(Verdict{Verdict::kDelivered, std::nullopt, "HTTP 202"}); });
  }

 private:
  asio::io_context& io_;
};

Notification notification(int i, Timestamp due) {
  Notification n;
  n.idempotency_key = "bench:" + std::to_string(i);
  n.at = due;
  n.rule = "bench";
  n.customer = "c-" + std::to_string(i);
  n.entity = EntityRef{EntityType::kOrder, "O-" + std::to_string(i)};
  n.channel = Channel::kSms;
  n.to = "+31600000000";
  n.body = "Sorry, we had to cancel your order. The full amount goes back to you.";
  n.locale = "en";
  return n;
}

}  // namespace

int main() {
  spdlog::set_level(spdlog::level::warn);  // not a line per delivery
  std::printf("%10s %12s %16s\n", "backlog", "seconds", "notifications/s");
  for (int backlog : {1'000, 10'000, 50'000}) {
    SystemClock clock;
    auto store = Store::open_temporary();
    {
      auto tx = store->begin();
      for (int i = 0; i < backlog; ++i) tx->enqueue(notification(i, clock.now() - std::chrono::minutes{1}));
      tx->commit();
    }
    asio::io_context io;
    ChannelConfig channel;
    channel.channel = Channel::kSms;
    channel.provider = "webhook";
    channel.concurrency = 64;
    // Above any backlog here: what is measured is the outbox work, not the
    // channel's rate limit (at 10,000/s the largest backlog measured that).
    channel.rate = 1'000'000;
    channel.burst = 1'000'000;
    std::vector<Delivery::Lane> lanes;
    lanes.push_back(Delivery::Lane{channel, std::make_unique<InstantSender>(io)});
    int stored = 0;  // verdicts stored: the observer hears of each once it is
    Delivery delivery(*store, clock, std::move(lanes), [&](const Delivery::AttemptEnd&) {
      if (++stored == backlog) io.stop();
    });
    asio::co_spawn(io, delivery.run(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    const auto start = std::chrono::steady_clock::now();
    io.run();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (store->outbox(OutboxStatus::kDelivered).size() != static_cast<size_t>(backlog))
      std::fprintf(stderr, "not all delivered\n");
    std::printf("%10d %12.2f %16.0f\n", backlog, seconds, backlog / seconds);
  }
}
