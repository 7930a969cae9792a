#include "model/mailbox.h"

#include <algorithm>

namespace tactd {
namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// local@domain: one '@' with text on both sides, and no space, control
// character, non-ASCII byte or special ("<>(),;:\[]) anywhere.
bool plain_address(std::string_view address) {
  const auto at = address.find('@');
  if (at == 0 || at == std::string_view::npos || at + 1 == address.size() ||
      address.find('@', at + 1) != std::string_view::npos)
    return false;
  return std::none_of(address.begin(), address.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte >= 0x7f || std::string_view("<>\"(),;:\\[]").find(c) != std::string_view::npos;
  });
}

}  // namespace

std::optional<Mailbox> parse_mailbox(std::string_view text) {
  text = trim(text);
  Mailbox box;
  const auto open = text.rfind('<');
  if (open != std::string_view::npos && !text.empty() && text.back() == '>') {
    std::string_view name = trim(text.substr(0, open));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"')
      name = name.substr(1, name.size() - 2);
    else if (name.find_first_of("<>\"") != std::string_view::npos)
      return std::nullopt;  // "<a@x>, <b@y>": more than one mailbox
    box.name = std::string(name);
    text = trim(text.substr(open + 1, text.size() - open - 2));
  }
  if (!plain_address(text)) return std::nullopt;
  box.address = std::string(text);
  return box;
}

}  // namespace tactd
