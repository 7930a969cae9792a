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

// "rule 'price-change' requires subscription.price, subscription.price_reason":
// what each rule's message cannot go without, and where that came from.
void print_requirements(const RuleSet& rules, std::ostream& out) {
  for (const Rule& rule : rules.rules()) {
    out << "rule '" << rule.id << "' requires ";
    for (size_t i = 0; i < rule.required.size(); ++i) out << (i ? ", " : "") << rule.required[i].str();
    if (rule.required.empty()) out << "nothing";
    if (rule.required_derived)
      out << (rule.required.empty() ? " (its templates guard every field)" : " (from its templates)");
    out << "\n";
  }
}

// "chat.example" of "https://chat.example/hooks/T0/B0/XYZ".
std::string webhook_host(const std::string& url) {
  const auto start = url.find("://");
  if (start == std::string::npos) return "(not read)";
  const auto host = url.substr(start + 3);
  return host.substr(0, host.find_first_of("/?#"));
}

// "operators: a digest at most every 15 minutes to ops@shop.example, by email".
void print_operators(const Config& config, std::ostream& out) {
  if (!config.operators) {
    out << "operators: no [operators] table; what needs a person is only in the journal\n";
    return;
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(config.operators->digest).count();
  out << "operators: a digest at most every ";
  if (seconds % 3600 == 0)
    out << seconds / 3600 << (seconds == 3600 ? " hour" : " hours");
  else if (seconds % 60 == 0)
    out << seconds / 60 << (seconds == 60 ? " minute" : " minutes");
  else
    out << seconds << (seconds == 1 ? " second" : " seconds");
  if (!config.operators->email.empty())
    out << " to " << config.operators->email << ", by email\n";
  else  // only the host: a chat's webhook URL is a secret of its own
    out << " to a webhook on " << webhook_host(config.operators->webhook) << "\n";
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
  print_requirements(*snapshot->rules, out);
  print_operators(*snapshot->config, out);
  return kExitOk;
}

}  // namespace tactd
