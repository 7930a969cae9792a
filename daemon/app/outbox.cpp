// `tactd outbox list|show|retry|drop|resolve`: the operators' view of the outbox in
// the state database of a running or stopped daemon (SQLite in WAL mode
// lets both work at once).
#include <charconv>
#include <ostream>

#include "app/commands.h"
#include "app/state.h"
#include "config/config.h"
#include "store/store.h"

namespace tactd {
namespace {

std::string one_line(std::string text, size_t max) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text.size() > max ? text.substr(0, max - 3) + "..." : text;
}

void print_row(const OutboxEntry& e, std::ostream& out) {
  if (!e.unreadable.empty()) {
    out << e.id << "  " << to_string(e.status) << "  " << e.last_error << "\n";
    return;
  }
  const Notification& n = e.notification;
  out << e.id << "  " << to_string(e.status) << "  attempts " << e.attempts << "  due "
      << format_rfc3339(e.next_attempt.value_or(n.at), "UTC") << "  " << to_string(n.channel) << " " << n.to << "  "
      << n.rule << " " << n.entity.str();
  if (e.sending_since) out << "  sending since " << format_rfc3339(*e.sending_since, "UTC");
  if (e.status == OutboxStatus::kUnknown)
    out << "  outcome unknown: tactd outbox resolve " << e.id << " delivered|retry|drop";
  if (!e.last_error.empty()) out << "  last error: " << one_line(e.last_error, 80);
  out << "\n";
}

void print_entry(const OutboxEntry& e, const std::vector<OutboxDecision>& decisions,
                 const std::vector<DeliveryAttempt>& attempts, std::ostream& out) {
  if (!e.unreadable.empty()) {
    out << "id:              " << e.id << "\n"
        << "status:          " << to_string(e.status) << "\n"
        << "unreadable:      " << e.unreadable << "; set aside, see the row in the state database\n";
    return;
  }
  const Notification& n = e.notification;
  out << "id:              " << e.id << "\n"
      << "status:          " << to_string(e.status) << "\n"
      << "idempotency key: " << n.idempotency_key << "\n"
      << "rule:            " << n.rule << " (" << to_string(n.kind) << ")\n"
      << "about:           " << n.entity.str() << ", customer " << n.customer << "\n"
      << "channel:         " << to_string(n.channel) << " to " << n.to << "\n"
      << "due:             " << format_rfc3339(n.at, n.time_zone) << "\n";
  if (e.next_attempt && e.status == OutboxStatus::kPending)
    out << "next attempt:    " << format_rfc3339(*e.next_attempt, n.time_zone) << "\n";
  if (e.sending_since)
    out << "sending since:   " << format_rfc3339(*e.sending_since, n.time_zone)
        << " (no verdict yet; if no tactd runs, it was cut off and is settled at the next start)\n";
  if (e.status == OutboxStatus::kUnknown)
    out << "outcome:         unknown: its send was cut off and " << to_string(n.channel)
        << "'s provider does not deduplicate; check the provider's log, then tactd outbox resolve " << e.id
        << " delivered|retry|drop\n";
  if (!n.action.empty()) {
    out << "action:          " << n.action << ", " << to_string(e.action_state) << " after " << e.action_attempts
        << (e.action_attempts == 1 ? " attempt" : " attempts");
    if (e.action_state == ActionState::kPending && e.action_next)
      out << ", next " << format_rfc3339(*e.action_next, n.time_zone);
    if (e.action_state == ActionState::kPending) out << " (the message waits for it)";
    if (e.action_state == ActionState::kFailed) out << " (the message goes without it)";
    out << "\n";
  }
  if (n.subject) out << "subject:         " << *n.subject << "\n";
  out << "\n" << n.body << (n.body.empty() || n.body.back() != '\n' ? "\n" : "") << "\n";
  out << "decisions:       " << (decisions.empty() ? "none recorded" : "") << "\n";
  for (const auto& d : decisions)
    out << "  " << format_rfc3339(d.at, n.time_zone) << "  " << d.decision << (d.reason.empty() ? "" : "  ") << d.reason
        << "\n";
  out << "attempts:        " << (attempts.empty() ? "none" : "") << "\n";
  for (const auto& a : attempts)
    out << "  " << a.number << ". " << format_rfc3339(a.at, "UTC") << "  " << a.outcome << "  " << a.detail << "\n";
}

}  // namespace

int outbox(const OutboxOptions& options, std::ostream& out, std::ostream& err) {
  Diagnostics errors;
  auto config = load_config(options.config, errors, Secrets::kSkip);  // it sends nothing
  for (const auto& e : errors) err << e.str() << "\n";
  if (!config) return kExitUnusable;
  std::unique_ptr<Store> store;
  try {
    store = open_state(*config);
    if (options.action == "list") {
      std::optional<OutboxStatus> status;
      if (!options.status.empty()) {
        for (auto s : {OutboxStatus::kPending, OutboxStatus::kDelivered, OutboxStatus::kDead, OutboxStatus::kDropped,
                       OutboxStatus::kOvertaken, OutboxStatus::kUnknown})
          if (to_string(s) == options.status) status = s;
        if (!status) {
          err << "tactd: --status must be pending, delivered, dead, dropped, overtaken or unknown, not '"
              << options.status << "'\n";
          return kExitUnusable;
        }
      }
      for (const auto& entry : store->outbox(status)) print_row(entry, out);
      return kExitOk;
    }
    const auto entry = store->outbox_entry(options.id);
    if (!entry) {
      err << "tactd: no outbox entry " << options.id << " in " << state_name(*config) << "\n";
      return kExitRejected;
    }
    if (options.action == "show") {
      print_entry(*entry, store->decisions(options.id), store->attempts(options.id), out);
      return kExitOk;
    }
    if (options.action == "resolve") {
      if (entry->status != OutboxStatus::kUnknown) {
        err << "tactd: outbox entry " << options.id << " is " << to_string(entry->status)
            << "; only entries whose outcome is unknown are resolved (see tactd outbox retry and drop)\n";
        return kExitRejected;
      }
      bool done = false;
      if (options.resolution == "delivered")
        done = store->resolve_delivered(options.id, options.now, "an operator: the provider delivered it");
      else if (options.resolution == "retry")
        done = store->retry(options.id, options.now);
      else
        done = store->drop(options.id);
      if (done && options.resolution != "delivered")
        store->record_decision(options.id, options.now, "resolved", "an operator: " + options.resolution);
      if (!done) {
        err << "tactd: outbox entry " << options.id << " changed meanwhile; see tactd outbox show " << options.id
            << "\n";
        return kExitRejected;
      }
      out << "outbox entry " << options.id
          << (options.resolution == "delivered" ? " resolved: delivered, recorded as contact"
              : options.resolution == "retry"   ? " resolved: will be sent again now"
                                                : " resolved: dropped")
          << "\n";
      return kExitOk;
    }
    const bool done = options.action == "retry" ? store->retry(options.id, options.now) : store->drop(options.id);
    if (!done) {
      err << "tactd: outbox entry " << options.id << " is " << to_string(entry->status) << "; only pending or dead "
          << "entries (and those whose outcome is unknown) can be "
          << (options.action == "retry" ? "retried" : "dropped") << "\n";
      return kExitRejected;
    }
    // Recorded as the console records it: the timeline says who did it, and when.
    store->record_decision(options.id, options.now, options.action == "retry" ? "retried" : "dropped",
                           "an operator, by tactd outbox");
    out << "outbox entry " << options.id << (options.action == "retry" ? " will be sent again now" : " dropped")
        << "\n";
    return kExitOk;
  } catch (const StoreError& e) {
    err << "tactd: " << e.what() << "\n";
    return kExitUnusable;
  }
}

}  // namespace tactd
