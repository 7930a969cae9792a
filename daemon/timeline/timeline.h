// The support desk's view of one customer: everything the state database
// knows of what happened to them and what they were told, in time order.
//
// One function builds it (build_timeline) from the Store; the admin
// endpoint's GET /v1/customers/{id}/timeline (timeline_route) and
// `tactd timeline CUSTOMER` both call it and only differ in how they show it
// (to_json, to_text).
//
// What it holds, per kind of event:
//   first_seen   an entity of the customer (the customer, an order, a
//                shipment of one of their orders, ...) first reached tactd
//                (tactd's clock)
//   observed     the latest snapshot of it, at the time its source saw it
//                (the observation's observed_at); only the latest snapshot
//                is kept, not every version
//   change       the change that made a rule decide a message (field, old, new)
//   decided      a message was decided: rule, kind, channel, recipient, and
//                the subject and body as the customer got (or would get) them
//   held_back    a decision that made a message wait, with its reason
//                (quiet hours, a cap, a pause because the customer wrote)
//   not_made     a rule decided a message that was not made: held back by
//                the policy (a cooldown, an opt-out, a superseding message)
//                or impossible (no channel, a field missing); rule, code, reason
//   attempt      one try to deliver it: delivered, retry, dead, interrupted
//   overtaken    it was not sent because the world moved on (the reason)
//   dropped      it will not be sent (superseded, an operator)
//   decision     any other decision recorded (re-rendered, resolved)
//   reply        the customer wrote back (the text; whether it was a STOP)
//   opt_out      the customer opted out of a channel
//   opt_in       that opt-out ended (a START reply)
//
// Reads are bounded: at most `limit` rows of each kind are read, the newest,
// and the newest `limit` events are kept; Timeline::truncated says when
// older ones were left out. Call on the loop (or any one thread using the
// Store); it only reads, except that unreadable outbox rows are set aside
// as every outbox reader does (store.h).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/time.h"
#include "net/http_server.h"
#include "store/store.h"

namespace tactd {

struct TimelineEvent {
  Timestamp at;
  std::string type;       // first_seen, observed, change, decided, ... (above)
  std::string entity;     // "order/A-1001"; empty when none applies
  long long message = 0;  // the outbox id of the message it is about; 0: none
  // A one-line account for people, e.g. "sms to +31612345678: delivered".
  std::string summary;
  // What else is known, by type: for decided {rule, kind, channel, to,
  // status, subject, body, locale}; for attempt {number, outcome, detail};
  // for reply {channel, from, subject, text, stop, about}; for observed
  // {fields}; for change {field, old, new}; for held_back, overtaken,
  // dropped and decision {decision, reason}; for not_made {rule, code,
  // reason}. An object, maybe empty.
  nlohmann::json detail = nlohmann::json::object();
};

// Automated messages about an entity held back now (a person is talking).
struct TimelinePause {
  std::string entity;
  Timestamp until;
  std::string reason;
};

struct Timeline {
  std::string customer;
  // Whether the store knows the customer at all: their entity, an entity
  // linked to them, a message or a reply. False: everything else is empty.
  bool known = false;
  std::string name;       // fields.name of the customer's entity; may be empty
  std::string time_zone;  // fields.timezone of the customer's entity; may be empty
  std::size_t limit = 0;
  bool truncated = false;             // older events were left out
  std::vector<TimelineEvent> events;  // oldest first; on a tie, in the order they happened
  std::vector<TimelinePause> paused;  // pauses in force at `now`
};

inline constexpr std::size_t kDefaultTimelineLimit = 500;
inline constexpr std::size_t kMaxTimelineLimit = 10000;
inline constexpr std::size_t kMaxCustomerIdBytes = 256;

// Empty when `id` can name a customer; else what is wrong with it, e.g.
// "the customer id is empty" (too long, control characters, not UTF-8).
std::string customer_id_problem(std::string_view id);

// The customer's timeline as the store has it at `now` (pauses in force),
// with at most `limit` (1..kMaxTimelineLimit) events. Throws StoreError.
Timeline build_timeline(const Store& store, const std::string& customer, Timestamp now,
                        std::size_t limit = kDefaultTimelineLimit);

// {"customer", "known", "name", "time_zone", "limit", "truncated",
//  "paused": [{"entity", "until", "reason"}],
//  "events": [{"at", "type", "entity", "message", "summary", ...detail}]}
// Times are RFC 3339 in `zone` (UTC when empty or unknown).
nlohmann::json to_json(const Timeline& timeline, std::string_view zone = {});

// For a support agent: one block per event, times in `zone` (UTC when empty
// or unknown), the message texts indented in full.
std::string to_text(const Timeline& timeline, std::string_view zone);

// The admin endpoint's GET /v1/customers/{id}/timeline[?limit=N]: 200 with
// to_json() (times in `zone`), 400 for a bad id or limit, 404 (JSON error)
// for a customer the store does not know, 405 for a method other than GET or
// HEAD. The id is percent-decoded. `store` must outlive the call; call on
// the store's thread.
HttpResponse timeline_route(const Store& store, const HttpRequest& request, Timestamp now, std::string_view zone);
inline constexpr std::string_view kTimelineRoutePrefix = "/v1/customers/";

}  // namespace tactd
