#include "sources/push_group_commit.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tactd {
namespace {

// After a burst of at least this many observations, once every group is
// committed, the heap's free pages go back to the system. A burst of large
// pushes (20 requests of 1,000 lines over 32 connections) holds their parsed
// observations until their groups commit: the heap grew by about 10 MB, and
// glibc kept it, free but fragmented, for the life of the process (resident
// memory 33 MB instead of 25 MB; docs/performance.md, Memory).
constexpr std::size_t kTrimAfterObservations = 4 * PushGroupCommit::kMaxGroupObservations;

void return_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace

void PushGroupCommit::handle(HttpRequest request, HttpResponder respond) {
  auto accepted = endpoint_.accept(request);
  if (auto* answer = std::get_if<HttpResponse>(&accepted)) {
    respond(std::move(*answer));
    return;
  }
  auto& observations = std::get<std::vector<Observation>>(accepted);
  if (groups_.empty() || (!groups_.back().observations.empty() &&
                          groups_.back().observations.size() + observations.size() > kMaxGroupObservations))
    groups_.emplace_back();
  Group& group = groups_.back();
  // One joining a group that waits for its commit: the group waits a turn
  // more. The request that opens a group does not make it wait.
  if (groups_.size() == 1 && !group.pushes.empty()) arrived_ = true;
  group.pushes.push_back(Push{group.observations.size(), observations.size(), std::move(respond)});
  group.observations.insert(group.observations.end(), std::make_move_iterator(observations.begin()),
                            std::make_move_iterator(observations.end()));
  schedule();
}

void PushGroupCommit::schedule() {
  if (scheduled_ || groups_.empty()) return;
  scheduled_ = true;
  boost::asio::post(io_, [this, alive = std::weak_ptr<const int>(alive_)] {
    if (alive.expired()) return;
    scheduled_ = false;
    look();
  });
}

void PushGroupCommit::look() {
  if (groups_.empty()) return;
  // Requests read in the turns since the last look are still joining: give
  // them a turn, unless the group is full or has waited enough turns.
  const bool full = groups_.size() > 1 || groups_.front().observations.size() >= kMaxGroupObservations;
  if (std::exchange(arrived_, false) && !full && ++turns_ < kMaxGatherTurns) {
    schedule();
    return;
  }
  turns_ = 0;
  {
    Group group = std::move(groups_.front());
    groups_.pop_front();
    arrived_ = false;
    burst_ += group.observations.size();
    commit(group.observations, group.pushes);
  }
  if (groups_.empty() && std::exchange(burst_, 0) >= kTrimAfterObservations) return_free_memory();
  schedule();  // the next group, if any
}

void PushGroupCommit::flush() {
  while (!groups_.empty()) {
    Group group = std::move(groups_.front());
    groups_.pop_front();
    commit(group.observations, group.pushes);
  }
  arrived_ = false;
  turns_ = 0;
}

void PushGroupCommit::commit(std::span<const Observation> observations, std::span<Push> pushes) {
  if (endpoint_.stopping()) {  // nothing more is committed once intake stopped
    for (Push& push : pushes) push.respond(PushEndpoint::stopping_answer());
    return;
  }
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
    pushes.front().respond(
        HttpResponse{500, "{\"error\":\"internal error; nothing was accepted\"}\n", "application/json", {}});
    return;
  }
  ++commits_;
  requests_ += pushes.size();
  for (Push& push : pushes) push.respond(ok ? PushEndpoint::committed(push.count) : PushEndpoint::not_committed(error));
}

}  // namespace tactd
