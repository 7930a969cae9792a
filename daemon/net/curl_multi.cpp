#include "net/curl_multi.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>
#include <stdexcept>
#include <vector>

namespace tactd::curl {
namespace {

namespace asio = boost::asio;

struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};

// curl_global_init once per process, before the first handle.
void init_curl() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  if (!done) throw std::runtime_error("curl_global_init failed");
}

// The state shared with the loop's handlers, which hold it weakly: a handler
// that runs after the engine is gone finds nothing and returns.
class Multi : public std::enable_shared_from_this<Multi> {
 public:
  explicit Multi(asio::io_context& io) : io_(io), timer_(io) {
    init_curl();
    multi_.reset(curl_multi_init());
    if (!multi_) throw std::runtime_error("curl_multi_init failed");
  }

  void attach() {
    curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETFUNCTION, &Multi::on_socket);
    curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_.get(), CURLMOPT_TIMERFUNCTION, &Multi::on_timer);
    curl_multi_setopt(multi_.get(), CURLMOPT_TIMERDATA, this);
  }

  ~Multi() {
    for (auto& [easy, transfer] : transfers_) curl_multi_remove_handle(multi_.get(), easy);
    for (auto& [fd, watch] : watches_) watch->descriptor.release();  // curl owns its sockets
  }

  void start(std::unique_ptr<Transfer> transfer) {
    CURL* easy = transfer->easy();
    if (!easy) {
      fail_soon(std::move(transfer), "curl_easy_init failed");
      return;
    }
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    auto [it, added] = transfers_.emplace(easy, std::move(transfer));
    if (curl_multi_add_handle(multi_.get(), easy) != CURLM_OK) {
      auto failed = std::move(it->second);
      transfers_.erase(it);
      fail_soon(std::move(failed), "curl_multi_add_handle failed");
    }
    // curl now asks for a timeout through on_timer, which starts the transfer.
  }

 private:
  struct Watch {
    explicit Watch(asio::io_context& io, curl_socket_t fd) : descriptor(io, fd) {}
    asio::posix::stream_descriptor descriptor;
    int what = 0;  // CURL_POLL_IN / OUT / INOUT
    bool reading = false;
    bool writing = false;
  };

  // fail() runs from the loop, never inside start(), and not at all once
  // the engine is gone.
  void fail_soon(std::unique_ptr<Transfer> transfer, std::string error) {
    std::shared_ptr<Transfer> failed = std::move(transfer);
    asio::post(io_, [weak = weak_from_this(), failed, error = std::move(error)] {
      if (weak.lock()) failed->fail(error);
    });
  }

  static int on_socket(CURL*, curl_socket_t fd, int what, void* user, void*) {
    auto* self = static_cast<Multi*>(user);
    if (what == CURL_POLL_REMOVE) {
      if (auto it = self->watches_.find(fd); it != self->watches_.end()) {
        it->second->descriptor.release();  // cancels waits without closing curl's socket
        self->watches_.erase(it);
      }
      return 0;
    }
    auto& watch = self->watches_[fd];
    if (!watch) watch = std::make_unique<Watch>(self->io_, fd);
    watch->what = what;
    self->arm(fd);
    return 0;
  }

  static int on_timer(CURLM*, long timeout_ms, void* user) {
    auto* self = static_cast<Multi*>(user);
    self->timer_.cancel();
    if (timeout_ms < 0) return 0;
    if (timeout_ms == 0) {  // at once (a transfer was added): a posted handler, without setting a kernel timer
      if (std::exchange(self->timeout_posted_, true)) return 0;
      asio::post(self->io_, [weak = self->weak_from_this()] {
        auto multi = weak.lock();
        if (!multi) return;
        multi->timeout_posted_ = false;
        multi->act(CURL_SOCKET_TIMEOUT, 0);
      });
      return 0;
    }
    self->timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    self->timer_.async_wait([weak = self->weak_from_this()](const boost::system::error_code& ec) {
      auto multi = weak.lock();
      if (ec || !multi) return;
      multi->act(CURL_SOCKET_TIMEOUT, 0);
    });
    return 0;
  }

  // Waits for the socket to become readable or writable, as curl asked.
  void arm(curl_socket_t fd) {
    auto it = watches_.find(fd);
    if (it == watches_.end()) return;
    Watch& watch = *it->second;
    auto wait = [this, fd](asio::posix::descriptor_base::wait_type type, bool Watch::*busy, int event) {
      watches_.at(fd).get()->*busy = true;
      watches_.at(fd)->descriptor.async_wait(
          type, [weak = weak_from_this(), fd, busy, event](const boost::system::error_code& ec) {
            auto multi = weak.lock();
            if (!multi) return;
            auto found = multi->watches_.find(fd);
            if (found != multi->watches_.end()) found->second.get()->*busy = false;
            if (ec) return;  // cancelled: the socket was removed
            multi->act(fd, event);
            multi->arm(fd);
          });
    };
    if ((watch.what & CURL_POLL_IN) && !watch.reading)
      wait(asio::posix::descriptor_base::wait_read, &Watch::reading, CURL_CSELECT_IN);
    if ((watch.what & CURL_POLL_OUT) && !watch.writing)
      wait(asio::posix::descriptor_base::wait_write, &Watch::writing, CURL_CSELECT_OUT);
  }

  // Tells curl what happened, then hands finished transfers back.
  void act(curl_socket_t fd, int event) {
    int running = 0;
    curl_multi_socket_action(multi_.get(), fd, event, &running);
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_.get(), &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      CURL* easy = message->easy_handle;
      const CURLcode result = message->data.result;
      auto it = transfers_.find(easy);
      if (it == transfers_.end()) continue;
      std::unique_ptr<Transfer> transfer = std::move(it->second);
      transfers_.erase(it);
      curl_multi_remove_handle(multi_.get(), easy);
      transfer->finish(result);
    }
  }

  asio::io_context& io_;
  asio::steady_timer timer_;
  bool timeout_posted_ = false;  // a handler for curl's "time out now" is on its way
  std::unique_ptr<CURLM, MultiDeleter> multi_;
  std::map<CURL*, std::unique_ptr<Transfer>> transfers_;
  std::map<curl_socket_t, std::unique_ptr<Watch>> watches_;
};

class AsioEngine final : public Engine {
 public:
  explicit AsioEngine(asio::io_context& io) : multi_(std::make_shared<Multi>(io)) { multi_->attach(); }
  void start(std::unique_ptr<Transfer> transfer) override { multi_->start(std::move(transfer)); }

 private:
  std::shared_ptr<Multi> multi_;
};

}  // namespace

namespace {

// Easy handles done with, reset to curl's defaults, for the next transfers
// of this thread (everything of the engine runs on the loop's thread).
// Bounded: a burst leaves at most kMaxIdle behind.
class EasyPool {
 public:
  static constexpr std::size_t kMaxIdle = 256;
  ~EasyPool() {
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
  }
  CURL* take() {
    if (idle_.empty()) return curl_easy_init();
    CURL* easy = idle_.back();
    idle_.pop_back();
    return easy;
  }
  void give(CURL* easy) {
    if (idle_.size() >= kMaxIdle) {
      curl_easy_cleanup(easy);
      return;
    }
    curl_easy_reset(easy);  // every option back to its default; curl keeps its caches
    idle_.push_back(easy);
  }

 private:
  std::vector<CURL*> idle_;
};

EasyPool& easy_pool() {
  thread_local EasyPool pool;
  return pool;
}

}  // namespace

void EasyDeleter::operator()(CURL* easy) const { easy_pool().give(easy); }

Transfer::Transfer() {
  init_curl();
  easy_.reset(easy_pool().take());
}

std::unique_ptr<Engine> Engine::create(asio::io_context& io) { return std::make_unique<AsioEngine>(io); }

}  // namespace tactd::curl
