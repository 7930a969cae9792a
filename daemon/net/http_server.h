// The inbound HTTP server: HTTP/1.1 on Boost.Beast, one coroutine per
// connection on the caller's io_context. Beast stays behind this header.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace tactd {

struct HttpRequest {
  std::string method;                          // "POST"
  std::string target;                          // "/v1/observations"
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"ETag", "\"v1\""}
};

// Called on the loop for every complete request; must not block.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Answers one request; call it once, on the loop, now or later. A responder
// destroyed without being called answers 500 ("internal error"), so that no
// connection waits for ever; one called after its connection was closed
// does nothing.
using HttpResponder = std::function<void(HttpResponse)>;
// The asynchronous form of HttpHandler, for answers that wait for something
// (a group commit): called on the loop for every complete request, must not
// block, and answers through `respond`. The connection reads no further
// request until it has answered.
using HttpAsyncHandler = std::function<void(HttpRequest, HttpResponder respond)>;
// Called on the loop with a request's method, target and headers (the body
// still empty) before its body is read; must not block. A response it
// returns (a refusal: 401, 404, 503, ...) is sent at once and the connection
// closed, without reading the body (what the client sends of it meanwhile
// is dropped, for a moment, so that the answer is not lost to a reset);
// nullopt reads the body and calls the handler. An HttpScreen that authenticates keeps unauthenticated bodies
// out of memory.
using HttpScreen = std::function<std::optional<HttpResponse>(const HttpRequest&)>;
// Called on the loop, once, with the head of a request its HttpScreen let
// through (returned nullopt) that then never reaches the handler: the
// connection closed or timed out before the body was whole, the body was
// over max_body or malformed. A screen that sets something aside for a
// request (memory for its body) gives it back here, or in the handler.
// Not called once stop() has returned.
using HttpUnscreened = std::function<void(const HttpRequest&)>;

struct HttpServerLimits {
  std::size_t max_body = 1 << 20;     // larger bodies get 413
  std::size_t max_header = 16 << 10;  // larger headers get 431
  int read_timeout_seconds = 30;      // a request must arrive whole within this
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Listens on `address:port` (port 0 picks a free one); throws
  // std::runtime_error when it cannot. `io` must outlive the server.
  // `screen` (may be empty) sees each request's head first; `unscreened`
  // (may be empty) hears of those it let through that never reach the
  // handler. When accepting
  // fails (out of file descriptors: EMFILE, ENFILE) the server waits, from
  // kAcceptBackoffMin doubling to kAcceptBackoffMax, and logs once per burst.
  static std::unique_ptr<HttpServer> start(boost::asio::io_context& io, const std::string& address, unsigned short port,
                                           HttpServerLimits limits, HttpHandler handler, HttpScreen screen = {},
                                           HttpUnscreened unscreened = {});
  // The same with an asynchronous handler.
  static std::unique_ptr<HttpServer> start(boost::asio::io_context& io, const std::string& address, unsigned short port,
                                           HttpServerLimits limits, HttpAsyncHandler handler, HttpScreen screen = {},
                                           HttpUnscreened unscreened = {});
  static constexpr auto kAcceptBackoffMin = std::chrono::milliseconds{10};
  static constexpr auto kAcceptBackoffMax = std::chrono::seconds{1};
  virtual unsigned short port() const = 0;
  // Stops accepting and closes every connection: at once when it waits for
  // a request (kept alive) or the rest of one, after its answer when one is
  // being written. The handler is not called again once stop() returns, so
  // what it refers to may go. The destructor stops too.
  virtual void stop() = 0;
};

}  // namespace tactd
