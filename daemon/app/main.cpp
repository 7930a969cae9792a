// tactd: command-line entry point. Parses the verb and its options and hands
// over to daemon/app; everything else lives in the component libraries.
#include <charconv>
#include <chrono>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "app/commands.h"
#include "model/clock.h"

namespace {

constexpr const char* kUsage = R"(tactd - proactive, empathic customer notifications

Usage:
  tactd simulate --config FILE --observations FILE|- [--until TIME] [--format json|text]
      Replay observations (JSONL) with a virtual clock; print every notification
      that would be sent, one JSON line each (or readable text). Sends nothing.
  tactd preview --config FILE --rule ID [--observations FILE|-] [--request]
      Show what a rule's message looks like in every locale and channel: for
      the last matching entity in the observations, or for example data.
      --request also shows the exact provider request, secrets masked.
  tactd run --config FILE
      The daemon: read the configured sources, apply what they observe, fire
      timers, keep state and outbox in the configured SQLite file. Stops on
      SIGINT or SIGTERM.
  tactd outbox list --config FILE [--status pending|delivered|dead|dropped|overtaken|unknown]
  tactd outbox show|retry|drop ID --config FILE
  tactd outbox resolve ID delivered|retry|drop --config FILE
      The outbox of a running or stopped daemon: list entries, show one with
      its delivery attempts, send a dead one again now, or drop one unsent;
      resolve one whose send was cut off (status unknown) by what the
      provider's log says.
  tactd timeline CUSTOMER [--config FILE] [--json] [--limit N]
      What the state database knows of one customer, in time order: what was
      observed, every message decided, held back, sent (each attempt) or not
      sent and why, with the text the customer got; their replies and
      opt-outs. For the support desk. The newest N events (default 500).
      --config defaults to /etc/tactd/tactd.toml.
  tactd migrate [--config FILE]
      Bring the configured state's schema up to date and print its version;
      on PostgreSQL under an advisory lock, so that replicas (and `tactd run`,
      which migrates at start too) take turns. --config defaults to
      /etc/tactd/tactd.toml.
  tactd check --config FILE
      Validate configuration, rules and templates; exit 1 with file:line:column
      messages when something is wrong.
  tactd help | --help
  tactd version | --version
)";

// Options as --name value pairs; returns false and says why on a bad shape.
bool parse_options(const std::vector<std::string>& args, const std::vector<std::string>& allowed,
                   std::map<std::string, std::string>& options) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    bool known = false;
    for (const auto& name : allowed) known = known || arg == "--" + name;
    if (!known) {
      std::cerr << "tactd: unknown option '" << arg << "'\n" << kUsage;
      return false;
    }
    if (i + 1 >= args.size()) {
      std::cerr << "tactd: option '" << arg << "' needs a value\n";
      return false;
    }
    options[arg.substr(2)] = args[++i];
  }
  return true;
}

bool require(const std::map<std::string, std::string>& options, const std::string& name) {
  if (options.count(name)) return true;
  std::cerr << "tactd: missing --" << name << "\n" << kUsage;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return tactd::kExitUnusable;
  }
  const std::string verb = args.front();
  args.erase(args.begin());
  std::map<std::string, std::string> options;

  if (verb == "help" || verb == "--help" || verb == "-h") {
    std::cout << kUsage;
    return tactd::kExitOk;
  }
  if (verb == "version" || verb == "--version") {
    std::cout << "tactd " << TACTD_VERSION << "\n";
    return tactd::kExitOk;
  }
  if (verb == "check") {
    if (!parse_options(args, {"config"}, options) || !require(options, "config")) return tactd::kExitUnusable;
    return tactd::check(options["config"], std::cout, std::cerr);
  }
  if (verb == "run") {
    if (!parse_options(args, {"config"}, options) || !require(options, "config")) return tactd::kExitUnusable;
    return tactd::run(tactd::RunOptions{options["config"]}, std::cerr);
  }
  if (verb == "preview") {
    const bool request = std::erase(args, "--request") > 0;
    if (!parse_options(args, {"config", "rule", "observations"}, options) || !require(options, "config") ||
        !require(options, "rule"))
      return tactd::kExitUnusable;
    tactd::PreviewOptions preview{options["config"], options["rule"], std::nullopt, request};
    if (options.count("observations")) preview.observations = options["observations"];
    return tactd::preview(preview, std::cout, std::cerr);
  }
  if (verb == "outbox") {
    tactd::OutboxOptions outbox;
    outbox.action = args.empty() ? "" : args.front();
    if (outbox.action != "list" && outbox.action != "show" && outbox.action != "retry" && outbox.action != "drop" &&
        outbox.action != "resolve") {
      std::cerr << "tactd: outbox needs list, show, retry, drop or resolve\n" << kUsage;
      return tactd::kExitUnusable;
    }
    args.erase(args.begin());
    if (outbox.action != "list") {
      const std::string id = args.empty() ? "" : args.front();
      auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), outbox.id);
      if (id.empty() || ec != std::errc{} || end != id.data() + id.size()) {
        std::cerr << "tactd: outbox " << outbox.action << " needs the entry's id (a number), not '" << id << "'\n";
        return tactd::kExitUnusable;
      }
      args.erase(args.begin());
    }
    if (outbox.action == "resolve") {
      outbox.resolution = args.empty() ? "" : args.front();
      if (outbox.resolution != "delivered" && outbox.resolution != "retry" && outbox.resolution != "drop") {
        std::cerr << "tactd: outbox resolve " << outbox.id
                  << " needs what became of it: delivered (the provider's log shows it went out), retry (send it "
                     "again) or drop (do not send it), not '"
                  << outbox.resolution << "'\n";
        return tactd::kExitUnusable;
      }
      args.erase(args.begin());
    }
    if (!parse_options(
            args,
            outbox.action == "list" ? std::vector<std::string>{"config", "status"} : std::vector<std::string>{"config"},
            options) ||
        !require(options, "config"))
      return tactd::kExitUnusable;
    outbox.config = options["config"];
    outbox.status = options["status"];
    outbox.now = tactd::SystemClock().now();
    return tactd::outbox(outbox, std::cout, std::cerr);
  }
  if (verb == "timeline") {
    tactd::TimelineOptions timeline;
    if (args.empty() || args.front().starts_with("--")) {
      std::cerr << "tactd: timeline needs the customer's id\n" << kUsage;
      return tactd::kExitUnusable;
    }
    timeline.customer = args.front();
    args.erase(args.begin());
    timeline.json = std::erase(args, "--json") > 0;
    if (!parse_options(args, {"config", "limit"}, options)) return tactd::kExitUnusable;
    timeline.config = options.count("config") ? options["config"] : "/etc/tactd/tactd.toml";
    if (options.count("limit")) {
      const std::string& text = options["limit"];
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), timeline.limit);
      if (ec != std::errc{} || end != text.data() + text.size() || timeline.limit < 1 || timeline.limit > 10000) {
        std::cerr << "tactd: --limit must be a number from 1 to 10000, not '" << text << "'\n";
        return tactd::kExitUnusable;
      }
    }
    timeline.now = tactd::SystemClock().now();
    return tactd::timeline(timeline, std::cout, std::cerr);
  }
  if (verb == "migrate") {
    if (!parse_options(args, {"config"}, options)) return tactd::kExitUnusable;
    return tactd::migrate(tactd::MigrateOptions{options.count("config") ? options["config"] : "/etc/tactd/tactd.toml"},
                          std::cout, std::cerr);
  }
  if (verb == "simulate") {
    if (!parse_options(args, {"config", "observations", "until", "format"}, options) || !require(options, "config") ||
        !require(options, "observations"))
      return tactd::kExitUnusable;
    tactd::SimulateOptions simulate{options["config"], options["observations"], std::nullopt, false};
    if (options.count("until")) {
      std::string error;
      simulate.until = tactd::parse_rfc3339(options["until"], &error);
      if (!simulate.until) {
        std::cerr << "tactd: --until: " << error << "\n";
        return tactd::kExitUnusable;
      }
    }
    if (options.count("format")) {
      if (options["format"] != "json" && options["format"] != "text") {
        std::cerr << "tactd: --format must be json or text, not '" << options["format"] << "'\n";
        return tactd::kExitUnusable;
      }
      simulate.text = options["format"] == "text";
    }
    return tactd::simulate(simulate, std::cout, std::cerr);
  }
  std::cerr << "tactd: unknown verb '" << verb << "'\n" << kUsage;
  return tactd::kExitUnusable;
}
