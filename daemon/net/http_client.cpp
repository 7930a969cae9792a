#include "net/http_client.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <curl/curl.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace tactd {
namespace {

namespace asio = boost::asio;

struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct ListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// curl_global_init once per process, before the first handle.
void init_curl() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  if (!done) throw std::runtime_error("curl_global_init failed");
}

// One request in flight.
struct Transfer {
  std::unique_ptr<CURL, EasyDeleter> easy;
  std::unique_ptr<curl_slist, ListDeleter> headers;
  std::string body;  // the request body; curl reads it from here
  HttpClientResponse response;
  std::function<void(HttpClientResponse)> done;
  bool too_large = false;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t->response.body.size() + size * count > HttpClient::kMaxResponseBody) {
    t->too_large = true;
    return 0;  // aborts the transfer
  }
  t->response.body.append(data, size * count);
  return size * count;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    t->response.headers.clear();  // a new response (after a redirect or 100-continue)
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.remove_suffix(1);
    t->response.headers[name] = std::string(value);
  }
  return size * count;
}

// The state shared with the loop's handlers, which hold it weakly: a handler
// that runs after the client is gone finds nothing and returns.
class Engine : public std::enable_shared_from_this<Engine> {
 public:
  explicit Engine(asio::io_context& io) : io_(io), timer_(io) {
    init_curl();
    multi_.reset(curl_multi_init());
    if (!multi_) throw std::runtime_error("curl_multi_init failed");
  }

  void attach() {
    curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETFUNCTION, &Engine::on_socket);
    curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_.get(), CURLMOPT_TIMERFUNCTION, &Engine::on_timer);
    curl_multi_setopt(multi_.get(), CURLMOPT_TIMERDATA, this);
  }

  ~Engine() {
    for (auto& [easy, transfer] : transfers_) curl_multi_remove_handle(multi_.get(), easy);
    for (auto& [fd, watch] : watches_) watch->descriptor.release();  // curl owns its sockets
  }

  void start(HttpClientRequest request, std::function<void(HttpClientResponse)> done) {
    auto transfer = std::make_unique<Transfer>();
    transfer->easy.reset(curl_easy_init());
    transfer->done = std::move(done);
    transfer->body = std::move(request.body);
    CURL* easy = transfer->easy.get();
    if (!easy) {
      fail_soon(std::move(transfer->done), "curl_easy_init failed");
      return;
    }
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (request.method == "HEAD") curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    if (!transfer->body.empty() || request.method == "POST" || request.method == "PUT") {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->body.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(transfer->body.size()));
    }
    curl_slist* list = nullptr;
    for (const auto& [name, value] : request.headers) list = curl_slist_append(list, (name + ": " + value).c_str());
    transfer->headers.reset(list);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  // whatever curl can decode
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer.get());
    transfers_.emplace(easy, std::move(transfer));
    if (curl_multi_add_handle(multi_.get(), easy) != CURLM_OK) {
      auto failed = std::move(transfers_.at(easy));
      transfers_.erase(easy);
      fail_soon(std::move(failed->done), "curl_multi_add_handle failed");
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

  // `done` runs from the loop, never inside fetch().
  void fail_soon(std::function<void(HttpClientResponse)> done, std::string error) {
    asio::post(io_, [done = std::move(done), error = std::move(error)] {
      HttpClientResponse response;
      response.error = error;
      done(std::move(response));
    });
  }

  static int on_socket(CURL*, curl_socket_t fd, int what, void* user, void*) {
    auto* self = static_cast<Engine*>(user);
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
    auto* self = static_cast<Engine*>(user);
    self->timer_.cancel();
    if (timeout_ms < 0) return 0;
    self->timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    self->timer_.async_wait([weak = self->weak_from_this()](const boost::system::error_code& ec) {
      auto engine = weak.lock();
      if (ec || !engine) return;
      engine->act(CURL_SOCKET_TIMEOUT, 0);
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
            auto engine = weak.lock();
            if (!engine) return;
            auto found = engine->watches_.find(fd);
            if (found != engine->watches_.end()) found->second.get()->*busy = false;
            if (ec) return;  // cancelled: the socket was removed
            engine->act(fd, event);
            engine->arm(fd);
          });
    };
    if ((watch.what & CURL_POLL_IN) && !watch.reading)
      wait(asio::posix::descriptor_base::wait_read, &Watch::reading, CURL_CSELECT_IN);
    if ((watch.what & CURL_POLL_OUT) && !watch.writing)
      wait(asio::posix::descriptor_base::wait_write, &Watch::writing, CURL_CSELECT_OUT);
  }

  // Tells curl what happened, then hands finished transfers to their owners.
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
      HttpClientResponse response = std::move(transfer->response);
      if (result == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
      } else {
        response.status = 0;
        response.error = transfer->too_large
                             ? "the response is larger than " + std::to_string(HttpClient::kMaxResponseBody) + " bytes"
                             : std::string(curl_easy_strerror(result));
      }
      transfer->done(std::move(response));
    }
  }

  asio::io_context& io_;
  asio::steady_timer timer_;
  std::unique_ptr<CURLM, MultiDeleter> multi_;
  std::map<CURL*, std::unique_ptr<Transfer>> transfers_;
  std::map<curl_socket_t, std::unique_ptr<Watch>> watches_;
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(asio::io_context& io) : engine_(std::make_shared<Engine>(io)) { engine_->attach(); }
  void fetch(HttpClientRequest request, std::function<void(HttpClientResponse)> done) override {
    engine_->start(std::move(request), std::move(done));
  }

 private:
  std::shared_ptr<Engine> engine_;
};

}  // namespace

std::unique_ptr<HttpClient> HttpClient::create(asio::io_context& io) { return std::make_unique<CurlHttpClient>(io); }

}  // namespace tactd
