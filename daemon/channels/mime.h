// Email as RFC 5322 / MIME text for SMTP: a multipart/alternative message
// with a UTF-8 text part and its HTML twin, both quoted-printable; names
// and subjects outside ASCII as RFC 2047 encoded words. Customer data can
// never add a header line: control characters in header values (CR, LF,
// tab...) become spaces before anything is written, and an address that is
// not a plain addr-spec is refused.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/mailbox.h"
#include "model/time.h"

namespace tactd {

struct MailMessage {
  Mailbox from;
  Mailbox to;
  std::string subject;
  std::string text;        // the plain-text body, UTF-8, lines separated by \n
  std::string html;        // the HTML body; empty: a text/plain message only
  std::string message_id;  // without angle brackets: "<id>@<domain>"
  Timestamp date;
  // Where a reply goes (Reply-To) when not to `from`: a forwarded customer
  // reply names the customer, so that support answers them directly. Left
  // out when its address is not a plain addr-spec.
  std::optional<Mailbox> reply_to = std::nullopt;
};

// The message with CRLF line ends, ready for DATA (SMTP's dot-stuffing is
// left to the client).
std::string mime_message(const MailMessage& message);

// A Message-ID that is the same on every attempt of a notification, so that
// mail servers and clients recognise a retry as the same message:
// 32 hex digits of SHA-256(idempotency key) "@" domain.
std::string message_id(std::string_view idempotency_key, std::string_view domain);

}  // namespace tactd
