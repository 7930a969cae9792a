#include "net/http_client.h"

#include <sys/resource.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <functional>
#include <vector>

#include "net/http_server.h"

#include "support/captured_log.h"

using namespace tactd;
namespace asio = boost::asio;

namespace {

// A server on a free loopback port that echoes what it got.
std::unique_ptr<HttpServer> echo_server(asio::io_context& io, HttpServerLimits limits = {}) {
  return HttpServer::start(io, "127.0.0.1", 0, limits, [](const HttpRequest& request) {
    HttpResponse response;
    response.status = request.target == "/missing" ? 404 : 200;
    response.body = request.method + " " + request.target + " " + request.body;
    auto header = request.headers.find("x-test");
    if (header != request.headers.end()) response.body += " x-test=" + header->second;
    response.content_type = "text/plain";
    return response;
  });
}

std::string url(const HttpServer& server, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + path;
}

}  // namespace

TEST_CASE("the client fetches over loopback on the loop, with method, headers and body") {
  asio::io_context io;
  auto server = echo_server(io);
  auto client = HttpClient::create(io);
  HttpClientResponse got;
  client->fetch({"POST", url(*server, "/v1/x"), {{"X-Test", "yes"}}, "hello", std::chrono::seconds{5}},
                [&](HttpClientResponse r) {
                  got = std::move(r);
                  io.stop();
                });
  io.run_for(std::chrono::seconds{10});
  INFO(got.error);
  CHECK(got.status == 200);
  CHECK(got.body == "POST /v1/x hello x-test=yes");
  CHECK(got.headers.at("content-type") == "text/plain");
  CHECK(got.error.empty());
}

TEST_CASE("many requests run at once and each gets its own answer") {
  asio::io_context io;
  auto server = echo_server(io);
  auto client = HttpClient::create(io);
  constexpr int kRequests = 50;
  int answered = 0;
  int correct = 0;
  for (int i = 0; i < kRequests; ++i) {
    client->fetch({"GET", url(*server, "/n/" + std::to_string(i)), {}, "", std::chrono::seconds{10}},
                  [&, i](HttpClientResponse r) {
                    correct += r.status == 200 && r.body == "GET /n/" + std::to_string(i) + " ";
                    if (++answered == kRequests) io.stop();
                  });
  }
  io.run_for(std::chrono::seconds{20});
  CHECK(answered == kRequests);
  CHECK(correct == kRequests);
}

TEST_CASE("an HTTP error status is a response, a refused connection and a timeout are errors") {
  asio::io_context io;
  auto server = echo_server(io);
  // A listener that accepts and never answers.
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket held(io);
  silent.async_accept(held, [](const boost::system::error_code&) {});
  const auto silent_url = "http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/";
  // A port with nobody listening.
  unsigned short closed_port = 0;
  {
    asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
    closed_port = probe.local_endpoint().port();
  }
  auto client = HttpClient::create(io);
  HttpClientResponse missing, refused, slow;
  int answered = 0;
  auto finish = [&] {
    if (++answered == 3) io.stop();
  };
  client->fetch({"GET", url(*server, "/missing"), {}, "", std::chrono::seconds{5}}, [&](HttpClientResponse r) {
    missing = std::move(r);
    finish();
  });
  client->fetch({"GET", "http://127.0.0.1:" + std::to_string(closed_port) + "/", {}, "", std::chrono::seconds{5}},
                [&](HttpClientResponse r) {
                  refused = std::move(r);
                  finish();
                });
  client->fetch({"GET", silent_url, {}, "", std::chrono::milliseconds{300}}, [&](HttpClientResponse r) {
    slow = std::move(r);
    finish();
  });
  io.run_for(std::chrono::seconds{10});
  CHECK(answered == 3);
  CHECK(missing.status == 404);
  CHECK(missing.error.empty());
  CHECK(refused.status == 0);
  CHECK_FALSE(refused.error.empty());
  CHECK(slow.status == 0);
  CHECK_THAT(slow.error, Catch::Contains("Timeout", Catch::CaseSensitive::No));
}

TEST_CASE("destroying the client abandons requests in flight without calling back") {
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket held(io);
  silent.async_accept(held, [](const boost::system::error_code&) {});
  auto client = HttpClient::create(io);
  bool called = false;
  client->fetch({"GET",
                 "http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/",
                 {},
                 "",
                 std::chrono::seconds{5}},
                [&](HttpClientResponse) { called = true; });
  io.run_for(std::chrono::milliseconds{200});
  client.reset();
  io.run_for(std::chrono::milliseconds{200});
  CHECK_FALSE(called);
}

TEST_CASE("stopping the server closes kept-alive connections, and its handler is not called again") {
  asio::io_context io;
  int handled = 0;
  auto server = HttpServer::start(io, "127.0.0.1", 0, {}, [&](const HttpRequest&) {
    ++handled;
    return HttpResponse{200, "ok", "text/plain", {}};
  });
  const std::string target = url(*server, "/");
  auto client = HttpClient::create(io);
  HttpClientResponse first, second;
  // The client keeps the first connection open for the second request,
  // unless the server has closed it.
  client->fetch({"GET", target, {}, "", std::chrono::seconds{5}}, [&](HttpClientResponse r) {
    first = std::move(r);
    server->stop();
    client->fetch({"GET", target, {}, "", std::chrono::seconds{5}}, [&](HttpClientResponse again) {
      second = std::move(again);
      io.stop();
    });
  });
  io.run_for(std::chrono::seconds{10});
  CHECK(first.status == 200);
  CHECK(second.status == 0);
  CHECK_FALSE(second.error.empty());
  CHECK(handled == 1);
}

TEST_CASE("a request refused on its head is answered at once, its body never read") {
  asio::io_context io;
  int handled = 0;
  auto server = HttpServer::start(
      io, "127.0.0.1", 0, {},
      [&](const HttpRequest&) {
        ++handled;
        return HttpResponse{};
      },
      [](const HttpRequest& head) -> std::optional<HttpResponse> {
        if (head.headers.count("authorization")) return std::nullopt;
        return HttpResponse{401, "{\"error\":\"who are you\"}", "application/json", {}};
      });
  // A head announcing 1 MiB that never comes: only an answer that does not wait for the body ends this.
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server->port()});
  const std::string head = "POST /v1/observations HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
  asio::write(socket, asio::buffer(head));
  std::string answer;
  std::array<char, 512> chunk{};
  std::function<void(boost::system::error_code, std::size_t)> on_read = [&](boost::system::error_code ec,
                                                                            std::size_t n) {
    answer.append(chunk.data(), n);
    if (ec) return io.stop();
    socket.async_read_some(asio::buffer(chunk), on_read);
  };
  socket.async_read_some(asio::buffer(chunk), on_read);
  io.run_for(std::chrono::seconds{5});
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 401") && Catch::Contains("who are you"));
  CHECK(handled == 0);
}

namespace {

// Sends a 12 MiB body (more than the kernel's buffers hold: it is all sent
// only if the server reads it) and reads until the server closes.
struct LargePost {
  bool written = false;
  boost::system::error_code wrote;  // set: the connection was reset
  boost::system::error_code read;   // eof: the server closed after answering
  std::string answer;
};
LargePost post_large_body(asio::io_context& io, unsigned short port) {
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  const std::string body(12 << 20, 'x');
  const std::string request =
      "POST /v1/observations HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  LargePost out;
  asio::async_write(socket, asio::buffer(request), [&](boost::system::error_code ec, std::size_t) {
    out.wrote = ec;
    out.written = true;
  });
  bool ended = false;
  asio::async_read(socket, asio::dynamic_buffer(out.answer), [&](boost::system::error_code ec, std::size_t) {
    out.read = ec;
    ended = true;
  });
  for (int i = 0; i < 1000 && !(out.written && ended); ++i) io.run_for(std::chrono::milliseconds{10});
  return out;
}

}  // namespace

TEST_CASE("a body sent after a head that was refused is dropped as it comes, so the refusal is not lost to a reset") {
  asio::io_context io;
  HttpServerLimits limits;
  limits.max_body = 32 << 20;
  auto server = HttpServer::start(
      io, "127.0.0.1", 0, limits, [](const HttpRequest&) { return HttpResponse{}; },
      [](const HttpRequest&) -> std::optional<HttpResponse> {
        return HttpResponse{503, "{\"error\":\"busy\"}", "application/json", {{"Retry-After", "1"}}};
      });
  const LargePost post = post_large_body(io, server->port());
  CHECK(post.written);
  CHECK_FALSE(post.wrote);  // not reset
  CHECK(post.read == asio::error::eof);
  CHECK_THAT(post.answer, Catch::StartsWith("HTTP/1.1 503") && Catch::Contains("busy"));
}

TEST_CASE(
    "a body larger than max_body is answered 413 and the rest of it dropped, so the answer is not lost to a reset") {
  asio::io_context io;
  HttpServerLimits limits;
  limits.max_body = 1 << 20;
  int handled = 0;
  auto server = HttpServer::start(io, "127.0.0.1", 0, limits, [&](const HttpRequest&) {
    ++handled;
    return HttpResponse{};
  });
  const LargePost post = post_large_body(io, server->port());
  CHECK(post.written);
  CHECK_FALSE(post.wrote);  // not reset
  CHECK(post.read == asio::error::eof);
  CHECK_THAT(post.answer, Catch::StartsWith("HTTP/1.1 413") && Catch::Contains("larger than this endpoint accepts"));
  CHECK(handled == 0);
}

TEST_CASE("a request let through by the screen that never reaches the handler is told to unscreened, once") {
  asio::io_context io;
  HttpServerLimits limits;
  limits.max_body = 1024;
  int handled = 0;
  std::vector<std::string> unscreened;
  auto server = HttpServer::start(
      io, "127.0.0.1", 0, limits,
      [&](const HttpRequest&) {
        ++handled;
        return HttpResponse{200, "ok", "text/plain", {}};
      },
      [](const HttpRequest&) -> std::optional<HttpResponse> { return std::nullopt; },
      [&](const HttpRequest& head) { unscreened.push_back(head.target); });
  const asio::ip::tcp::endpoint at{asio::ip::make_address("127.0.0.1"), server->port()};
  const auto run_until = [&io](const std::function<bool()>& done) {
    for (int i = 0; i < 1000 && !done(); ++i) io.run_for(std::chrono::milliseconds{10});
  };
  {
    // Dropped mid-body.
    asio::ip::tcp::socket socket(io);
    socket.connect(at);
    asio::write(socket,
                asio::buffer(std::string("POST /dropped HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nab")));
  }
  run_until([&] { return unscreened.size() == 1; });
  // A chunked body over max_body: 413.
  asio::ip::tcp::socket large(io);
  large.connect(at);
  asio::write(large, asio::buffer("POST /large HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
                                  std::string(0x800, 'x') + "\r\n"));
  run_until([&] { return unscreened.size() == 2; });
  // A whole request reaches the handler and is not told.
  asio::ip::tcp::socket whole(io);
  whole.connect(at);
  asio::write(whole, asio::buffer(std::string("POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")));
  run_until([&] { return handled == 1; });
  io.run_for(std::chrono::milliseconds{50});
  CHECK(handled == 1);
  CHECK(unscreened == std::vector<std::string>{"/dropped", "/large"});
}

TEST_CASE("out of file descriptors, the accept loop backs off and logs once per burst instead of spinning") {
#ifdef __SANITIZE_ADDRESS__
  // The sanitizers' own checks open descriptors (a pipe to probe memory) and
  // report every object as invalid once none is left: the regular build
  // (.ci/test) runs this test.
  WARN("skipped under the sanitizers");
  return;
#endif
  asio::io_context io;
  tactd::test::CapturedLog log;
  auto server = echo_server(io);
  const auto port = server->port();
  rlimit original{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &original) == 0);
  rlimit low = original;
  low.rlim_cur = std::min<rlim_t>(original.rlim_cur, 256);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  // Use up every descriptor but one, which the client's socket takes.
  std::vector<int> held;
  for (int fd; (fd = dup(0)) >= 0;) held.push_back(fd);
  REQUIRE(errno == EMFILE);
  close(held.back());
  held.pop_back();
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});  // queued; accepting it fails: EMFILE
  io.run_for(std::chrono::milliseconds{500});
  const std::string starved = log.text();
  for (int fd : held) close(fd);
  setrlimit(RLIMIT_NOFILE, &original);
  asio::write(socket, asio::buffer(std::string("GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
  std::string answer;
  boost::system::error_code ec;
  io.run_for(std::chrono::milliseconds{1500});  // the backoff ends, the connection is accepted and answered
  asio::read(socket, asio::dynamic_buffer(answer), ec);
  size_t failures = 0;
  for (size_t at = 0; (at = starved.find("accept failed", at)) != std::string::npos; ++at) ++failures;
  CHECK(failures == 1);
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("GET /again"));
  CHECK_THAT(log.text(), Catch::Contains("accepting again after"));
}

TEST_CASE("the client follows no redirect: a 3xx is the answer, with its Location") {
  asio::io_context io;
  int requests = 0;
  auto server = HttpServer::start(io, "127.0.0.1", 0, {}, [&](const HttpRequest&) {
    ++requests;
    return HttpResponse{302, "", "text/plain", {{"Location", "/elsewhere"}}};
  });
  auto client = HttpClient::create(io);
  HttpClientResponse got;
  client->fetch({"POST", url(*server, "/send"), {{"Authorization", "Bearer t"}}, "x", std::chrono::seconds{5}},
                [&](HttpClientResponse r) {
                  got = std::move(r);
                  io.stop();
                });
  io.run_for(std::chrono::seconds{10});
  CHECK(got.status == 302);
  CHECK(got.headers.at("location") == "/elsewhere");
  CHECK(requests == 1);
}

TEST_CASE("an asynchronous handler answers later, and one that drops its responder answers 500") {
  asio::io_context io;
  std::vector<HttpResponder> waiting;
  auto server = HttpServer::start(io, "127.0.0.1", 0, {}, [&](HttpRequest request, HttpResponder respond) {
    if (request.target == "/drop") return;  // the responder goes unanswered
    waiting.push_back(std::move(respond));
    if (waiting.size() < 3) return;
    // Answered only once all three are in, in reverse order.
    for (std::size_t i = waiting.size(); i-- > 0;)
      waiting[i](HttpResponse{200, "answer " + std::to_string(i), "text/plain", {}});
    waiting.clear();
  });
  auto client = HttpClient::create(io);
  std::vector<std::string> bodies(3);
  int answered = 0;
  HttpClientResponse dropped;
  for (int i = 0; i < 3; ++i)
    client->fetch({"GET", url(*server, "/n"), {}, "", std::chrono::seconds{5}}, [&, i](HttpClientResponse r) {
      bodies[static_cast<std::size_t>(i)] = std::to_string(r.status) + " " + r.body;
      if (++answered == 4) io.stop();
    });
  client->fetch({"GET", url(*server, "/drop"), {}, "", std::chrono::seconds{5}}, [&](HttpClientResponse r) {
    dropped = std::move(r);
    if (++answered == 4) io.stop();
  });
  io.run_for(std::chrono::seconds{10});
  CHECK(answered == 4);
  std::sort(bodies.begin(), bodies.end());
  CHECK(bodies == std::vector<std::string>{"200 answer 0", "200 answer 1", "200 answer 2"});
  CHECK(dropped.status == 500);
  CHECK_THAT(dropped.body, Catch::Contains("internal error"));
}
