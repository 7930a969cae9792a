#include "ops/admin_endpoint.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <exception>
#include <utility>

namespace tactd {
namespace {

HttpResponse text(int status, std::string body) {
  return HttpResponse{status, std::move(body), "text/plain; charset=utf-8", {}};
}

// A JSON error; it may quote the request's own bytes, which need not be UTF-8.
HttpResponse error(int status, const std::string& what) {
  const nlohmann::json body{{"error", what}};
  return HttpResponse{
      status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json", {}};
}

// Compares without leaking where the first difference is.
bool same_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

AdminEndpoint::AdminEndpoint(Metrics& metrics, ReadinessProbe readiness, std::string token)
    : metrics_(metrics), readiness_(std::move(readiness)), token_(std::move(token)) {}

void AdminEndpoint::set_token(std::string token) { token_ = std::move(token); }

void AdminEndpoint::set_throttle(TokenThrottle* throttle, const Clock* clock) {
  throttle_ = throttle;
  clock_ = clock;
}

void AdminEndpoint::add_route(std::string prefix, HttpHandler route) {
  routes_.emplace_back(std::move(prefix), std::move(route));
}

void AdminEndpoint::set_console(HttpHandler console) { console_ = std::move(console); }

HttpResponse AdminEndpoint::route(const HttpRequest& request, std::string_view path) {
  if (token_.empty())
    return error(403,
                 "the admin API needs a token and none is configured: put one in a file readable by tactd and "
                 "name it in [admin] token_file (or token_credential, token_env), then reload");
  const auto authorization = request.headers.find("authorization");
  const Timestamp now = throttle_ ? clock_->now() : Timestamp{};
  if (throttle_ && authorization != request.headers.end()) {
    // Guessing goes no faster than TokenThrottle::kMaxFailures a minute.
    if (const Duration wait = throttle_->wait(now); wait > Duration::zero()) {
      const long long seconds = TokenThrottle::seconds(wait);
      HttpResponse refused = error(429, "too many wrong admin tokens in the last minute: refused for " +
                                            std::to_string(seconds) + " s; try again then");
      refused.headers.emplace_back("Retry-After", std::to_string(seconds));
      return refused;
    }
  }
  if (authorization == request.headers.end() || !same_secret(authorization->second, "Bearer " + token_)) {
    if (throttle_ && authorization != request.headers.end() && throttle_->failed(now))
      spdlog::warn(
          "admin: {} wrong admin tokens within {} s: the admin API and the console's login are refused "
          "for a while",
          TokenThrottle::kMaxFailures,
          std::chrono::duration_cast<std::chrono::seconds>(TokenThrottle::kWindow).count());
    HttpResponse refused = error(401, authorization == request.headers.end()
                                          ? "authenticate with 'Authorization: Bearer <token>' ([admin] token_file)"
                                          : "the bearer token is not valid");
    refused.headers.emplace_back("WWW-Authenticate", std::string(kRealm));
    return refused;
  }
  for (const auto& [prefix, handler] : routes_) {
    if (!path.starts_with(prefix)) continue;
    try {
      return handler(request);
    } catch (const std::exception& e) {
      spdlog::error("admin: {} {} failed: {}", request.method, path, e.what());
      return error(500, std::string("internal error: ") + e.what());
    }
  }
  return error(404, "no such route: " + std::string(path));
}

HttpResponse AdminEndpoint::handle(const HttpRequest& request) {
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  HttpResponse response;
  if (console_ &&
      (path == kConsolePrefix || (path.starts_with(kConsolePrefix) && path[kConsolePrefix.size()] == '/'))) {
    try {
      response = console_(request);
    } catch (const std::exception& e) {
      spdlog::error("admin: {} {} failed: {}", request.method, path, e.what());
      response = text(500, std::string("internal error: ") + e.what() + "\n");
    }
  } else if (path.starts_with(kRoutePrefix)) {
    response = route(request, path);
  } else if (path != "/healthz" && path != "/readyz" && path != "/metrics") {
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
