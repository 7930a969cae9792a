// Group commit for the push endpoint: the pushes that arrive together share
// one transaction, and so one sync of the state, instead of one each.
//
// A request is authenticated at once (PushEndpoint::admit()): a refusal
// (401, 404, 405) or the 503 of a stopping daemon is answered at once and
// never touches a group. An admitted request joins the open group as its
// text, and is parsed only when its group is taken up for its commit, so
// that the requests waiting behind a group hold their bodies' text, not
// their parsed observations (several times as large; docs/performance.md,
// Memory): at most one group's observations are parsed at a time. A request
// that does not parse is answered then, 400 naming the line, before the
// commit, and leaves the group: it never spoils the others' commit. The
// group is committed once the loop has
// taken in what arrived with it (no timer: the loop turns that read the
// other requests are all it waits for), and every request in it is answered
// then: 202 with its own count after the commit that holds it, 503 with
// Retry-After for all of them when that commit fails (nothing of the group
// is kept). A group whose commit throws anything but a store failure (a
// bug) is committed again request by request, so that only the request
// that causes it gets 500. Once a burst of pushes is all committed, the
// heap's free pages go back to the system (glibc keeps them otherwise).
//
// The bodies held in memory are bounded (PushConfig::max_held_bytes): those
// being read, set aside by screen() from the request's head, and those
// waiting for their group, until their request is answered. A request that
// would take them over the bound is refused on its head, 503 with
// Retry-After, before its body is read; one alone is always let in, so that
// a body larger than the bound can still go in when nothing else is held.
//
// When the intake's store runs on fibers (Intake::fibers(), PostgreSQL), a
// group is committed on the store's fiber while the loop goes on taking in
// requests; the next group is committed after it, and the answers leave
// from the loop once their commit is done.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "net/http_server.h"
#include "sources/push_endpoint.h"

namespace boost::asio {
class io_context;
}

namespace tactd {

class PushGroupCommit {
 public:
  // `io` and `endpoint` must outlive this. Call on `io`'s loop only.
  PushGroupCommit(boost::asio::io_context& io, PushEndpoint& endpoint) : io_(io), endpoint_(endpoint) {}
  PushGroupCommit(const PushGroupCommit&) = delete;
  PushGroupCommit& operator=(const PushGroupCommit&) = delete;

  // HttpServer's HttpScreen for the push endpoint: PushEndpoint::screen(),
  // then the bodies held. Sets aside the body's size (its Content-Length;
  // chunked, without one: max_body) until handle() takes the request or
  // unscreened() gives it back; refuses 503 with Retry-After when that
  // would hold more than max_held_bytes while something is held already.
  std::optional<HttpResponse> screen(const HttpRequest& head);
  // HttpServer's HttpUnscreened: a request screen() let through that never
  // reached handle() (its connection dropped or timed out mid-body, its body
  // too large): what was set aside for it is given back.
  void unscreened(const HttpRequest& head);
  // HttpServer's HttpAsyncHandler for the push endpoint. Takes over what
  // screen() set aside for the request: its body is held until it is
  // answered.
  void handle(HttpRequest request, HttpResponder respond);
  // Commits and answers every waiting group now: before the endpoint or
  // its intake is replaced (a reload). On fibers, "now" is "one after the
  // other from here on": this, the endpoint and its intake must then live
  // until idle(). Requests still waiting when this is destroyed are
  // answered 500 by their responders, uncommitted.
  void flush();
  // No group waits and none is being committed.
  bool idle() const { return groups_.empty() && !committing_; }

  // A group takes requests until it holds this many observations (one
  // request may bring more; counted as their lines before they are parsed):
  // a commit holds the loop for about 150 µs an observation, and the next
  // group is taken in after it. It bounds too the observations held parsed.
  static constexpr std::size_t kMaxGroupObservations = 1000;
  // The turns of the loop a group waits at most for requests still
  // arriving (it is committed as soon as a turn brings none).
  static constexpr int kMaxGatherTurns = 4;

  // Commits so far and the requests they held, for tests and logs.
  std::size_t commits() const { return commits_; }
  std::size_t requests() const { return requests_; }
  // Bytes of bodies held now (being read and waiting for their group), and
  // the requests refused so far because of them; for tests and logs.
  std::size_t held() const { return reading_ + *waiting_; }
  std::size_t refused() const { return refused_; }

 private:
  // A push's body, counted in `total` until the push is gone (answered).
  // The total is shared: a group committed on the store's fiber may
  // outlive this.
  class Held {
   public:
    Held() = default;
    Held(std::shared_ptr<std::size_t> total, std::size_t bytes) : total_(std::move(total)), bytes_(bytes) {
      *total_ += bytes_;
    }
    Held(Held&& other) noexcept : total_(std::move(other.total_)), bytes_(std::exchange(other.bytes_, 0)) {}
    Held& operator=(Held&& other) noexcept {
      if (this != &other) {
        release();
        total_ = std::move(other.total_);
        bytes_ = std::exchange(other.bytes_, 0);
      }
      return *this;
    }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() { release(); }

   private:
    void release() {
      if (total_) *total_ -= bytes_;
      total_.reset();
      bytes_ = 0;
    }
    std::shared_ptr<std::size_t> total_;
    std::size_t bytes_ = 0;
  };
  struct Push {
    std::string body;       // its text while it waits; empty once parsed
    std::size_t first = 0;  // its observations in the group's, once parsed
    std::size_t count = 0;
    HttpResponder respond;
    std::optional<HttpResponse> answer;  // decided by commit(), sent by answer()
    Held held;                           // its body's bytes in waiting_, until it is answered
  };
  struct Group {
    std::vector<Observation> observations;  // of all its pushes, in the order they came; once parsed
    std::vector<Push> pushes;
    std::size_t lines = 0;  // the observations its pushes hold, counted before they are parsed
  };

  // The bytes screen() sets aside for `head`'s body.
  std::size_t expected(const HttpRequest& head) const;
  // Posts the next look at the first group, unless one is posted.
  void schedule();
  // Commits the first group once the last turn brought no request to it.
  void look();
  // Parses `group`, then commits it and answers its requests, at once or
  // (on fibers) once the store's fiber has committed it.
  void start(Group group);
  // `waiting`'s pushes parsed: those that parse with their observations,
  // the others answered 400 and left out.
  static Group parse(Group waiting);
  // Once every group is committed after a large burst: free memory back to the system.
  void settle();
  // Commits `observations` for `pushes` and decides their answers.
  void commit(std::span<const Observation> observations, std::span<Push> pushes);
  // Sends the answers decided.
  static void answer(std::span<Push> pushes);

  boost::asio::io_context& io_;
  PushEndpoint& endpoint_;
  std::deque<Group> groups_;  // the first one is committed next
  bool scheduled_ = false;
  bool arrived_ = false;     // a request joined the first group since the last look
  bool committing_ = false;  // a group is being committed on the store's fiber
  bool flushing_ = false;    // flush(): no more waiting for requests to join
  int turns_ = 0;            // looks at the first group so far
  std::size_t burst_ = 0;    // observations committed since the groups were last all committed
  std::size_t commits_ = 0;
  std::size_t requests_ = 0;
  std::size_t reading_ = 0;  // set aside by screen() for bodies being read
  std::shared_ptr<std::size_t> waiting_ = std::make_shared<std::size_t>(0);  // bodies of pushes not yet answered
  std::size_t refused_ = 0;
  std::size_t refused_in_burst_ = 0;  // since the last request let through: logged once a burst
  // A posted look holds it weakly: one that runs after this is gone does nothing.
  std::shared_ptr<const int> alive_ = std::make_shared<const int>(0);
};

}  // namespace tactd
