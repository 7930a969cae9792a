#include "inbound/inbound_endpoint.h"

#include <nlohmann/json.hpp>

namespace tactd {
namespace {

HttpResponse answer(int status, nlohmann::json body) {
  return HttpResponse{
      status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json", {}};
}

HttpResponse busy(const std::string& why) {
  HttpResponse out = answer(503, {{"error", why}});
  out.headers.emplace_back("Retry-After", std::to_string(InboundEndpoint::kRetryAfterSeconds));
  return out;
}

}  // namespace

std::optional<HttpResponse> InboundEndpoint::screen(const HttpRequest& head) const {
  const auto config = config_();
  if (!config || !config->inbound) return answer(404, {{"error", "there is no [inbound] endpoint configured"}});
  if (auto refusal = screen_inbound(head, *config->inbound))
    return answer(refusal->status, {{"error", refusal->error}});
  return std::nullopt;
}

HttpResponse InboundEndpoint::handle(const HttpRequest& request) {
  const auto config = config_();
  if (!config || !config->inbound) return answer(404, {{"error", "there is no [inbound] endpoint configured"}});
  const InboundParse parsed = parse_inbound(request, *config->inbound, clock_.now());
  if (!parsed.message) return answer(parsed.status, {{"error", parsed.error}});
  if (stopping_) return busy("tactd is stopping; send again shortly");
  ReplyOutcome outcome;
  try {
    auto transaction = store_.begin();
    outcome = desk_.receive(*transaction, *parsed.message, *config);
    transaction->commit();
  } catch (const StoreError& e) {
    return busy(std::string("not recorded, try again later: ") + e.what());
  }
  if (received_) received_(outcome);
  if (parsed.message->provider == "twilio")
    return HttpResponse{200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>\n", "text/xml", {}};
  const Reply& r = outcome.reply;
  return answer(200, {{"reply", r.id},
                      {"customer", r.customer.empty() ? nlohmann::json() : nlohmann::json(r.customer)},
                      {"matched_by", r.matched_by.empty() ? nlohmann::json() : nlohmann::json(r.matched_by)},
                      {"stop", r.stop}});
}

}  // namespace tactd
