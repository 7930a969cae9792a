// What a message received does (issue 14, "Replies come back"): it is
// matched to the notification it answers -- an email by the Message-ID in
// its In-Reply-To or References, else any message by its sender and the
// latest notification sent to that address -- and recorded as a Reply in
// the customer's history. A STOP word alone opts the sender out of that
// channel at once, kept in the store whatever sources observe later, and is
// confirmed once (a short message on that channel). A START word alone from
// someone opted out of that channel ends the opt-out, confirmed the same
// way (from anyone else it is an ordinary reply). Any other reply holds
// back automated messages about the entity it answers for [inbound] pause,
// and waits to be forwarded to support (ReplyForwarder).
#pragma once

#include <optional>
#include <string>

#include "config/config.h"
#include "inbound/inbound_request.h"
#include "model/clock.h"
#include "store/store.h"

namespace tactd {

// The rule name of the opt-out confirmations tactd queues itself. The
// pipeline releases such entries as they are (no rule, opt-out or pause
// applies to them).
inline constexpr std::string_view kOptOutRule = "tactd:opt-out";
inline constexpr std::string_view kOptInRule = "tactd:opt-in";

struct ReplyOutcome {
  Reply reply;                       // as recorded; id 0: a repeat, recorded before, nothing done
  bool opted_out = false;            // a STOP that opted out now
  bool opted_in = false;             // a START that ended an opt-out now
  bool confirmation_queued = false;  // the confirmation of either is in the outbox
  std::optional<Pause> pause;        // the pause it started
};

class ReplyDesk {
 public:
  // `clock` must outlive the desk. Call from the loop.
  explicit ReplyDesk(const Clock& clock) : clock_(clock) {}

  // Matches, records and acts on `message` under `config` (its [inbound]
  // table, merchant and locales), through the caller's `transaction`.
  // Throws StoreError when the store fails (nothing is then kept).
  ReplyOutcome receive(Store::Transaction& transaction, const InboundMessage& message, const Config& config);

  // The short confirmation of an opt-out of `channel` (or, `opted_in`, of
  // its end), in `locale` ("nl", else English), signed by `merchant`.
  static std::string confirmation(Channel channel, const std::string& locale, const std::string& merchant,
                                  bool opted_in = false);

 private:
  // Queues the confirmation of an opt-out (or its end) asked for by `reply`
  // to its sender; false when it was there already.
  bool confirm(Store::Transaction& transaction, const Reply& reply, const std::string& address, bool opted_in,
               const Config& config);

  const Clock& clock_;
};

}  // namespace tactd
