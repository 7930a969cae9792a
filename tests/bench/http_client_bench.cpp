// Benchmark: tactd's outbound HTTP client alone (libcurl's multi interface
// on one Asio loop, net/http_client.h), posting to a loopback sink with a
// number of requests always in flight, without the store, the rules or the
// delivery loop. It is the ceiling of what one loop can send through curl
// on this machine: delivery_daemon.py prints it beside the drain.
//
//   http_client_bench URL REQUESTS IN_FLIGHT BODY_BYTES
#include <utility>  // before Boost.Asio

#include <sys/resource.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "net/http_client.h"

namespace {

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: http_client_bench URL REQUESTS IN_FLIGHT BODY_BYTES\n");
    return 2;
  }
  const std::string url = argv[1];
  const long total = std::stol(argv[2]);
  const long in_flight = std::stol(argv[3]);
  const std::string body(std::stoul(argv[4]), 'x');
  boost::asio::io_context io;
  const auto client = tactd::HttpClient::create(io);
  long started = 0, answered = 0, failed = 0;
  std::function<void()> start = [&] {
    tactd::HttpClientRequest request;
    request.method = "POST";
    request.url = url;
    request.headers = {{"Content-Type", "application/json"}};
    request.body = body;
    ++started;
    client->fetch(std::move(request), [&](tactd::HttpClientResponse response) {
      ++answered;
      if (response.status != 200) ++failed;
      if (started < total) start();
    });
  };
  const double cpu = cpu_seconds();
  const auto begin = std::chrono::steady_clock::now();
  for (long i = 0; i < in_flight && started < total; ++i) start();
  io.run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::printf("%ld requests in %.2f s: %.0f /s, %.1f us CPU each, %ld failed\n", answered, seconds,
              static_cast<double>(answered) / seconds, (cpu_seconds() - cpu) * 1e6 / static_cast<double>(answered),
              failed);
  return failed == 0 && answered == total ? 0 : 1;
}
