#include "ops/admin_endpoint.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <exception>
#include <utility>

namespace tactd {
namespace {

HttpResponse text(int status, std::string body) {
  return HttpResponse{status, std::move(body), "text/plain; charset=utf-8", {}};
}

}  // namespace

AdminEndpoint::AdminEndpoint(Metrics& metrics, ReadinessProbe readiness)
    : metrics_(metrics), readiness_(std::move(readiness)) {}

HttpResponse AdminEndpoint::handle(const HttpRequest& request) {
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  HttpResponse response;
  if (path != "/healthz" && path != "/readyz" && path != "/metrics") {
    response = text(404, "not found; try /healthz, /readyz or /metrics\n");
  } else if (request.method != "GET" && request.method != "HEAD") {
    response = text(405, "method not allowed; use GET or HEAD\n");
    response.headers.emplace_back("Allow", "GET, HEAD");
  } else if (path == "/healthz") {
    response = text(200, "ok\n");
  } else if (path == "/readyz") {
    response = readiness();
  } else {
    response = metrics();
  }
  response.headers.emplace_back("Cache-Control", "no-store");
  if (request.method == "HEAD") response.body.clear();
  return response;
}

HttpResponse AdminEndpoint::readiness() {
  std::vector<ReadinessCheck> checks;
  try {
    checks = readiness_();
  } catch (const std::exception& e) {
    spdlog::error("admin: readiness checks failed: {}", e.what());
    checks = {{"readiness checks", false, std::string("failed: ") + e.what()}};
  } catch (...) {
    spdlog::error("admin: readiness checks failed with an exception that is not a std::exception");
    checks = {{"readiness checks", false, "failed"}};
  }
  bool ready = true;
  auto listed = nlohmann::json::array();
  for (const auto& check : checks) {
    ready = ready && check.ok;
    listed.push_back({{"name", check.name}, {"ok", check.ok}, {"detail", check.detail}});
  }
  const nlohmann::json body{{"ready", ready}, {"checks", std::move(listed)}};
  // Replace: a check's detail may quote source text that is not UTF-8.
  return HttpResponse{ready ? 200 : 503,
                      body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                      "application/json",
                      {}};
}

HttpResponse AdminEndpoint::metrics() {
  return HttpResponse{200, metrics_.render(), std::string(kMetricsContentType), {}};
}

}  // namespace tactd
