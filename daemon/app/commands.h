// The command-line verbs. Each returns the process exit status and writes
// results to `out` and diagnostics for people to `err`.
//
// Exit status: 0 success; 1 some input was rejected (the rest still ran) or
// the configuration has problems (check); 2 unusable invocation or
// configuration.
#pragma once

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

#include "model/time.h"

namespace tactd {

class Store;

constexpr int kExitOk = 0;
constexpr int kExitRejected = 1;
constexpr int kExitUnusable = 2;

struct SimulateOptions {
  std::filesystem::path config;
  std::filesystem::path observations;  // JSONL; "-" reads standard input
  std::optional<Timestamp> until;      // default: seven days after the last observation
  bool text = false;                   // --format text: for people, not machines
  // The state to replay on, empty at the start; none: a private temporary
  // database (the command line). The story tests give one of each backend.
  Store* state = nullptr;
};

// Replays observations against the configuration with a virtual clock and a
// private temporary database; prints every notification that would be sent.
int simulate(const SimulateOptions& options, std::ostream& out, std::ostream& err);

struct PreviewOptions {
  std::filesystem::path config;
  std::string rule;
  std::optional<std::filesystem::path> observations;  // default: the rule's built-in example data
  bool request = false;  // also show the provider request each configured channel would send
};

// Renders one rule's message for every supported locale and every channel
// of the rule: for the last entity of the rule's type in `observations`
// (replayed like simulate, with nothing sent), or for built-in example data.
int preview(const PreviewOptions& options, std::ostream& out, std::ostream& err);

struct RunOptions {
  std::filesystem::path config;
};

// The daemon: polls the configured sources, applies what they observe, fires
// timers on the system clock, and keeps state and outbox in the SQLite file
// named by the configuration. Returns when SIGINT or SIGTERM arrives.
int run(const RunOptions& options, std::ostream& err);

struct OutboxOptions {
  std::filesystem::path config;
  std::string action;      // list, show, retry, drop or resolve
  long long id = 0;        // show, retry, drop, resolve
  std::string status;      // list: only entries with this status; empty: all
  std::string resolution;  // resolve: delivered, retry or drop
  Timestamp now;           // retry, resolve: from this time
};

// Lists, shows, retries, drops or resolves outbox entries in the configured
// state database, which a daemon may be using at the same time. Each change
// is one write transaction that waits out the daemon's (busy timeout).
int outbox(const OutboxOptions& options, std::ostream& out, std::ostream& err);

struct TimelineOptions {
  std::filesystem::path config;
  std::string customer;
  bool json = false;        // --json: the admin endpoint's JSON instead of text for people
  std::size_t limit = 500;  // --limit: the newest events kept (1..10000)
  Timestamp now;            // pauses in force at this time
};

// Prints one customer's timeline (timeline/timeline.h) from the configured
// state database, which a daemon may be using at the same time: times in the
// configured time zone ([locale] time_zone). Exit 1 for an unknown customer.
int timeline(const TimelineOptions& options, std::ostream& out, std::ostream& err);

// Loads and validates configuration, rules and templates.
int check(const std::filesystem::path& config, std::ostream& out, std::ostream& err);

struct MigrateOptions {
  std::filesystem::path config;
};

// Applies the missing schema migrations to the configured state (SQLite
// file or PostgreSQL database; on PostgreSQL under the advisory lock that
// `run` takes too) and prints "schema version N". Exit 2 when the state
// cannot be opened or migrated.
int migrate(const MigrateOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tactd
