// The pipeline's view of its configuration: tactd.toml, the rule files and
// the templates, loaded and validated together as one immutable value.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "config/config.h"
#include "model/diagnostic.h"
#include "render/render.h"
#include "rules/rule_set.h"

namespace tactd {

// Configuration, rules and templates, loaded and validated together: one
// immutable value (DESIGN.md invariant 4).
struct Snapshot {
  std::shared_ptr<const Config> config;
  std::shared_ptr<const RuleSet> rules;
  std::shared_ptr<const TemplateSet> templates;
};

// Loads the configuration file and the rules and templates it names, and
// checks that they fit together: every rule's template exists for every
// supported locale and every channel of the rule. A rule that does not say
// what it requires gets the entity fields its templates show outside every
// section, in all of them (Rule::required). Returns nullopt with every
// problem in `errors` when anything is wrong.
std::optional<Snapshot> load_snapshot(const std::filesystem::path& config_file, Diagnostics& errors);

}  // namespace tactd
