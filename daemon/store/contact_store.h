// The contact-history role of the store: what passed between tactd and a
// customer beyond the outbox: the contacts made, the replies that came
// back, the opt-outs they asked for and the pauses they started.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "model/entity.h"
#include "model/notification.h"

namespace tactd {

// A message a customer (or anyone) sent back: an SMS or an email reply.
struct Reply {
  long long id = 0;
  Timestamp at;  // when tactd received it
  Channel channel = Channel::kSms;
  std::string provider;                // "twilio", "messagebird", "json" (the generic webhooks)
  std::string provider_id;             // the provider's id of the message; empty: none given
  std::string from;                    // the sender's number or address, as given
  std::string to;                      // the number or address it was sent to
  std::optional<std::string> subject;  // email
  std::string text;
  bool stop = false;     // the text was a STOP word: the sender opted out of the channel
  std::string customer;  // the customer it came from; empty: not matched
  // The notification it answers (its idempotency key) and that notification's
  // entity; empty and nullopt when none was found.
  std::string notification;
  std::optional<EntityRef> entity;
  // How it was matched: "message-id" (In-Reply-To/References), "sender" (the
  // latest message sent to its sender), or "" (not matched).
  std::string matched_by;
  std::optional<Timestamp> forwarded_at;  // when support was told; unset: not yet
};

// What replies said about an entity (for a customer: all their replies).
struct RepliesAbout {
  std::size_t count = 0;  // replies, STOP included
  bool stop = false;      // one of them was a STOP
  std::optional<Timestamp> last;
};

// A customer's (or, unmatched, an address's) opt-out of one channel, from a
// STOP reply. Kept apart from the customer's snapshot: a source observing
// the customer again never undoes it; only a START reply does (it ends).
struct OptOut {
  std::string customer;  // empty: the address only
  Channel channel = Channel::kSms;
  std::string address;  // address_key() of the number or email address
  Timestamp at;
  long long reply_id = 0;
  std::optional<Timestamp> ended_at = std::nullopt;  // set: no longer in force (a START)
  long long ended_by_reply = 0;                      // the START reply that ended it
};

// Automated messages about an entity held back until `until`: a person is
// talking with the customer about it.
struct Pause {
  Timestamp until;
  std::string reason;
};

// Implementations throw StoreError (store_error.h). Through a
// Store::Transaction, each call runs within it; on the Store, in a
// transaction of its own (refused, std::logic_error, while a Transaction is
// open: store.h).
class ContactStore {
 public:
  virtual void record_contact(const Contact& contact) = 0;
  // The customer's contacts, oldest first.
  virtual std::vector<Contact> contacts(const std::string& customer) const = 0;

  // Records the reply and returns its id; returns 0, recording nothing, when
  // one from the same provider with the same non-empty provider_id exists
  // (the provider sent it again).
  virtual long long add_reply(const Reply& reply) = 0;
  // The customer's replies, oldest first.
  virtual std::vector<Reply> replies(const std::string& customer) const = 0;
  // Replies not forwarded yet, oldest first, at most `limit`.
  virtual std::vector<Reply> unforwarded_replies(std::size_t limit) const = 0;
  virtual void mark_forwarded(long long reply_id, Timestamp at) = 0;
  // The replies about `entity` (matched to a notification about it); for a
  // customer, every reply of that customer. One indexed lookup.
  virtual RepliesAbout replies_about(const EntityRef& entity) const = 0;
  // Records the opt-out; returns false, changing nothing, when the customer
  // (or, without one, the address) had already opted out of the channel.
  virtual bool add_opt_out(const OptOut& opt_out) = 0;
  // The opt-out in force of `channel` by `customer` or by `address`
  // (address_key()), either of which may be empty, or nullopt.
  virtual std::optional<OptOut> opt_out(const std::string& customer, Channel channel,
                                        const std::string& address) const = 0;
  // Ends, at `at` by the START reply `reply_id`, every opt-out in force of
  // `channel` by `customer` or by `address` (either may be empty). Returns
  // false when there was none.
  virtual bool end_opt_out(const std::string& customer, Channel channel, const std::string& address, Timestamp at,
                           long long reply_id) = 0;
  // Holds automated messages about `entity` back until `until` (a later
  // pause than one in force replaces it; an earlier one changes nothing).
  virtual void pause(const EntityRef& entity, Timestamp until, const std::string& reason) = 0;
  // The pause of `entity` in force at `now`, or nullopt.
  virtual std::optional<Pause> paused(const EntityRef& entity, Timestamp now) const = 0;

  // The customer's replies, the newest first, at most `limit` through an
  // index on the customer.
  virtual std::vector<Reply> customer_replies(const std::string& customer, std::size_t limit) const = 0;
  // The customer's opt-outs, ended ones too (at most one per channel in
  // force), oldest first.
  virtual std::vector<OptOut> customer_opt_outs(const std::string& customer) const = 0;

 protected:
  ~ContactStore() = default;
};

}  // namespace tactd
