// The push endpoint: `POST /v1/observations` with one observation, or a
// JSON Lines batch, in the body.
//
// Authentication: `Authorization: Bearer <token>`, or a signature:
// `X-Tactd-Timestamp: <unix seconds>` and
// `X-Tactd-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`,
// refused when the timestamp is further than max_skew from now.
//
// Authentication is checked on the request's head, before its body is read
// (screen()): a request without valid credentials never has its body
// buffered.
//
// Answers: 202 after the whole batch is committed; 400 with a JSON error
// naming the line and the problem (nothing is committed); 401 without valid
// credentials; 404/405 for other targets and methods; 503 when the store
// cannot commit, the daemon is stopping, or too many bodies are held in
// memory already (retry later, see Retry-After; PushGroupCommit::screen()).
// 413 for large bodies is the HTTP server's.
#pragma once

#include "config/config.h"
#include "model/clock.h"
#include "net/http_server.h"
#include "sources/source.h"

#include <optional>
#include <string_view>
#include <variant>
#include <vector>

namespace tactd {

class PushEndpoint {
 public:
  // `intake` and `clock` must outlive the endpoint.
  PushEndpoint(PushConfig config, Intake& intake, const Clock& clock)
      : config_(std::move(config)), intake_(intake), clock_(clock) {}

  // The answer to a request's head (method, target, headers; the body not
  // read yet): a refusal (404, 405, 401) or nullopt to read the body. A
  // bearer token is checked in full here, a signature for its form and
  // timestamp only (it covers the body). For HttpServer's HttpScreen.
  std::optional<HttpResponse> screen(const HttpRequest& head) const;
  // The answer to a whole request; screens it again first. Commits the
  // request's observations in a transaction of their own.
  HttpResponse handle(const HttpRequest& request);

  // handle() in two halves, for a group commit that commits the
  // observations of several requests in one transaction (PushGroupCommit):
  // admit() is the answer now to a request that is refused (404, 405, 401)
  // or comes while stopping (503), or nullopt when its body is to be
  // parsed; it screens the request again first. parse() is a body's
  // observations to commit, or 400 naming the line. accept() is both.
  std::optional<HttpResponse> admit(const HttpRequest& request) const;
  static std::variant<HttpResponse, std::vector<Observation>> parse(std::string_view body);
  std::variant<HttpResponse, std::vector<Observation>> accept(const HttpRequest& request) const;
  // The observations `body` holds if parse() accepts it (its lines that are
  // not blank), counted without parsing them.
  static std::size_t lines(std::string_view body);
  // The answer to a request once its `count` observations are committed.
  static HttpResponse committed(std::size_t count);
  // The answer to a request whose observations could not be committed
  // (the store's `error`): 503 with Retry-After.
  static HttpResponse not_committed(const std::string& error);
  // The answer to every authenticated request once intake stopped.
  static HttpResponse stopping_answer();
  // The answer to a request whose body would take the bodies held in memory
  // over `max_held` bytes (PushGroupCommit::screen()): 503 with Retry-After.
  static HttpResponse held_answer(std::size_t max_held);

  // Intake stops (SIGTERM): from now on every authenticated request gets
  // 503 with Retry-After, and nothing more is committed.
  void stop_intake() { stopping_ = true; }
  bool stopping() const { return stopping_; }
  Intake& intake() const { return intake_; }
  const PushConfig& config() const { return config_; }
  static constexpr int kStoppingRetryAfterSeconds = 5;
  // Bodies held in memory up to max_held_bytes: a group commits within
  // milliseconds, so a second is long enough for room to be made.
  static constexpr int kHeldRetryAfterSeconds = 1;
  // A batch the state could not commit (the disk full, the state file
  // read-only): 503 with this Retry-After; nothing of it is kept.
  static constexpr int kUncommittedRetryAfterSeconds = 5;

  // "sha256=<hex>" for `timestamp` and `body` under `secret`; for clients
  // and tests.
  static std::string signature(const std::string& secret, const std::string& timestamp, const std::string& body);

 private:
  // Why the request is not authenticated, or empty when it is. Before the
  // body is read (`body_read` false) a signature itself is not compared.
  std::string refuse(const HttpRequest& request, bool body_read) const;

  PushConfig config_;
  Intake& intake_;
  const Clock& clock_;
  bool stopping_ = false;
};

}  // namespace tactd
