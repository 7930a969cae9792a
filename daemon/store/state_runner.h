// Running the daemon's store work without blocking its event loop.
//
// The store's role interfaces are synchronous: a call returns its answer.
// SQLite answers from the page cache or the disk within microseconds, so it
// is called on the loop directly. A store whose calls wait on the network
// (PostgreSQL) instead runs the work given to run() on a fiber of the loop
// thread (Boost.Context, state_runner.cpp): each statement is sent on the
// asynchronous connection and the fiber is suspended until its answer
// arrives, while the loop goes on with HTTP, curl, timers and the other
// coroutines. Why this cannot stall the loop: a fiber runs only between two
// statements, exactly as long as the same code would run on the loop with
// SQLite; every wait for the server happens with the fiber suspended and the
// loop free; and the waits are bounded by the connection (a statement
// timeout, a dead connection dropped and made again: postgres/connection.h).
//
// One fiber holds the store at a time, from the start of its work to its
// end: store work of different components never interleaves, so their
// effects come in the same order as on SQLite, and a transaction of one is
// never joined by a statement of another. Work waits its turn in the order
// it was given.
//
// A store that suspends refuses a call made on the loop outside run(): it
// throws std::logic_error naming the call, so that a missed call site is
// found by the first test that reaches it rather than stalling production.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>

namespace boost::asio {
class io_context;
}

namespace tactd {

// The fibers of one store and the turn they take (state_runner.cpp). Made
// by the store that needs it; call everything on the loop's thread.
class FiberScheduler {
 public:
  // Fibers are resumed by handlers posted to `io`, which must outlive this.
  explicit FiberScheduler(boost::asio::io_context& io);
  // Fibers still suspended are unwound (their destructors run; store calls
  // made meanwhile fail at once, closing() is true); the coroutines awaiting
  // them are dropped without an answer. Destroy before `io`.
  ~FiberScheduler();
  FiberScheduler(const FiberScheduler&) = delete;
  FiberScheduler& operator=(const FiberScheduler&) = delete;

  // Runs `work` on a fiber once the fibers before it have ended; `done`
  // is posted to the loop with the exception `work` ended by (or null).
  void start(std::function<void()> work, std::function<void(std::exception_ptr)> done);

  // Whether the caller runs on one of these fibers.
  bool on_fiber() const;
  // From a fiber: calls `begin` with a `wake` and suspends the fiber until
  // `wake` has been called (on the loop, once; calling it from `begin` itself
  // is allowed). Throws std::logic_error when not on a fiber.
  void wait(const std::function<void(std::function<void()> wake)>& begin);
  // Being destroyed: what runs now is unwinding.
  bool closing() const;

  // A fiber's stack (guarded by a page that faults on overflow).
  static constexpr std::size_t kStackSize = 4 << 20;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// A handle to run store work; copy it freely. Default-constructed (and for
// a store without fibers, SQLite's), run() calls the work at once.
class StateRunner {
 public:
  StateRunner() = default;
  // Runs on `fibers` (Store::fibers(), Intake::fibers()), which must
  // outlive it; nullptr: directly.
  explicit StateRunner(FiberScheduler* fibers) : fibers_(fibers) {}

  // Runs `work` (a callable taking nothing) and gives its result or
  // rethrows its exception. `work` is kept until it has run; what it
  // refers to must live until then (the awaiting coroutine's frame does).
  template <typename F>
  boost::asio::awaitable<std::invoke_result_t<F&>> run(F work) const;

  // Whether run() calls the work at once (no fibers).
  bool direct() const { return fibers_ == nullptr; }

 private:
  FiberScheduler* fibers_ = nullptr;
};

// For code that cannot await (a callback, a sync handler): runs `work`
// through `runner`, at once when it is direct, else on a coroutine spawned
// on `executor` that awaits it; `work` must check that what it uses still
// lives. An exception it ends with is logged with `what`.
void run_detached(const boost::asio::any_io_executor& executor, StateRunner runner, std::function<void()> work,
                  const char* what);

template <typename F>
boost::asio::awaitable<std::invoke_result_t<F&>> StateRunner::run(F work) const {
  using T = std::invoke_result_t<F&>;
  if (!fibers_) {
    if constexpr (std::is_void_v<T>) {
      work();
      co_return;
    } else {
      co_return work();
    }
  }
  using Slot = std::conditional_t<std::is_void_v<T>, bool, std::optional<T>>;
  Slot result{};
  FiberScheduler* fibers = fibers_;
  co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(std::exception_ptr)>(
      [fibers, &work, &result](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        fibers->start(
            [&work, &result] {
              if constexpr (std::is_void_v<T>) {
                work();
                result = true;
              } else {
                result.emplace(work());
              }
            },
            [shared](std::exception_ptr failure) { (*shared)(failure); });
      },
      boost::asio::use_awaitable);
  if constexpr (!std::is_void_v<T>) co_return std::move(*result);
}

}  // namespace tactd
