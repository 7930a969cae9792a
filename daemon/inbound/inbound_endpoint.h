// The inbound endpoint of `tactd run` ([inbound] listen): the HTTP face of
// inbound_request.h and ReplyDesk.
//
// Answers: 200 once the reply is committed (Twilio: an empty TwiML
// <Response/>, so that Twilio itself sends nothing back; others JSON
// {"reply": id, "customer", "matched_by", "stop"}); 400 with a JSON error
// naming the field or parameter; 401 for a missing or wrong signature; 404
// and 405 for other targets and methods; 503 when the store cannot commit
// or tactd is stopping (the provider retries). 413 for large bodies is the
// HTTP server's.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "config/config.h"
#include "inbound/reply_desk.h"
#include "model/clock.h"
#include "net/http_server.h"
#include "store/store.h"

namespace tactd {

class InboundEndpoint {
 public:
  // Told of every reply recorded (after its commit), on the loop.
  using Received = std::function<void(const ReplyOutcome&)>;
  // The configuration in force, read at each request (a reload applies).
  using CurrentConfig = std::function<std::shared_ptr<const Config>()>;

  // `store` and `clock` must outlive the endpoint. Call on the loop.
  InboundEndpoint(CurrentConfig config, Store& store, const Clock& clock, Received received)
      : config_(std::move(config)), store_(store), desk_(clock), clock_(clock), received_(std::move(received)) {}

  // For HttpServer's HttpScreen: refusals before the body is read.
  std::optional<HttpResponse> screen(const HttpRequest& head) const;
  HttpResponse handle(const HttpRequest& request);

  // SIGTERM: from now on every request gets 503 with Retry-After.
  void stop_intake() { stopping_ = true; }
  static constexpr int kRetryAfterSeconds = 5;

 private:
  CurrentConfig config_;
  Store& store_;
  ReplyDesk desk_;
  const Clock& clock_;
  Received received_;
  bool stopping_ = false;
};

}  // namespace tactd
