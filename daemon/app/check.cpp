#include <ostream>

#include "app/commands.h"
#include "app/pipeline.h"

namespace tactd {

int check(const std::filesystem::path& config, std::ostream& out, std::ostream& err) {
  Diagnostics errors;
  auto snapshot = load_snapshot(config, errors);
  for (const auto& e : errors) err << e.str() << "\n";
  if (!snapshot) {
    err << config.string() << ": " << errors.size() << (errors.size() == 1 ? " problem" : " problems") << "\n";
    return kExitRejected;
  }
  out << config.string() << ": OK: " << snapshot->rules->rules().size() << " rules, locales";
  for (const auto& locale : snapshot->config->locales) out << " " << locale;
  out << ", templates in " << snapshot->config->templates_dir.string() << "\n";
  return kExitOk;
}

}  // namespace tactd
