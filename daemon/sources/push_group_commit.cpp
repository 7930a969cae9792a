#include "sources/push_group_commit.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <charconv>

#include "store/state_runner.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tactd {
namespace {

// After a burst of at least this many observations, once every group is
// committed, the heap's free pages go back to the system. A burst of large
// pushes (20 requests of 1,000 lines over 32 connections) holds their text
// until their groups commit, and glibc keeps what that took, free but
// fragmented, for the life of the process (when they were held parsed: the
// heap grew by about 10 MB, resident memory 33 MB instead of 25 MB;
// docs/performance.md, Memory).
constexpr std::size_t kTrimAfterObservations = 4 * PushGroupCommit::kMaxGroupObservations;

void return_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace

std::size_t PushGroupCommit::expected(const HttpRequest& head) const {
  const std::size_t max_body = endpoint_.config().max_body;
  if (auto length = head.headers.find("content-length"); length != head.headers.end()) {
    unsigned long long bytes = 0;
    const std::string& text = length->second;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), bytes);
    if (ec != std::errc{} || end != text.data() + text.size()) return max_body;
    return static_cast<std::size_t>(std::min<unsigned long long>(bytes, max_body));
  }
  // Chunked: as large as it may grow. Neither: a request without a body.
  return head.headers.count("transfer-encoding") ? max_body : 0;
}

std::optional<HttpResponse> PushGroupCommit::screen(const HttpRequest& head) {
  if (auto refusal = endpoint_.screen(head)) return refusal;
  const std::size_t body = expected(head);
  const std::size_t max_held = endpoint_.config().max_held_bytes;
  const std::size_t now = held();
  if (now > 0 && now + body > max_held) {
    ++refused_;
    if (refused_in_burst_++ == 0)
      spdlog::warn(
          "push: {} bytes of bodies held, a request of {} bytes would exceed max_held_bytes {}; refusing with 503 "
          "until groups commit",
          now, body, max_held);
    return PushEndpoint::held_answer(max_held);
  }
  if (refused_in_burst_ > 0)
    spdlog::info("push: letting requests in again after {} refused for max_held_bytes",
                 std::exchange(refused_in_burst_, 0));
  reading_ += body;
  return std::nullopt;
}

void PushGroupCommit::unscreened(const HttpRequest& head) { reading_ -= std::min(reading_, expected(head)); }

void PushGroupCommit::handle(HttpRequest request, HttpResponder respond) {
  // Read: what screen() set aside is now held as the body itself, until the
  // push is answered. (A request that was not screened had nothing set aside.)
  reading_ -= std::min(reading_, expected(request));
  if (auto answer = endpoint_.admit(request)) {
    respond(std::move(*answer));
    return;
  }
  const std::size_t lines = PushEndpoint::lines(request.body);
  if (groups_.empty() || (!groups_.back().pushes.empty() && groups_.back().lines + lines > kMaxGroupObservations))
    groups_.emplace_back();
  Group& group = groups_.back();
  // One joining a group that waits for its commit: the group waits a turn
  // more. The request that opens a group does not make it wait.
  if (groups_.size() == 1 && !group.pushes.empty()) arrived_ = true;
  group.lines += lines;
  Held held(waiting_, request.body.size());
  group.pushes.push_back(Push{std::move(request.body), 0, 0, std::move(respond), std::nullopt, std::move(held)});
  schedule();
}

void PushGroupCommit::schedule() {
  if (scheduled_ || committing_ || groups_.empty()) return;
  scheduled_ = true;
  boost::asio::post(io_, [this, alive = std::weak_ptr<const int>(alive_)] {
    if (alive.expired()) return;
    scheduled_ = false;
    look();
  });
}

void PushGroupCommit::look() {
  if (groups_.empty() || committing_) return;
  // Requests read in the turns since the last look are still joining: give
  // them a turn, unless the group is full or has waited enough turns.
  const bool full = flushing_ || groups_.size() > 1 || groups_.front().lines >= kMaxGroupObservations;
  if (std::exchange(arrived_, false) && !full && ++turns_ < kMaxGatherTurns) {
    schedule();
    return;
  }
  turns_ = 0;
  Group group = std::move(groups_.front());
  groups_.pop_front();
  arrived_ = false;
  start(std::move(group));
  schedule();  // the next group, if any
}

void PushGroupCommit::flush() {
  flushing_ = true;
  if (!StateRunner(endpoint_.intake().fibers()).direct()) {  // committed one after another, on the loop
    schedule();
    return;
  }
  while (!groups_.empty()) {
    Group group = std::move(groups_.front());
    groups_.pop_front();
    start(std::move(group));
  }
  arrived_ = false;
  turns_ = 0;
}

void PushGroupCommit::start(Group waiting) {
  if (endpoint_.stopping()) {  // nothing more is committed once intake stopped
    for (Push& push : waiting.pushes) push.respond(PushEndpoint::stopping_answer());
    return;
  }
  Group group = parse(std::move(waiting));
  if (group.pushes.empty()) return;  // all of it answered 400
  burst_ += group.observations.size();
  const StateRunner runner(endpoint_.intake().fibers());
  if (runner.direct()) {
    commit(group.observations, group.pushes);
    answer(group.pushes);
    settle();
    return;
  }
  // The store's fiber commits and decides the answers; they leave from the
  // loop once it is done. The next group waits for this one (committing_).
  committing_ = true;
  auto shared = std::make_shared<Group>(std::move(group));
  boost::asio::co_spawn(
      io_,
      [this, runner, shared, alive = std::weak_ptr<const int>(alive_)]() -> boost::asio::awaitable<void> {
        // Named, capturing references only: GCC 12 destroys temporaries of a co_await twice.
        Group& taken = *shared;
        const auto work = [this, &taken] { commit(taken.observations, taken.pushes); };
        co_await runner.run(work);
        if (!alive.expired()) committing_ = false;
        answer(shared->pushes);
        if (alive.expired()) co_return;
        settle();
        schedule();
      },
      [shared](std::exception_ptr failure) {
        if (!failure) return;
        try {
          std::rethrow_exception(failure);
        } catch (const std::exception& e) {
          spdlog::error("push: a group commit failed: {}", e.what());
        }
        for (Push& push : shared->pushes)
          if (push.respond)
            push.respond(
                HttpResponse{500, "{\"error\":\"internal error; nothing was accepted\"}\n", "application/json", {}});
      });
}

PushGroupCommit::Group PushGroupCommit::parse(Group waiting) {
  Group group;
  for (Push& push : waiting.pushes) {
    auto parsed = PushEndpoint::parse(push.body);
    std::string().swap(push.body);  // parsed, its text goes at once
    if (auto* refusal = std::get_if<HttpResponse>(&parsed)) {
      push.respond(std::move(*refusal));
      continue;
    }
    auto& observations = std::get<std::vector<Observation>>(parsed);
    push.first = group.observations.size();
    push.count = observations.size();
    group.observations.insert(group.observations.end(), std::make_move_iterator(observations.begin()),
                              std::make_move_iterator(observations.end()));
    group.pushes.push_back(std::move(push));
  }
  group.lines = group.observations.size();
  return group;
}

void PushGroupCommit::settle() {
  if (groups_.empty() && !committing_ && std::exchange(burst_, 0) >= kTrimAfterObservations) return_free_memory();
}

void PushGroupCommit::answer(std::span<Push> pushes) {
  for (Push& push : pushes) {
    if (!push.answer || !push.respond) continue;
    auto respond = std::exchange(push.respond, HttpResponder());
    respond(std::move(*push.answer));
  }
}

void PushGroupCommit::commit(std::span<const Observation> observations, std::span<Push> pushes) {
  std::string error;
  bool ok = false;
  try {
    ok = endpoint_.intake().commit(observations, nullptr, error);
  } catch (const std::exception& e) {
    if (pushes.size() > 1) {  // a bug: find the request that causes it
      spdlog::warn("push: a group commit of {} requests failed ({}), committing them one by one", pushes.size(),
                   e.what());
      for (std::size_t i = 0; i < pushes.size(); ++i)
        commit(observations.subspan(pushes[i].first, pushes[i].count), pushes.subspan(i, 1));
      return;
    }
    spdlog::error("http: POST /v1/observations: {}", e.what());
    pushes.front().answer =
        HttpResponse{500, "{\"error\":\"internal error; nothing was accepted\"}\n", "application/json", {}};
    return;
  }
  ++commits_;
  requests_ += pushes.size();
  for (Push& push : pushes) push.answer = ok ? PushEndpoint::committed(push.count) : PushEndpoint::not_committed(error);
}

}  // namespace tactd
