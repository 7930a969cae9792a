#include <ostream>

#include "app/commands.h"
#include "pipeline/pipeline.h"
#include "render/tone.h"

namespace tactd {
namespace {

// The tone check (docs/tone.md) over every rule's template; empty when the
// configuration names no tone file.
Diagnostics check_tone_of(const Snapshot& snapshot, Diagnostics& errors) {
  if (snapshot.config->tone_path.empty()) return {};
  auto rules = load_tone_rules(snapshot.config->tone_path, errors);
  if (!rules) return {};
  std::vector<ToneUse> uses;
  for (const auto& rule : snapshot.rules->rules())
    uses.push_back(ToneUse{rule.id, rule.kind, rule.template_name, rule.channels});
  return check_tone(*rules, *snapshot.templates, snapshot.config->locales, uses);
}

}  // namespace

int check(const std::filesystem::path& config, std::ostream& out, std::ostream& err) {
  Diagnostics problems;
  auto snapshot = load_snapshot(config, problems);
  if (snapshot) {
    const Diagnostics findings = check_tone_of(*snapshot, problems);
    problems.insert(problems.end(), findings.begin(), findings.end());
  }
  for (const auto& problem : problems) err << problem.str() << "\n";
  if (!problems.empty()) {
    err << config.string() << ": " << problems.size() << (problems.size() == 1 ? " problem" : " problems") << "\n";
    return kExitRejected;
  }
  out << config.string() << ": OK: " << snapshot->rules->rules().size() << " rules, locales";
  for (const auto& locale : snapshot->config->locales) out << " " << locale;
  out << ", templates in " << snapshot->config->templates_dir.string();
  if (!snapshot->config->tone_path.empty()) out << ", tone checked with " << snapshot->config->tone_path.string();
  out << "\n";
  return kExitOk;
}

}  // namespace tactd
