// The admin HTTP endpoint's handler: liveness, readiness and metrics for
// systemd, load balancers and Prometheus. It answers requests given to it
// by an HttpServer the daemon starts; it starts no server itself.
//
//   GET /healthz  200 "ok\n" (text/plain): the loop is answering.
//   GET /readyz   200 when every readiness check passes, else 503; the body
//                 is {"ready": bool, "checks": [{"name", "ok", "detail"}]}.
//   GET /metrics  200 Metrics::render(), text/plain; version=0.0.4.
//
// Those three stay open (probes and Prometheus). Every path under /v1/ is for
// people and tools holding the admin token, and is answered by the route
// added for it (add_route()) only after the request is authenticated:
//
//   no token configured        403 {"error": "...how to configure one..."}:
//                              never open by default
//   no or another bearer token 401 with `WWW-Authenticate: Bearer realm="tactd admin"`
//   5 wrong tokens in a minute 429 with Retry-After, whatever the token
//                              (set_throttle(), ops/token_throttle.h)
//   no route for the path      404 {"error": ...}
//
// The token is compared in constant time and never logged.
//
// /console and the paths under it go to the console's handler
// (set_console()), which authenticates with its own sessions; without one
// they are 404.
//
// HEAD is answered like GET without a body; other methods get 405 with
// `Allow: GET, HEAD` on the three open paths (a route answers methods
// itself), other paths 404. The query string plays no part in routing.
// Every answer carries `Cache-Control: no-store`.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/clock.h"
#include "net/http_server.h"
#include "ops/metrics.h"
#include "ops/token_throttle.h"

namespace tactd {

// One condition the daemon must meet to be ready for work, e.g.
// {"source shop", false, "last successful poll 312 s ago; window 60 s"}.
struct ReadinessCheck {
  std::string name;
  bool ok = false;
  std::string detail;  // what an operator needs to know; may be empty
};

// Returns the checks as they stand now. Runs on the loop for every
// GET /readyz and must not block; an exception counts as not ready.
using ReadinessProbe = std::function<std::vector<ReadinessCheck>()>;

class AdminEndpoint {
 public:
  static constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
  static constexpr std::string_view kRoutePrefix = "/v1/";
  static constexpr std::string_view kRealm = "Bearer realm=\"tactd admin\"";

  // `metrics` must outlive this endpoint; `readiness` and what it refers to
  // must too. `token` is the bearer token of the /v1/ routes; empty: none
  // configured, and they answer 403. Call every member on the loop only.
  AdminEndpoint(Metrics& metrics, ReadinessProbe readiness, std::string token = {});

  // Replaces the bearer token (a reload); empty: the /v1/ routes answer 403.
  void set_token(std::string token);

  // Counts wrong bearer tokens in `throttle` at `clock`'s time: once it has
  // engaged, the /v1/ routes answer 429 with Retry-After to everyone (the
  // console's login counts in the same one). Both must outlive this
  // endpoint. Without it, wrong tokens are not counted.
  void set_throttle(TokenThrottle* throttle, const Clock* clock);

  // Answers authenticated requests whose path starts with `prefix` (which
  // starts with kRoutePrefix, e.g. "/v1/customers/") with `route`; the first
  // route added whose prefix matches answers. What `route` refers to must
  // outlive this endpoint. An exception from it is a 500 that is logged.
  void add_route(std::string prefix, HttpHandler route);

  // Answers /console and every path under /console/ with `console`, which
  // authenticates the request itself (console/console.h). What it refers to
  // must outlive this endpoint.
  void set_console(HttpHandler console);
  static constexpr std::string_view kConsolePrefix = "/console";

  // An HttpHandler: `[&](const HttpRequest& r) { return admin.handle(r); }`.
  // A failing readiness probe is an answer too (503), not an exception.
  HttpResponse handle(const HttpRequest& request);

 private:
  HttpResponse readiness();
  HttpResponse metrics();
  HttpResponse route(const HttpRequest& request, std::string_view path);

  Metrics& metrics_;
  ReadinessProbe readiness_;
  std::string token_;  // never logged
  TokenThrottle* throttle_ = nullptr;
  const Clock* clock_ = nullptr;
  std::vector<std::pair<std::string, HttpHandler>> routes_;
  HttpHandler console_;
};

}  // namespace tactd
