// `tactd run`: loads the configuration and hands it to the Daemon, which
// owns everything that runs.
#include <ostream>

#include "app/commands.h"
#include "app/daemon.h"

namespace tactd {

int run(const RunOptions& options, std::ostream& err) {
  Diagnostics errors;
  auto snapshot = load_snapshot(options.config, errors);
  for (const auto& e : errors) err << e.str() << "\n";
  if (!snapshot) return kExitUnusable;
  const SystemClock clock;
  try {
    Daemon daemon(options.config, std::move(*snapshot), clock);
    return daemon.run() == 0 ? kExitOk : kExitRejected;
  } catch (const StartupError& e) {
    err << e.what() << "\n";
    return kExitUnusable;
  }
}

}  // namespace tactd
