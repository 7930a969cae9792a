// The outbound HTTP client: libcurl's multi-socket interface driven by the
// caller's Boost.Asio io_context, so no request ever blocks the loop, many
// run at once, and connections are reused. curl stays behind this header.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace tactd {

inline constexpr std::size_t kDefaultMaxResponseBody = std::size_t{16} << 20;

struct HttpClientRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{30'000};  // the whole transfer
  // A response body larger than this fails the transfer ("too large")
  // without being read further: before it starts when its Content-Length
  // says so, else once this much has arrived.
  std::size_t max_body = kDefaultMaxResponseBody;
};

struct HttpClientResponse {
  long status = 0;                             // 0 when no response arrived
  std::map<std::string, std::string> headers;  // names in lower case, of the final response
  std::string body;
  std::string error;  // transport failure (timeout, refused, too large); empty when a response arrived
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // `io` must outlive the client. Call everything on the loop's thread.
  static std::unique_ptr<HttpClient> create(boost::asio::io_context& io);

  // Starts a request and returns at once; `done` runs on the loop with the
  // response (or the transport error). Redirects are never followed: a 3xx
  // is the response, with its Location header, so that no header of the
  // request (a token) goes to a host the caller did not choose. Destroying the client abandons the
  // requests in flight without calling their `done`.
  virtual void fetch(HttpClientRequest request, std::function<void(HttpClientResponse)> done) = 0;

  static constexpr std::size_t kMaxResponseBody = kDefaultMaxResponseBody;  // larger responses fail by default
};

// The wait a Retry-After header asks for: delay-seconds, or an IMF-fixdate
// ("Sun, 06 Nov 1994 08:49:37 GMT") measured from `now` and never negative.
// nullopt when it is neither.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::sys_time<std::chrono::milliseconds> now);

}  // namespace tactd
