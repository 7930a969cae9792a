#include "net/http_server.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <set>
#include <stdexcept>

namespace tactd {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Shared {
  HttpServerLimits limits;
  HttpAsyncHandler handler;
  HttpScreen screen;
  HttpUnscreened unscreened;
};

// The connections of one server, for stop(): the sockets of sessions that
// wait for (the rest of) a request, and whether the server was stopped.
struct Connections {
  bool stopped = false;
  std::set<tcp::socket*> waiting;
};

HttpResponse error_response(int status, const std::string& message) {
  return HttpResponse{status, nlohmann::json{{"error", message}}.dump() + "\n", "application/json", {}};
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// One request's answer from the handler: the session waits on `ready` until
// `response` is set.
struct Answer {
  explicit Answer(const asio::any_io_executor& executor) : ready(executor) {
    ready.expires_at(asio::steady_timer::time_point::max());
  }
  std::optional<HttpResponse> response;
  asio::steady_timer ready;
};

// Behind an HttpResponder: gives the answer once, 500 when destroyed
// without one.
class Responder {
 public:
  explicit Responder(std::weak_ptr<Answer> answer) : answer_(std::move(answer)) {}
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder() {
    if (!answered_) give(error_response(500, "internal error; nothing was accepted"));
  }
  void give(HttpResponse response) {
    if (std::exchange(answered_, true)) return;
    if (auto answer = answer_.lock()) {
      answer->response = std::move(response);
      answer->ready.cancel();  // the session goes on in its own turn of the loop
    }
  }

 private:
  std::weak_ptr<Answer> answer_;
  bool answered_ = false;
};

HttpResponder responder(const std::shared_ptr<Answer>& answer) {
  return [responder = std::make_shared<Responder>(answer)](HttpResponse response) {
    responder->give(std::move(response));
  };
}

// The response for a request that could not be read, or nothing (close).
std::optional<HttpResponse> read_failure(const boost::system::error_code& ec) {
  if (ec == http::error::body_limit) return error_response(413, "the body is larger than this endpoint accepts");
  if (ec == http::error::header_limit) return error_response(431, "the request headers are too large");
  if (ec.category() == boost::system::error_code(http::error::bad_method).category())  // any other HTTP parse error
    return error_response(400, "malformed HTTP request: " + ec.message());
  return std::nullopt;  // end of stream, timeout, reset: nothing to answer
}

asio::awaitable<void> write(beast::tcp_stream& stream, unsigned version, bool keep_alive, const HttpResponse& r) {
  http::response<http::string_body> response{static_cast<http::status>(r.status), version};
  response.set(http::field::server, "tactd");
  response.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) response.set(name, value);
  response.keep_alive(keep_alive);
  response.body() = r.body;
  response.prepare_payload();
  boost::system::error_code ec;
  co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
}

// After an answer to a request whose body is not read (a refusal of the
// screen, a body larger than max_body, a malformed request): the
// connection is half-closed and what the client still sends (the body it
// did not hold back) is read and dropped, never kept, until it closes, for
// at most kLingerTime and kLingerBytes. Closing with unread bytes
// would reset the connection, and a reset can destroy the answer before the
// client has read it (RFC 9112, 9.6: tear-down).
constexpr auto kLingerTime = std::chrono::seconds{2};
constexpr std::size_t kLingerBytes = 16 << 20;

asio::awaitable<void> linger(beast::tcp_stream& stream, Connections& connections) {
  if (connections.stopped) co_return;  // stopped while the answer was written: closed as it goes
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  stream.expires_after(kLingerTime);
  std::array<char, 4096> dropped;
  connections.waiting.insert(&stream.socket());  // stop() closes it
  for (std::size_t read = 0; read < kLingerBytes;) {
    const std::size_t n =
        co_await stream.async_read_some(asio::buffer(dropped), asio::redirect_error(asio::use_awaitable, ec));
    if (connections.stopped) co_return;  // stop() closed the socket
    if (ec) break;
    read += n;
  }
  connections.waiting.erase(&stream.socket());
}

// The last answer on a connection whose request was not read whole, then linger().
asio::awaitable<void> answer_unread(beast::tcp_stream& stream, Connections& connections, unsigned version,
                                    const HttpResponse& answer) {
  co_await write(stream, version, false, answer);
  co_await linger(stream, connections);
}

// One connection: requests are read and answered in turn until the peer
// closes, a request is malformed, it stops keeping the connection alive, or
// the server is stopped.
asio::awaitable<void> session(tcp::socket socket, std::shared_ptr<const Shared> shared,
                              std::shared_ptr<Connections> connections) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(shared->limits.max_body);
    parser.header_limit(static_cast<std::uint32_t>(shared->limits.max_header));
    stream.expires_after(std::chrono::seconds(shared->limits.read_timeout_seconds));
    boost::system::error_code ec;
    // While it waits for a request, stop() may close the connection.
    connections->waiting.insert(&stream.socket());
    co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (connections->stopped) co_return;  // stop() closed the socket
    if (ec) {
      connections->waiting.erase(&stream.socket());
      if (auto answer = read_failure(ec)) co_return co_await answer_unread(stream, *connections, 11, *answer);
      break;
    }
    HttpRequest request;
    {
      const auto& head = parser.get();
      request.method = std::string(head.method_string());
      request.target = std::string(head.target());
      for (const auto& field : head)
        request.headers[lower(std::string(field.name_string()))] = std::string(field.value());
    }
    if (auto refusal = shared->screen ? shared->screen(request) : std::nullopt) {
      connections->waiting.erase(&stream.socket());
      co_return co_await answer_unread(stream, *connections, parser.get().version(), *refusal);  // body never read
    }
    // From here until the handler has it, a request the screen let through
    // that ends otherwise is told to `unscreened`, so that what the screen
    // set aside for it is given back.
    const auto unscreened = [&] {
      if (shared->screen && shared->unscreened) shared->unscreened(request);
    };
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> go_on{http::status::continue_, parser.get().version()};
      co_await http::async_write(stream, go_on, asio::redirect_error(asio::use_awaitable, ec));
      if (connections->stopped) co_return;
      if (ec) {
        connections->waiting.erase(&stream.socket());
        unscreened();
        break;
      }
    }
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    connections->waiting.erase(&stream.socket());
    if (connections->stopped) co_return;  // stop() closed the socket
    if (ec) {
      unscreened();
      if (auto answer = read_failure(ec)) co_return co_await answer_unread(stream, *connections, 11, *answer);
      break;
    }
    const auto& message = parser.get();
    request.body = std::move(parser.get().body());
    stream.expires_never();
    const std::string what = request.method + " " + request.target;
    auto answer = std::make_shared<Answer>(stream.get_executor());
    try {
      shared->handler(std::move(request), responder(answer));
    } catch (const std::exception& e) {
      spdlog::error("http: {}: {}", what, e.what());
      if (!answer->response) answer->response = error_response(500, "internal error; nothing was accepted");
    }
    if (!answer->response) co_await answer->ready.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_await write(stream, message.version(), message.keep_alive() && !connections->stopped, *answer->response);
    if (!message.keep_alive() || connections->stopped) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

class BeastServer final : public HttpServer {
 public:
  BeastServer(asio::io_context& io, const tcp::endpoint& endpoint, std::shared_ptr<const Shared> shared)
      : acceptor_(io, endpoint), shared_(std::move(shared)), connections_(std::make_shared<Connections>()) {
    asio::co_spawn(io, accept(), [](std::exception_ptr failure) {
      if (!failure) return;
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        spdlog::error("http: accepting stopped: {}", e.what());
      }
    });
  }

  ~BeastServer() override { stop(); }

  unsigned short port() const override { return acceptor_.local_endpoint().port(); }

  void stop() override {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    connections_->stopped = true;
    for (tcp::socket* socket : connections_->waiting) {
      socket->shutdown(tcp::socket::shutdown_both, ignored);
      socket->close(ignored);
    }
    connections_->waiting.clear();
  }

 private:
  // Accepts until stopped. A failed accept (most often: out of file
  // descriptors) waits before the next, so that it cannot spin, and is
  // logged once per burst of failures.
  asio::awaitable<void> accept() {
    asio::steady_timer pause(acceptor_.get_executor());
    std::chrono::milliseconds backoff{0};
    long long failed = 0;
    while (acceptor_.is_open()) {
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        if (failed++ == 0) spdlog::warn("http: accept failed, backing off: {}", ec.message());
        backoff = std::clamp<std::chrono::milliseconds>(backoff * 2, kAcceptBackoffMin, kAcceptBackoffMax);
        pause.expires_after(backoff);
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      if (failed > 0) spdlog::info("http: accepting again after {} failed accepts", failed);
      failed = 0;
      backoff = {};
      asio::co_spawn(acceptor_.get_executor(), session(std::move(socket), shared_, connections_),
                     [](std::exception_ptr failure) {
                       if (!failure) return;
                       try {
                         std::rethrow_exception(failure);
                       } catch (const std::exception& e) {
                         spdlog::warn("http: connection ended: {}", e.what());
                       }
                     });
    }
  }

  tcp::acceptor acceptor_;
  std::shared_ptr<const Shared> shared_;
  std::shared_ptr<Connections> connections_;
};

}  // namespace

std::unique_ptr<HttpServer> HttpServer::start(asio::io_context& io, const std::string& address, unsigned short port,
                                              HttpServerLimits limits, HttpHandler handler, HttpScreen screen,
                                              HttpUnscreened unscreened) {
  return start(
      io, address, port, limits,
      [handler = std::move(handler)](HttpRequest request, HttpResponder respond) { respond(handler(request)); },
      std::move(screen), std::move(unscreened));
}

std::unique_ptr<HttpServer> HttpServer::start(asio::io_context& io, const std::string& address, unsigned short port,
                                              HttpServerLimits limits, HttpAsyncHandler handler, HttpScreen screen,
                                              HttpUnscreened unscreened) {
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) throw std::runtime_error("'" + address + "' is not an IP address");
  try {
    return std::make_unique<BeastServer>(
        io, tcp::endpoint(ip, port),
        std::make_shared<const Shared>(Shared{limits, std::move(handler), std::move(screen), std::move(unscreened)}));
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot listen on " + address + ":" + std::to_string(port) + ": " + e.what());
  }
}

}  // namespace tactd
