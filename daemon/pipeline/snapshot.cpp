#include "pipeline/snapshot.h"

#include <algorithm>
#include <iterator>
#include <set>

namespace tactd {
namespace {

// The entity fields `rule`'s templates show outside every section in every
// supported locale and every channel of the rule: what its message cannot
// go without, when the rule does not say.
std::vector<FieldRef> derive_requirements(const Rule& rule, const TemplateSet& templates,
                                          const std::vector<std::string>& locales) {
  std::optional<std::set<FieldRef>> common;
  for (const auto& locale : locales) {
    for (Channel channel : rule.channels) {
      const TemplateSet::Template* t = templates.find(locale, rule.template_name, channel);
      if (!t) continue;  // reported by load_snapshot
      std::set<FieldRef> fields;
      for (const std::string* source : {&t->subject, &t->body})
        for (const std::string& name : unguarded_names(*source))
          if (auto field = parse_field_ref(entity_field_of(name))) fields.insert(std::move(*field));
      if (!common) {
        common = std::move(fields);
        continue;
      }
      std::set<FieldRef> both;
      std::set_intersection(common->begin(), common->end(), fields.begin(), fields.end(),
                            std::inserter(both, both.end()));
      common = std::move(both);
    }
  }
  if (!common) return {};
  return {common->begin(), common->end()};
}

}  // namespace

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
  for (const auto& rule : snapshot.rules->rules()) {
    if (rule.action.empty() || rule.action_optional || snapshot.config->action(rule.action)) continue;
    std::string known;
    for (const auto& action : snapshot.config->actions) known += (known.empty() ? "" : ", ") + action.name;
    errors.push_back(Diagnostic{
        rule.file, rule.action_line, rule.action_column,
        "rule '" + rule.id + "' takes action '" + rule.action + "', which " + snapshot.config->file.string() +
            " does not configure (" + (known.empty() ? std::string("it has no [[action]]") : "its actions: " + known) +
            "); add an [[action]] named '" + rule.action + "', or say action_optional = true to send without it"});
  }
  if (errors.size() != errors_before) return std::nullopt;
  snapshot.rules = snapshot.rules->with_derived_requirements(
      [&](const Rule& rule) { return derive_requirements(rule, *snapshot.templates, snapshot.config->locales); });
  return snapshot;
}

std::vector<ExampleMessage> render_examples(
    const Snapshot& snapshot, const Rule& rule,
    const std::function<MessageContext(const std::string& locale)>& context_for) {
  std::vector<ExampleMessage> out;
  for (const auto& locale : snapshot.config->locales) {
    const MessageContext context = context_for(locale);
    for (Channel channel : rule.channels) {
      ExampleMessage example{locale, channel, snapshot.templates->path_of(locale, rule.template_name, channel), {}, {}};
      example.rendered =
          snapshot.templates->render(locale, rule.template_name, channel, template_data(context), example.error);
      out.push_back(std::move(example));
    }
  }
  return out;
}

}  // namespace tactd
