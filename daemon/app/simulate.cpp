#include <ostream>
#include <sstream>

#include "app/commands.h"
#include "app/observation_file.h"
#include "pipeline/pipeline.h"

namespace tactd {
namespace {

constexpr Duration kDefaultRunOn = std::chrono::days{7};

void print_json(const Notification& n, std::ostream& out) {
  nlohmann::ordered_json line{
      {"at", format_rfc3339(n.at, n.time_zone)},
      {"rule", n.rule},
      {"kind", to_string(n.kind)},
      {"customer", n.customer},
      {"entity", n.entity.str()},
      {"channel", to_string(n.channel)},
      {"to", n.to},
      {"subject", n.subject ? nlohmann::ordered_json(*n.subject) : nlohmann::ordered_json(nullptr)},
      {"body", n.body},
  };
  out << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

// "2026-11-20 17:30 +01:00" in the customer's zone.
std::string local_stamp(Timestamp t, const std::string& zone) {
  std::string s = format_rfc3339(std::chrono::floor<std::chrono::minutes>(t), zone);
  // 2026-11-20T17:30:00+01:00 -> 2026-11-20 17:30 +01:00
  return s.substr(0, 10) + " " + s.substr(11, 5) + " " + (s.size() > 19 ? s.substr(19) : "Z");
}

void print_text(const Notification& n, std::ostream& out) {
  out << local_stamp(n.at, n.time_zone) << "  " << n.entity.str() << "  " << to_string(n.kind) << " (" << n.rule
      << ") to " << n.customer << " by " << to_string(n.channel) << " " << n.to << " [" << n.locale << "]\n";
  if (n.subject) out << "    Subject: " << *n.subject << "\n";
  std::istringstream body(n.body);
  for (std::string line; std::getline(body, line);) out << "    | " << line << "\n";
  out << "\n";
}

}  // namespace

int simulate(const SimulateOptions& options, std::ostream& out, std::ostream& err) {
  Diagnostics errors;
  auto snapshot = load_snapshot(options.config, errors);
  for (const auto& e : errors) err << e.str() << "\n";
  if (!snapshot) return kExitUnusable;

  ObservationFile input;
  if (!input.open(options.observations, err)) return kExitUnusable;
  const std::string& source = input.source();

  std::unique_ptr<Store> temporary;
  if (!options.state) temporary = Store::open_temporary();
  Store* const store = options.state ? options.state : temporary.get();
  VirtualClock clock{Timestamp{}};
  Pipeline pipeline(*snapshot, *store, clock);

  auto report = [&](const Outcome& outcome, const std::string& where) {
    const std::string now = local_stamp(clock.now(), snapshot->config->default_time_zone);
    if (options.text) {
      for (const auto& h : outcome.held_back)
        out << now << "  " << h.entity.str() << "  " << (h.code == "overtaken" ? "overtaken" : "held back") << " ("
            << h.rule << "): " << h.reason << "\n\n";
      for (const auto& d : outcome.deferred)
        out << now << "  " << d.entity.str() << "  queued (" << d.rule << "): " << d.reason << "\n\n";
    }
    for (const auto& stale : outcome.stale) {
      const std::string what = "stale: observed " + format_rfc3339(stale.observed_at) +
                               ", older than what is known (observed " + format_rfc3339(stale.known) + "); ignored";
      if (options.text)
        out << now << "  " << stale.entity.str() << "  " << what << "\n\n";
      else
        err << where << stale.entity.str() << ": " << what << "\n";
    }
    for (const auto& problem : outcome.problems) err << where << problem.text << "\n";
  };
  // Nothing is sent in a simulation: a notification counts as delivered when
  // it falls due and is still right then (the same release check as `run`),
  // and is printed then, as rendered at that moment.
  auto deliver_due = [&] {
    for (const auto& entry : store->due_notifications(clock.now())) {
      Outcome outcome;
      const auto message = pipeline.release(entry, outcome);
      report(outcome, source + ": ");
      if (!message) continue;
      store->mark_delivered(entry.id, clock.now());
      options.text ? print_text(*message, out) : print_json(*message, out);
    }
  };
  // Moves the clock towards `t`, firing timers and delivering deferred
  // notifications on the way in time order: those due before `t`, and with
  // `inclusive` those due at `t` too. An observation at the same instant as
  // a timer is applied first, so the timer sees the world as it is then.
  auto run_until = [&](Timestamp t, bool inclusive) {
    auto due = [&](const std::optional<Timestamp>& when) { return when && (*when < t || (inclusive && *when == t)); };
    while (true) {
      const auto timer = pipeline.next_timer();
      const auto deferred = store->next_notification();
      std::optional<Timestamp> next;
      for (const auto& candidate : {timer, deferred})
        if (due(candidate) && (!next || *candidate < *next)) next = candidate;
      if (!next) break;
      clock.advance_to(*next);
      if (timer && *timer <= clock.now()) report(pipeline.fire_due(), source + ": timer: ");
      deliver_due();
    }
    clock.advance_to(t);
  };

  std::optional<Timestamp> last;
  while (auto observation = input.next(err)) {
    if (last) run_until(observation->observed_at, false);
    clock.advance_to(observation->observed_at);
    last = clock.now();
    report(pipeline.apply(*observation), input.where());
    deliver_due();
  }
  if (input.failed()) {
    err << source << ": read error\n";
    return kExitUnusable;
  }
  run_until(options.until ? *options.until : (last ? *last + kDefaultRunOn : clock.now()), true);
  if (const int rejected = input.rejected(); rejected > 0) {
    err << source << ": " << rejected << (rejected == 1 ? " line was" : " lines were") << " rejected; the others ran\n";
    return kExitRejected;
  }
  return kExitOk;
}

}  // namespace tactd
