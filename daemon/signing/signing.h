// Digests for the channels and endpoints: the HMAC-SHA256 signatures of
// outgoing webhooks, in the scheme the push and inbound endpoints check on
// incoming requests, so that one tactd can post to another; plain SHA-256
// for Message-IDs; and base64 (MIME, Basic authentication, Twilio).
#pragma once

#include <string>
#include <string_view>

namespace tactd {

// HMAC-SHA256 of `message` under `key`, as 64 lower-case hex digits.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// SHA-256 of `bytes`, as 64 lower-case hex digits (Message-IDs).
std::string sha256_hex(std::string_view bytes);

// The X-Tactd-Signature value of a webhook request: "sha256=" followed by
// hmac_sha256_hex(secret, timestamp + "." + body), where `timestamp` is the
// X-Tactd-Timestamp value (Unix seconds, as sent).
std::string webhook_signature(std::string_view secret, std::string_view timestamp, std::string_view body);

// Standard base64 (RFC 4648, with padding).
std::string base64(std::string_view bytes);

}  // namespace tactd
