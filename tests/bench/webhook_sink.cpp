// A loopback webhook sink for the delivery and latency benchmarks: answers
// every request `200 ok` over keep-alive, on one thread, and remembers when
// (CLOCK_MONOTONIC, the clock of Python's time.monotonic()) each
// notification with an Idempotency-Key arrived.
//
//   webhook_sink PORTFILE
//
// Listens on 127.0.0.1 on a free port and writes the port to PORTFILE.
// `GET /count` answers how many keyed requests arrived; `GET /arrivals`
// answers one line per keyed request: "<monotonic ns> <key>", and forgets
// them. Requests without a key (wrk's) are answered and not remembered.
#include <utility>  // before Boost.Asio

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <time.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kBodyLimit = 1 << 20;

struct Arrival {
  long long ns;
  std::string key;
};
std::vector<Arrival> arrivals;
long long keyed = 0;

long long monotonic_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<long long>(t.tv_sec) * 1'000'000'000LL + t.tv_nsec;
}

asio::awaitable<void> session(tcp::socket socket) {
  socket.set_option(tcp::no_delay(true));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kBodyLimit);
    boost::system::error_code ec;
    co_await http::async_read(socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    const long long now = monotonic_ns();
    auto& request = parser.get();
    http::response<http::string_body> response{http::status::ok, request.version()};
    response.set(http::field::content_type, "text/plain");
    response.keep_alive(request.keep_alive());
    if (request.method() == http::verb::get && request.target() == "/count") {
      response.body() = std::to_string(keyed) + "\n";
    } else if (request.method() == http::verb::get && request.target() == "/arrivals") {
      std::string out;
      for (const auto& a : arrivals) out += std::to_string(a.ns) + " " + a.key + "\n";
      arrivals.clear();
      response.body() = std::move(out);
    } else {
      if (auto key = request.find("Idempotency-Key"); key != request.end()) {
        ++keyed;
        arrivals.push_back({now, std::string(key->value())});
      }
      response.body() = "ok\n";
    }
    response.prepare_payload();
    co_await http::async_write(socket, response, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !request.keep_alive()) co_return;
  }
}

asio::awaitable<void> listen(tcp::acceptor acceptor) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: webhook_sink PORTFILE\n");
    return 2;
  }
  asio::io_context io(1);
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  acceptor.listen(1024);
  const unsigned short port = acceptor.local_endpoint().port();
  {
    std::ofstream(std::string(argv[1]) + ".tmp") << port << "\n";
    std::rename((std::string(argv[1]) + ".tmp").c_str(), argv[1]);
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) { io.stop(); });
  asio::co_spawn(io, listen(std::move(acceptor)), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
