// The push endpoint's request handling, without a socket: the input is a
// request as text,
//
//   POST /v1/observations          method and target
//   authorization: Bearer fuzz-token
//   x-tactd-timestamp: 1795000000  headers, "name: value", until a blank line
//   x-tactd-signature: auto        "auto": the harness signs the body
//
//   {"type": "order", ...}         the body, JSON Lines
//
// screen() sees the head, then handle() the whole request, against an
// intake that commits everything it is given. Only an authenticated request
// may commit, and a 202 must say how many observations were committed.
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "fuzz_request.h"
#include "model/clock.h"
#include "sources/push_endpoint.h"

namespace {

class CountingIntake final : public tactd::Intake {
 public:
  bool commit(std::span<const tactd::Observation> observations, const tactd::SourceCursor*, std::string&) override {
    committed += observations.size();
    return true;
  }
  std::optional<std::string> cursor(const std::string&) override { return std::nullopt; }
  size_t committed = 0;
};

void fail(const char* what) {
  std::fprintf(stderr, "push endpoint: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tactd;
  HttpRequest request = fuzz::request_of(fuzz::text_of(data, size));
  PushConfig config;
  config.token = "fuzz-token";
  config.hmac_secret = "fuzz-secret";
  if (auto it = request.headers.find("x-tactd-signature"); it != request.headers.end() && it->second == "auto") {
    auto timestamp = request.headers.find("x-tactd-timestamp");
    it->second = PushEndpoint::signature(config.hmac_secret,
                                         timestamp == request.headers.end() ? "" : timestamp->second, request.body);
  }

  const VirtualClock clock(Timestamp{std::chrono::seconds{1'795'000'000}});
  CountingIntake intake;
  PushEndpoint endpoint(config, intake, clock);
  HttpRequest only_head = request;
  only_head.body.clear();
  const auto screened = endpoint.screen(only_head);
  const HttpResponse response = endpoint.handle(request);
  if (screened && response.status != screened->status) fail("handle() lets through what screen() refused");
  if (response.status == 202) {
    const auto answer = nlohmann::json::parse(response.body);
    if (intake.committed == 0 || answer.at("accepted") != intake.committed) fail("202 without what it accepted");
  } else if (intake.committed != 0) {
    fail("committed, yet not answered 202");
  }
  return 0;
}
