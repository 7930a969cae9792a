#include "sources/push_endpoint.h"

#include <openssl/crypto.h>

#include <charconv>

#include "signing/signing.h"

namespace tactd {
namespace {

constexpr std::string_view kPath = "/v1/observations";

// An error may quote the request's own bytes, which need not be UTF-8.
HttpResponse answer(int status, nlohmann::json body) {
  return HttpResponse{
      status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json", {}};
}

// Compares without leaking where the first difference is.
bool same_secret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

const std::string* header(const HttpRequest& request, const char* name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? nullptr : &it->second;
}

// Calls `each(text, number)` for the lines of `body` that are not blank,
// numbered from 1 counting every line, until it returns false.
template <typename F>
void each_line(std::string_view body, F each) {
  std::size_t start = 0;
  int number = 0;
  while (start < body.size()) {
    std::size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view text = body.substr(start, end - start);
    start = end + 1;
    ++number;
    if (text.find_first_not_of(" \t\r") != std::string_view::npos && !each(text, number)) return;
  }
}

}  // namespace

std::string PushEndpoint::signature(const std::string& secret, const std::string& timestamp, const std::string& body) {
  return webhook_signature(secret, timestamp, body);
}

std::string PushEndpoint::refuse(const HttpRequest& request, bool body_read) const {
  if (const std::string* authorization = header(request, "authorization"); authorization && !config_.token.empty())
    return same_secret(*authorization, "Bearer " + config_.token) ? "" : "the bearer token is not valid";
  const std::string* timestamp = header(request, "x-tactd-timestamp");
  const std::string* signed_as = header(request, "x-tactd-signature");
  if (!timestamp || !signed_as || config_.hmac_secret.empty())
    return "authenticate with 'Authorization: Bearer <token>' or X-Tactd-Timestamp and X-Tactd-Signature";
  long long seconds = 0;
  auto [end, ec] = std::from_chars(timestamp->data(), timestamp->data() + timestamp->size(), seconds);
  if (ec != std::errc{} || end != timestamp->data() + timestamp->size())
    return "X-Tactd-Timestamp must be Unix seconds";
  // Compared in seconds against bounds derived from now: a huge timestamp is
  // never converted to a finer unit, where it would wrap into the window.
  const long long now_s = std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
  const long long skew_s = std::chrono::duration_cast<std::chrono::seconds>(config_.max_skew).count();
  if (seconds < now_s - skew_s || seconds > now_s + skew_s) return "X-Tactd-Timestamp is too far from now; refused";
  if (body_read && !same_secret(*signed_as, signature(config_.hmac_secret, *timestamp, request.body)))
    return "the signature does not match the timestamp and body";
  return "";
}

std::optional<HttpResponse> PushEndpoint::screen(const HttpRequest& head) const {
  if (head.target != kPath)
    return answer(404, {{"error", "no such endpoint; observations go to POST /v1/observations"}});
  if (head.method != "POST") return answer(405, {{"error", "use POST"}});
  if (std::string why = refuse(head, false); !why.empty()) return answer(401, {{"error", why}});
  return std::nullopt;
}

std::optional<HttpResponse> PushEndpoint::admit(const HttpRequest& request) const {
  if (auto refusal = screen(request)) return refusal;
  if (std::string why = refuse(request, true); !why.empty()) return answer(401, {{"error", why}});
  if (stopping_) return stopping_answer();
  return std::nullopt;
}

std::variant<HttpResponse, std::vector<Observation>> PushEndpoint::parse(std::string_view body) {
  std::vector<Observation> observations;
  std::optional<HttpResponse> refusal;
  each_line(body, [&](std::string_view text, int number) {
    std::string error;
    auto observation = parse_observation(text, error);
    if (!observation) {
      refusal = answer(400, {{"error", error}, {"line", number}, {"accepted", 0}});
      return false;
    }
    observations.push_back(std::move(*observation));
    return true;
  });
  if (refusal) return std::move(*refusal);
  if (observations.empty()) return answer(400, {{"error", "the body holds no observation"}, {"accepted", 0}});
  return observations;
}

std::variant<HttpResponse, std::vector<Observation>> PushEndpoint::accept(const HttpRequest& request) const {
  if (auto answer = admit(request)) return std::move(*answer);
  return parse(request.body);
}

std::size_t PushEndpoint::lines(std::string_view body) {
  std::size_t count = 0;
  each_line(body, [&](std::string_view, int) {
    ++count;
    return true;
  });
  return count;
}

HttpResponse PushEndpoint::committed(std::size_t count) { return answer(202, {{"accepted", count}}); }

HttpResponse PushEndpoint::not_committed(const std::string& error) {
  HttpResponse busy = answer(503, {{"error", "not committed, try again later: " + error}, {"accepted", 0}});
  busy.headers.emplace_back("Retry-After", std::to_string(kUncommittedRetryAfterSeconds));
  return busy;
}

HttpResponse PushEndpoint::stopping_answer() {
  HttpResponse busy = answer(503, {{"error", "tactd is stopping; send again shortly"}, {"accepted", 0}});
  busy.headers.emplace_back("Retry-After", std::to_string(kStoppingRetryAfterSeconds));
  return busy;
}

HttpResponse PushEndpoint::held_answer(std::size_t max_held) {
  HttpResponse busy = answer(503, {{"error", "too many pushes are waiting for their commit (max_held_bytes " +
                                                 std::to_string(max_held) + "); send again shortly"},
                                   {"accepted", 0}});
  busy.headers.emplace_back("Retry-After", std::to_string(kHeldRetryAfterSeconds));
  return busy;
}

HttpResponse PushEndpoint::handle(const HttpRequest& request) {
  auto accepted = accept(request);
  if (auto* response = std::get_if<HttpResponse>(&accepted)) return std::move(*response);
  const auto& observations = std::get<std::vector<Observation>>(accepted);
  std::string error;
  if (!intake_.commit(observations, nullptr, error))  // the disk full, the state read-only, a lock held long
    return not_committed(error);
  return committed(observations.size());
}

}  // namespace tactd
