#include "pipeline/snapshot.h"

namespace tactd {

std::optional<Snapshot> load_snapshot(const std::filesystem::path& config_file, Diagnostics& errors) {
  Snapshot snapshot;
  snapshot.config = load_config(config_file, errors);
  if (!snapshot.config) return std::nullopt;
  snapshot.rules = RuleSet::load(snapshot.config->rules_dir, errors);
  snapshot.templates = TemplateSet::load(snapshot.config->templates_dir, errors);
  if (!snapshot.rules || !snapshot.templates) return std::nullopt;
  const size_t errors_before = errors.size();
  for (const auto& rule : snapshot.rules->rules()) {
    for (const auto& locale : snapshot.config->locales) {
      for (Channel channel : rule.channels) {
        if (snapshot.templates->has(locale, rule.template_name, channel)) continue;
        errors.push_back(Diagnostic{rule.file, rule.line, 1,
                                    "rule '" + rule.id + "' needs the template " +
                                        snapshot.templates->path_of(locale, rule.template_name, channel).string() +
                                        " (locale " + locale + ", channel " + std::string(to_string(channel)) +
                                        "), which is missing"});
      }
    }
  }
  if (errors.size() != errors_before) return std::nullopt;
  return snapshot;
}

}  // namespace tactd
