#include <ostream>

#include "app/commands.h"
#include "app/state.h"
#include "config/config.h"

namespace tactd {

int migrate(const MigrateOptions& options, std::ostream& out, std::ostream& err) {
  Diagnostics errors;
  auto config = load_config(options.config, errors, Secrets::kSkip);  // it sends nothing; the state's password is read
  for (const auto& e : errors) err << e.str() << "\n";
  if (!config) return kExitUnusable;
  try {
    const auto store = open_state(*config);  // opening migrates
    out << "schema version " << store->schema_version() << " (" << state_name(*config) << ")\n";
    return kExitOk;
  } catch (const StoreError& e) {
    err << "tactd: migrate: " << e.what() << "\n";
    return kExitUnusable;
  }
}

}  // namespace tactd
