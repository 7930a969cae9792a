#include "store/row_codec.h"

#include <openssl/evp.h>

#include <array>
#include <utility>

namespace tactd {
namespace {

constexpr std::array<std::pair<OutboxStatus, std::string_view>, 6> kStatuses{{
    {OutboxStatus::kPending, "pending"},
    {OutboxStatus::kDelivered, "delivered"},
    {OutboxStatus::kDead, "dead"},
    {OutboxStatus::kDropped, "dropped"},
    {OutboxStatus::kOvertaken, "overtaken"},
    {OutboxStatus::kUnknown, "unknown"},
}};

}  // namespace

std::string_view to_string(OutboxStatus status) {
  for (const auto& [s, name] : kStatuses)
    if (s == status) return name;
  return "?";
}

namespace store_rows {

std::optional<OutboxStatus> parse_status(std::string_view text) {
  for (const auto& [s, name] : kStatuses)
    if (name == text) return s;
  return std::nullopt;
}
OutboxStatus status_from(const std::string& text) { return decode(parse_status(text), "outbox status", text); }
EntityRef ref_from(const std::string& text) { return decode(parse_entity_ref(text), "entity reference", text); }
EntityType type_from(const std::string& text) { return decode(parse_entity_type(text), "entity type", text); }
Kind kind_from(const std::string& text) { return decode(parse_kind(text), "message kind", text); }
Channel channel_from(const std::string& text) { return decode(parse_channel(text), "channel", text); }

std::string message_ref(const std::string& key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(key.data(), key.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length && out.size() < 32; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

}  // namespace store_rows
}  // namespace tactd
