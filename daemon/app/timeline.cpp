// `tactd timeline CUSTOMER`: the support desk's view of one customer, read
// from the state database of a running or stopped daemon. The same timeline
// as the admin endpoint's GET /v1/customers/{id}/timeline.
#include <ostream>

#include "app/commands.h"
#include "app/state.h"
#include "config/config.h"
#include "store/store.h"
#include "timeline/timeline.h"

namespace tactd {

int timeline(const TimelineOptions& options, std::ostream& out, std::ostream& err) {
  if (std::string problem = customer_id_problem(options.customer); !problem.empty()) {
    err << "tactd: timeline: " << problem << "\n";
    return kExitUnusable;
  }
  Diagnostics errors;
  auto config = load_config(options.config, errors, Secrets::kSkip);  // it sends nothing
  for (const auto& e : errors) err << e.str() << "\n";
  if (!config) return kExitUnusable;
  std::error_code ignored;
  if (config->state_url.empty() && !std::filesystem::exists(config->state_path, ignored)) {
    err << "tactd: there is no state database at " << config->state_path.string()
        << " (the configuration's [tactd] state); has tactd run with this configuration?\n";
    return kExitUnusable;
  }
  try {
    const auto store = open_state(*config);
    const Timeline timeline = build_timeline(*store, options.customer, options.now, options.limit);
    if (!timeline.known) {
      err << "tactd: no customer '" << options.customer << "' is known in " << state_name(*config)
          << ": nothing observed, sent or received\n";
      return kExitRejected;
    }
    if (options.json)
      out << to_json(timeline, config->default_time_zone).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
    else
      out << to_text(timeline, config->default_time_zone);
    return kExitOk;
  } catch (const StoreError& e) {
    err << "tactd: " << e.what() << "\n";
    return kExitUnusable;
  }
}

}  // namespace tactd
