// Benchmark: the cost of finding due timers as the number of scheduled
// timers grows. The scheduler asks the store for due timers; with the index
// on (fired, due_at) that cost should follow the number of due timers, not
// the number of entities with a timer.
//
//   build/tests/timer_bench
#include <chrono>
#include <cstdio>

#include "store/store.h"

using namespace tactd;

namespace {

constexpr int kDue = 100;     // timers due at the moment of asking
constexpr int kRounds = 200;  // queries per measurement

double micros_per_query(Store& store, Timestamp now) {
  const auto start = std::chrono::steady_clock::now();
  size_t found = 0;
  for (int i = 0; i < kRounds; ++i) {
    found += store.due_timers(now, 1000).size();
    found += store.next_timer() ? 1 : 0;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  if (found != static_cast<size_t>(kRounds) * (kDue + 1)) std::fprintf(stderr, "unexpected count %zu\n", found);
  return std::chrono::duration<double, std::micro>(elapsed).count() / kRounds;
}

}  // namespace

int main() {
  const Timestamp now = *parse_rfc3339("2026-11-20T12:00:00Z");
  std::printf("%12s %8s %22s\n", "scheduled", "due", "us per due_timers+next");
  for (int scheduled : {1'000, 10'000, 100'000, 1'000'000}) {
    auto store = Store::open_temporary();
    {
      auto tx = store->begin();
      for (int i = 0; i < scheduled; ++i) {
        const bool due = i < kDue;
        tx->schedule_timer(Timer{"heads-up", EntityRef{EntityType::kOrder, "O-" + std::to_string(i)},
                                 due ? now - std::chrono::minutes{i + 1} : now + std::chrono::hours{1 + i % 5000}});
      }
      tx->commit();
    }
    std::printf("%12d %8d %22.1f\n", scheduled, kDue, micros_per_query(*store, now));
  }
}
