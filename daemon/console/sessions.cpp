// The console's pure parts of authentication: sessions, secrets compared in
// constant time, the same-origin check of a POST, form bodies.
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include "console/console.h"

namespace tactd {
namespace {

std::string hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0xf]);
  }
  return out;
}

std::string random_hex() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    throw std::runtime_error("the system's random number generator failed");
  return hex(bytes.data(), bytes.size());
}

std::string hash_of(std::string_view id) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(id.data()), id.size(), digest.data());
  return hex(digest.data(), digest.size());
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string form_decoded(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// "http://host:port/path" -> "host:port"; empty when it is no http(s) URL.
std::string_view authority_of(std::string_view url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (!url.starts_with(scheme)) continue;
    url.remove_prefix(scheme.size());
    return url.substr(0, url.find_first_of("/?#"));
  }
  return {};
}

}  // namespace

void ReloadLog::add(ReloadRecord record) {
  records_.push_front(std::move(record));
  while (records_.size() > kMax) records_.pop_back();
}

bool same_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

ConsoleSession ConsoleSessions::open(Timestamp now) {
  ConsoleSession session{random_hex(), random_hex(), now + kLifetime};
  while (by_hash_.size() >= kMax) {
    auto oldest = std::min_element(by_hash_.begin(), by_hash_.end(),
                                   [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; });
    by_hash_.erase(oldest);
  }
  by_hash_.emplace(hash_of(session.id), session);
  return session;
}

std::optional<ConsoleSession> ConsoleSessions::find(std::string_view id, Timestamp now) {
  auto it = by_hash_.find(hash_of(id));
  if (it == by_hash_.end()) return std::nullopt;
  if (it->second.expires <= now) {
    by_hash_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void ConsoleSessions::close(std::string_view id) { by_hash_.erase(hash_of(id)); }

void ConsoleSessions::clear() { by_hash_.clear(); }

std::string cross_site_problem(const HttpRequest& request) {
  const auto host = request.headers.find("host");
  if (host == request.headers.end() || host->second.empty())
    return "the request has no Host header, so where it came from cannot be checked";
  if (auto origin = request.headers.find("origin"); origin != request.headers.end()) {
    if (authority_of(origin->second) == host->second) return {};
    return "the request comes from another site (its Origin is not this console's); send it from a console page";
  }
  if (auto referer = request.headers.find("referer"); referer != request.headers.end()) {
    if (authority_of(referer->second) == host->second) return {};
    return "the request comes from another site (its Referer is not this console's); send it from a console page";
  }
  return "the request says neither Origin nor Referer, so it cannot be told from a cross-site one; send it from a "
         "console page";
}

std::map<std::string, std::string> form_fields(std::string_view body) {
  std::map<std::string, std::string> out;
  while (!body.empty()) {
    const std::string_view pair = body.substr(0, body.find('&'));
    body.remove_prefix(std::min(body.size(), pair.size() + 1));
    if (pair.empty()) continue;
    const auto equals = pair.find('=');
    out.emplace(form_decoded(pair.substr(0, equals)),
                equals == std::string_view::npos ? std::string() : form_decoded(pair.substr(equals + 1)));
  }
  return out;
}

}  // namespace tactd
