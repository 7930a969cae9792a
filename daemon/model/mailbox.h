// An email address with its display name, as operators write it in
// `from` and customers' data carries it: the one parser the configuration
// and the mail senders share.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tactd {

struct Mailbox {
  std::string name;     // the display name; may be empty
  std::string address;  // "local@domain"
};

// "Our shop <shop@example.com>", "\"Our shop\" <shop@example.com>" or
// "shop@example.com". nullopt when there is no address of the form
// local@domain without spaces, control characters, quotes or angle brackets.
std::optional<Mailbox> parse_mailbox(std::string_view text);

}  // namespace tactd
