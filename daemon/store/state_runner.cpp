#include "store/state_runner.h"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <deque>
#include <stdexcept>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace tactd {
namespace asio = boost::asio;
namespace ctx = boost::context;

namespace {

// AddressSanitizer must be told of every switch between the loop's stack
// and a fiber's: Boost.Context's fcontext switches (Debian's build) do not
// tell it. Without it, an exception thrown on a fiber cannot clear the
// frames it unwinds (ASan does not know that stack's bounds) and a later
// frame on the same stack is reported as an overflow. `leaving` comes
// right before a switch, with the stack switched to; `arrived` right after
// one, on the new stack, and learns the bounds of the stack left.
struct Bounds {
  const void* bottom = nullptr;
  std::size_t size = 0;
};
void leaving([[maybe_unused]] void** fake_stack, [[maybe_unused]] const Bounds& to) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(fake_stack, to.bottom, to.size);
#endif
}
void arrived([[maybe_unused]] void* fake_stack, [[maybe_unused]] Bounds* from) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, from ? &from->bottom : nullptr, from ? &from->size : nullptr);
#endif
}

// Thrown on a suspended fiber when its scheduler is destroyed: its work
// unwinds (destructors run) and the fiber ends by returning, so that the
// last switch is one ASan was told of. Not a std::exception: the store's
// error handling lets it pass.
struct Unwinding {};

// Hands out one guarded stack again and again: only one fiber exists at a
// time (the one holding the store), so after the first the stack is not
// mapped anew for each piece of work.
class ReusedStack {
 public:
  // `bounds`: where the stack handed out last is.
  ReusedStack(std::shared_ptr<std::optional<ctx::stack_context>> spare, Bounds& bounds)
      : spare_(std::move(spare)), bounds_(&bounds) {}
  ctx::stack_context allocate() {
    ctx::stack_context stack;
    if (*spare_) {
      stack = **spare_;
      spare_->reset();
    } else {
      stack = ctx::protected_fixedsize_stack(FiberScheduler::kStackSize).allocate();
    }
    *bounds_ = Bounds{static_cast<const char*>(stack.sp) - stack.size, stack.size};  // it grows down from sp
    return stack;
  }
  void deallocate(ctx::stack_context& stack) noexcept {
    if (!*spare_) {
      *spare_ = stack;
      return;
    }
    ctx::protected_fixedsize_stack(FiberScheduler::kStackSize).deallocate(stack);
  }

 private:
  std::shared_ptr<std::optional<ctx::stack_context>> spare_;
  Bounds* bounds_;
};

}  // namespace

class FiberScheduler::Impl {
 public:
  struct Task : std::enable_shared_from_this<Task> {
    std::function<void()> work;
    std::function<void(std::exception_ptr)> done;
    std::exception_ptr failure;
    ctx::fiber fiber;            // the fiber, while it is suspended
    ctx::fiber caller;           // the loop's side, while the fiber runs
    Bounds stack;                // the fiber's stack
    Bounds loop;                 // the loop's stack, as the fiber last left it
    void* fake_stack = nullptr;  // ASan's, for the fiber while it is suspended
  };

  explicit Impl(asio::io_context& io) : io_(io) {}

  ~Impl() {
    closing_ = true;
    queue_.clear();  // never started: their awaiting coroutines are dropped
    // A suspended fiber is resumed once more: its wait() throws Unwinding,
    // its store calls fail at once meanwhile, and it ends. Its awaiting
    // coroutine hears nothing (closing_).
    if (active_) {
      const std::shared_ptr<Task> task = active_;
      resume(task);
      // Work that caught Unwinding and waited again: ctx::fiber's own unwinding.
      if (task->fiber) task->fiber = ctx::fiber();
      active_.reset();
    }
    if (*spare_) ctx::protected_fixedsize_stack(kStackSize).deallocate(**spare_);
  }

  void start(std::function<void()> work, std::function<void(std::exception_ptr)> done) {
    auto task = std::make_shared<Task>();
    task->work = std::move(work);
    task->done = std::move(done);
    queue_.push_back(std::move(task));
    schedule();
  }

  bool on_fiber() const { return current_ != nullptr; }
  bool closing() const { return closing_; }

  void wait(const std::function<void(std::function<void()>)>& begin) {
    Task* task = current_;
    if (!task) throw std::logic_error("FiberScheduler::wait() called outside a fiber");
    auto woken = std::make_shared<bool>(false);
    begin([this, weak = std::weak_ptr<Task>(task->shared_from_this()), woken, alive = std::weak_ptr<int>(alive_)] {
      *woken = true;
      if (alive.expired()) return;
      auto resumed = weak.lock();
      if (!resumed || resumed.get() == current_) return;  // called from `begin`: no need to resume
      if (current_) {                                     // on another fiber (never in practice): from the loop instead
        asio::post(io_, [this, resumed, alive] {
          if (!alive.expired()) resume(resumed);
        });
        return;
      }
      resume(resumed);
    });
    while (!*woken) {
      if (closing_) throw Unwinding{};
      leaving(&task->fake_stack, task->loop);
      task->caller = std::move(task->caller).resume();
      arrived(task->fake_stack, &task->loop);
    }
  }

 private:
  // Posts next() unless it is posted or a fiber holds the store.
  void schedule() {
    if (posted_ || active_ || queue_.empty() || closing_) return;
    posted_ = true;
    asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
      if (alive.expired()) return;
      posted_ = false;
      next();
    });
  }

  void next() {
    if (active_ || queue_.empty() || closing_) return;
    active_ = std::move(queue_.front());
    queue_.pop_front();
    Task* task = active_.get();
    task->fiber = ctx::fiber(std::allocator_arg, ReusedStack(spare_, task->stack), [task](ctx::fiber&& caller) {
      arrived(nullptr, &task->loop);
      task->caller = std::move(caller);
      try {
        task->work();
      } catch (const ctx::detail::forced_unwind&) {
        throw;  // the fiber is being destroyed: let it unwind
      } catch (const Unwinding&) {
        // the scheduler is being destroyed: nobody waits for the outcome
      } catch (...) {
        task->failure = std::current_exception();
      }
      leaving(nullptr, task->loop);  // for good: this stack is done with
      return std::move(task->caller);
    });
    resume(active_);
  }

  // Runs `task`'s fiber until it suspends or ends; on the loop's stack.
  void resume(const std::shared_ptr<Task>& task) {
    current_ = task.get();
    void* loop_fake_stack = nullptr;
    leaving(&loop_fake_stack, task->stack);
    task->fiber = std::move(task->fiber).resume();
    arrived(loop_fake_stack, nullptr);
    current_ = nullptr;
    if (task->fiber || closing_) return;  // suspended: a wake() resumes it; closing: nobody waits
    // Ended: the awaiting coroutine hears of it from the loop, and the next
    // piece of work may take the store.
    asio::post(io_, [done = std::move(task->done), failure = task->failure] { done(failure); });
    if (active_ == task) active_.reset();
    schedule();
  }

  asio::io_context& io_;
  std::deque<std::shared_ptr<Task>> queue_;  // waiting for the store, in the order given
  std::shared_ptr<Task> active_;             // holds the store, from its start to its end
  Task* current_ = nullptr;                  // whose fiber runs now
  bool posted_ = false;
  bool closing_ = false;
  std::shared_ptr<std::optional<ctx::stack_context>> spare_ = std::make_shared<std::optional<ctx::stack_context>>();
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // posted handlers hold it weakly
};

FiberScheduler::FiberScheduler(asio::io_context& io) : impl_(std::make_unique<Impl>(io)) {}
FiberScheduler::~FiberScheduler() = default;
void FiberScheduler::start(std::function<void()> work, std::function<void(std::exception_ptr)> done) {
  impl_->start(std::move(work), std::move(done));
}
bool FiberScheduler::on_fiber() const { return impl_->on_fiber(); }
void FiberScheduler::wait(const std::function<void(std::function<void()> wake)>& begin) { impl_->wait(begin); }
bool FiberScheduler::closing() const { return impl_->closing(); }

namespace {
// Not a lambda coroutine: its parameters live in its own frame.
asio::awaitable<void> run_work(StateRunner runner, std::function<void()> work) {
  const auto call = [&work] { work(); };
  co_await runner.run(call);
}
}  // namespace

void run_detached(const asio::any_io_executor& executor, StateRunner runner, std::function<void()> work,
                  const char* what) {
  if (runner.direct()) {
    work();
    return;
  }
  asio::co_spawn(executor, run_work(runner, std::move(work)), [what](std::exception_ptr failure) {
    if (!failure) return;
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      spdlog::error("{}: {}", what, e.what());
    }
  });
}

}  // namespace tactd
