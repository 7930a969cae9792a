// The inbound endpoint's parsing and signature checks (inbound_request.h),
// without a socket: the input is a request as text, as for push_fuzz,
//
//   POST /v1/inbound/twilio          method and target
//   x-twilio-signature: auto         headers, "name: value", until a blank line;
//                                    "auto": the harness signs the body
//                                    (Twilio, MessageBird or X-Tactd-Signature)
//   x-tactd-timestamp: 1795000000
//
//   From=%2B31612345678&Body=STOP     the body
//
// A request screen_inbound() refuses must be refused by parse_inbound() too,
// a message comes only with an empty error, and the text helpers take
// whatever the message holds.
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "fuzz_request.h"
#include "inbound/inbound_request.h"

namespace {

void fail(const char* what) {
  std::fprintf(stderr, "inbound: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tactd;
  HttpRequest request = fuzz::request_of(fuzz::text_of(data, size));

  InboundConfig config;
  config.public_url = "https://shop.example/tactd";
  config.twilio_token = "fuzz-twilio";
  config.messagebird_key = "fuzz-messagebird";
  config.hmac_secret = "fuzz-secret";
  const Timestamp now{std::chrono::seconds{1'795'000'000}};
  const std::string url = config.public_url + request.target;
  if (auto it = request.headers.find("x-twilio-signature"); it != request.headers.end() && it->second == "auto") {
    std::string error;
    auto params = parse_form(request.body, error);
    it->second = twilio_signature(config.twilio_token, url, params.value_or(decltype(params)::value_type{}));
  }
  if (auto it = request.headers.find("messagebird-signature-jwt"); it != request.headers.end() && it->second == "auto")
    it->second = messagebird_signature(config.messagebird_key, url, request.body, now);
  if (auto it = request.headers.find("x-tactd-signature"); it != request.headers.end() && it->second == "auto") {
    auto timestamp = request.headers.find("x-tactd-timestamp");
    it->second =
        tactd_signature(config.hmac_secret, timestamp == request.headers.end() ? "" : timestamp->second, request.body);
  }

  HttpRequest only_head = request;
  only_head.body.clear();
  const auto screened = screen_inbound(only_head, config);
  const InboundParse parsed = parse_inbound(request, config, now);
  if (screened && parsed.message) fail("parse_inbound() lets through what screen_inbound() refused");
  if (parsed.message && !parsed.error.empty()) fail("a message with an error");
  if (!parsed.message && parsed.error.empty()) fail("a refusal without a reason");
  if (parsed.message) {
    const std::string written = written_part(parsed.message->text, parsed.message->channel);
    (void)is_stop(written);
  }
  return 0;
}
