// The pipeline's view of its configuration: tactd.toml, the rule files and
// the templates, loaded and validated together as one immutable value.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

// One rule's message rendered for one locale and channel: what `tactd
// preview` prints and the operators' console shows.
struct ExampleMessage {
  std::string locale;
  Channel channel = Channel::kEmail;
  std::filesystem::path path;        // the template's file
  std::optional<Rendered> rendered;  // nullopt: `error` says why
  std::string error;
};

// Renders `rule`'s message in every supported locale ([locale] locales, in
// order) and every channel of the rule (in its order of preference), with
// the data `context_for(locale)` gives for each locale.
std::vector<ExampleMessage> render_examples(
    const Snapshot& snapshot, const Rule& rule,
    const std::function<MessageContext(const std::string& locale)>& context_for);

}  // namespace tactd
