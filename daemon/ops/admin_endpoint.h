// The admin HTTP endpoint's handler: liveness, readiness and metrics for
// systemd, load balancers and Prometheus. It answers requests given to it
// by an HttpServer the daemon starts; it starts no server itself.
//
//   GET /healthz  200 "ok\n" (text/plain): the loop is answering.
//   GET /readyz   200 when every readiness check passes, else 503; the body
//                 is {"ready": bool, "checks": [{"name", "ok", "detail"}]}.
//   GET /metrics  200 Metrics::render(), text/plain; version=0.0.4.
//
// HEAD is answered like GET without a body; other methods get 405 with
// `Allow: GET, HEAD`, other paths 404. The query string plays no part in
// routing. Every answer carries `Cache-Control: no-store`.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "net/http_server.h"
#include "ops/metrics.h"

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

  // `metrics` must outlive this endpoint; `readiness` and what it refers to
  // must too. Call handle() on the loop only.
  AdminEndpoint(Metrics& metrics, ReadinessProbe readiness);

  // An HttpHandler: `[&](const HttpRequest& r) { return admin.handle(r); }`.
  // A failing readiness probe is an answer too (503), not an exception.
  HttpResponse handle(const HttpRequest& request);

 private:
  HttpResponse readiness();
  HttpResponse metrics();

  Metrics& metrics_;
  ReadinessProbe readiness_;
};

}  // namespace tactd
