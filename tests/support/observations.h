// Observation lines that several integration tests feed the real daemon.
#pragma once

#include <string>

namespace tactd::test {

// Customer c-<n> (Sanne <n>, Dutch, an email address and, with `phone`, a
// mobile number) and their order B-<n> with `status`, by default cancelled
// with a reason: the shipped order-cancelled rule apologises by SMS when it
// can, else by email.
inline std::string cancellation(const std::string& n, bool phone, const std::string& status = "cancelled") {
  return R"({"type":"customer","id":"c-)" + n + R"(","observed_at":"2026-11-20T09:00:00Z","fields":{"name":"Sanne )" +
         n + R"(","email":"sanne)" + n + R"(@example.com","locale":"nl")" +
         (phone ? R"(,"phone":"+3161234567)" + n + "\"" : "") + R"(}}
{"type":"order","id":"B-)" +
         n + R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-)" + n + R"(","status":")" + status +
         R"(","total":18.5,"currency":"EUR","cancel_reason":"de oven is kapot"}}
)";
}

}  // namespace tactd::test
