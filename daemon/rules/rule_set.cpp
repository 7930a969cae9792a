#include "rules/rule_set.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "config/toml_reader.h"

namespace tactd {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool is_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// One value of a trigger target: 'quoted' or "quoted" text, true, false, a
// number, or a bare word.
std::optional<nlohmann::json> parse_target_value(std::string_view token) {
  if (token.size() >= 2 && (token.front() == '\'' || token.front() == '"') && token.back() == token.front())
    return nlohmann::json(std::string(token.substr(1, token.size() - 2)));
  if (token == "true") return nlohmann::json(true);
  if (token == "false") return nlohmann::json(false);
  double number = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), number);
  if (ec == std::errc{} && end == token.data() + token.size()) return nlohmann::json(number);
  if (!is_name(token)) return std::nullopt;
  return nlohmann::json(std::string(token));
}

// Why a rule about an entity of type `about` never sees `field`'s entity,
// or "" when it does (docs/rules.md, "Conditions"; pipeline/linked.h
// follows the links).
std::string unseen_by(EntityType about, const FieldRef& field) {
  const EntityType other = field.entity;
  if (about == other || other == EntityType::kCustomer) return "";
  if (about == EntityType::kShipment && other == EntityType::kOrder) return "";
  if (about == EntityType::kOrder && other == EntityType::kShipment) return "";
  const std::string sees = about == EntityType::kOrder      ? "itself, its shipment and its customer"
                           : about == EntityType::kShipment ? "itself, its order and its customer"
                                                            : "itself and its customer";
  return std::string("a rule about ") + (about == EntityType::kOrder ? "an " : "a ") + std::string(to_string(about)) +
         " sees no " + std::string(to_string(other)) + " (it sees " + sees + ")";
}

constexpr Duration kDefaultMinNotice = std::chrono::days{30};   // when only notice_field is given
constexpr Duration kMaxRuleDuration = std::chrono::days{3650};  // ten years: anything longer is a typo

// Reports a problem at `offset` characters into a value that starts at `spot`.
class ValueErrors {
 public:
  ValueErrors(SourceSpot spot, Diagnostics& errors) : spot_(std::move(spot)), errors_(errors) {}
  std::nullopt_t operator()(size_t offset, std::string message) const {
    errors_.push_back(Diagnostic{spot_.file, spot_.line, spot_.column + static_cast<int>(offset), std::move(message)});
    return std::nullopt;
  }

 private:
  SourceSpot spot_;
  Diagnostics& errors_;
};

// "order.status" found at `offset` of a value -> entity type and field name.
// `shape` says what the whole value should look like, for the first error.
std::optional<std::pair<EntityType, std::string>> parse_field_path(std::string_view path, size_t offset,
                                                                   const std::string& shape, const ValueErrors& fail) {
  const auto dot = path.find('.');
  if (dot == std::string_view::npos || dot + 1 == path.size()) return fail(offset, shape);
  auto type = parse_entity_type(path.substr(0, dot));
  if (!type)
    return fail(offset, "unknown entity '" + std::string(path.substr(0, dot)) + "' (expected one of " +
                            std::string(entity_type_list()) + ")");
  std::string field(path.substr(dot + 1));
  if (!is_name(field))
    return fail(offset + dot + 1, "'" + field + "' is not a field name (letters, digits, '_' and '-')");
  return std::make_pair(*type, std::move(field));
}

// Parses `on`. `spot` is where the text starts, for error columns.
std::optional<Trigger> parse_trigger(std::string_view text, const SourceSpot& spot, Diagnostics& errors) {
  const ValueErrors fail(spot, errors);
  const auto arrow = text.find("->");
  if (arrow == std::string_view::npos)
    return fail(0, "'on' must look like \"order.status -> cancelled\" (entity.field -> value), found no '->'");
  const std::string_view path = trim(text.substr(0, arrow));
  auto field = parse_field_path(
      path, text.find_first_not_of(" \t"),
      "'on' needs entity.field before '->', like order.status; found '" + std::string(path) + "'", fail);
  if (!field) return std::nullopt;
  Trigger trigger;
  std::tie(trigger.entity, trigger.field) = std::move(*field);

  const std::string_view target = trim(text.substr(arrow + 2));
  const size_t target_at = text.find_first_not_of(" \t", arrow + 2);
  if (target.empty()) return fail(arrow + 2, "'on' needs a value after '->': a status, 'set' or '*'");
  if (target == "*") {
    trigger.target = Trigger::Target::kAnyChange;
    return trigger;
  }
  if (target == "set") {
    trigger.target = Trigger::Target::kBecomesSet;
    return trigger;
  }
  size_t start = 0;
  while (start <= target.size()) {
    const size_t bar = std::min(target.find('|', start), target.size());
    const std::string_view token = trim(target.substr(start, bar - start));
    auto value = parse_target_value(token);
    if (!value)
      return fail(target_at + start, token.empty() ? std::string("empty value between '|' in 'on'")
                                                   : "'" + std::string(token) + "' is not a value; quote it like '" +
                                                         std::string(token) + "'");
    trigger.values.push_back(*value);
    start = bar + 1;
  }
  return trigger;
}

// Parses `at`: "<entity>.<field>", optionally "+ <duration>" or "- <duration>".
std::optional<Deadline> parse_deadline(std::string_view text, const SourceSpot& spot, Diagnostics& errors) {
  const ValueErrors fail(spot, errors);
  const size_t sign_at = text.find_first_of("+-", text.find('.') == std::string_view::npos ? 0 : text.find('.'));
  const size_t path_at = text.find_first_not_of(" \t");
  auto field = parse_field_path(
      trim(text.substr(0, sign_at)), path_at == std::string_view::npos ? 0 : path_at,
      "'at' must look like \"order.promised_by - 30m\" (entity.field, then optionally + or - a duration)", fail);
  if (!field) return std::nullopt;
  Deadline deadline;
  deadline.text = std::string(trim(text));
  std::tie(deadline.entity, deadline.field) = std::move(*field);
  if (sign_at != std::string_view::npos) {
    const std::string_view amount = trim(text.substr(sign_at + 1));
    std::string error;
    auto offset = parse_duration(amount, &error);
    if (!offset) return fail(sign_at, "'at': " + error);
    deadline.offset = text[sign_at] == '-' ? -*offset : *offset;
  }
  return deadline;
}

// Reads one [[rule]] table.
std::optional<Rule> read_rule(const toml::table& table, const std::string& file, Diagnostics& errors) {
  const size_t errors_before = errors.size();
  Rule rule;
  rule.file = file;
  rule.line = static_cast<int>(table.source().begin.line);
  std::ostringstream definition;
  definition << table;
  rule.definition = definition.str();
  const auto id = table["id"].value<std::string>();
  TableReader r(table, file, id ? "rule '" + *id + "'" : "a [[rule]]", errors);
  rule.id = r.string("id", true).value_or("");
  if (!rule.id.empty() && !is_name(rule.id))
    r.error("id", "rule id '" + rule.id + "' may only use letters, digits, '_' and '-'");

  if (auto kind = r.string("kind", true)) {
    if (auto k = parse_kind(*kind))
      rule.kind = *k;
    else
      r.error("kind", "unknown kind '" + *kind + "' (expected one of " + std::string(kind_list()) + ")");
  }
  auto value_spot = [&](std::string_view key) {
    // The text of a basic string starts one column after its opening quote.
    return SourceSpot{file, r.line(key), r.column(key) + 1};
  };
  auto on = r.string("on");
  auto at = r.string("at");
  if (on && at) {
    r.error("at", "a rule has either 'on' (a change) or 'at' (a time), not both");
  } else if (on) {
    rule.trigger = parse_trigger(*on, value_spot("on"), errors);
  } else if (at) {
    rule.deadline = parse_deadline(*at, value_spot("at"), errors);
  } else {
    r.error("id", "rule '" + rule.id +
                      "' needs 'on' (like \"order.status -> cancelled\") or 'at' (like \"order.promised_by - 30m\")");
  }
  if (auto when = r.string("when")) rule.when = Expression::parse(*when, value_spot("when"), errors);
  rule.template_name = r.string("template", true).value_or("");
  if (!rule.template_name.empty() && !is_name(rule.template_name))
    r.error("template", "template name '" + rule.template_name + "' may only use letters, digits, '_' and '-'");
  if (auto channels = r.strings("channels", true)) {
    for (const auto& name : *channels) {
      auto channel = parse_channel(name);
      if (!channel) {
        r.error("channels", "unknown channel '" + name + "' (expected email or sms)");
      } else if (std::find(rule.channels.begin(), rule.channels.end(), *channel) != rule.channels.end()) {
        r.error("channels", "channel '" + name + "' is listed twice");
      } else {
        rule.channels.push_back(*channel);
      }
    }
    if (channels->empty()) r.error("channels", "'channels' must name at least one of email, sms");
  }
  rule.once = r.boolean("once").value_or(false);
  rule.urgent = r.boolean("urgent").value_or(false);
  auto notice = r.string("min_notice");
  auto notice_field = r.string("notice_field");
  if (notice || notice_field) {
    std::string error;
    if (!notice) {
      rule.min_notice = kDefaultMinNotice;
    } else if (auto d = parse_duration(*notice, &error)) {
      if (*d > kMaxRuleDuration)
        r.error("min_notice", "'min_notice' must be at most 3650d (ten years); a longer one is a typo");
      rule.min_notice = *d;
    } else {
      r.error("min_notice", "'min_notice': " + error);
    }
    rule.notice_field = notice_field.value_or("");
    (void)parse_field_path(rule.notice_field, 0,
                           "'min_notice' needs 'notice_field' = entity.field, like \"subscription.price_effective\"",
                           ValueErrors(value_spot(notice_field ? "notice_field" : "min_notice"), errors));
  }
  if (auto required = r.strings("requires")) {
    rule.required_written = true;
    const ValueErrors fail(SourceSpot{file, r.line("requires"), r.column("requires")}, errors);  // at the list
    for (const auto& text : *required) {
      auto field = parse_field_path(
          text, 0, "'requires' names entity fields, like [\"subscription.price_reason\"]; found '" + text + "'", fail);
      if (!field) continue;
      FieldRef ref{field->first, field->second};
      std::string unseen;
      if (rule.trigger || rule.deadline)
        unseen = unseen_by(rule.trigger ? rule.trigger->entity : rule.deadline->entity, ref);
      if (std::find(rule.required.begin(), rule.required.end(), ref) != rule.required.end())
        r.error("requires", "'requires' names " + text + " twice");
      else if (!unseen.empty())
        r.error("requires", "'requires' names " + text + ", but " + unseen);
      else
        rule.required.push_back(std::move(ref));
    }
  }
  rule.supersedes = r.strings("supersedes").value_or(std::vector<std::string>{});
  if (auto cooldown = r.string("cooldown")) {
    std::string error;
    if (auto d = parse_duration(*cooldown, &error); !d)
      r.error("cooldown", "'cooldown': " + error);
    else if (*d <= Duration::zero() || *d > kMaxRuleDuration)
      r.error("cooldown", "'cooldown' must be more than 0s and at most 3650d (ten years); a longer one is a typo");
    else
      rule.cooldown = *d;
  }
  if (auto action = r.string("action")) {
    rule.action = *action;
    rule.action_line = r.line("action");
    rule.action_column = r.column("action");
    if (rule.action.empty() ||
        rule.action.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
      r.error("action", "'action' names an [[action]] of the configuration (letters, digits, '_' and '-'), not '" +
                            rule.action + "'");
  }
  if (auto optional = r.boolean("action_optional")) {
    rule.action_optional = *optional;
    if (rule.action.empty()) r.error("action_optional", "'action_optional' is only for a rule with an 'action'");
  }
  (void)r.string("description");
  r.finish();
  if (errors.size() != errors_before) return std::nullopt;
  return rule;
}

}  // namespace

std::string FieldRef::str() const { return std::string(to_string(entity)) + "." + field; }

std::optional<FieldRef> parse_field_ref(std::string_view text) {
  const auto dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto type = parse_entity_type(text.substr(0, dot));
  const std::string_view field = text.substr(dot + 1);
  if (!type || !is_name(field)) return std::nullopt;
  return FieldRef{*type, std::string(field)};
}

bool Trigger::matches(const Event& event) const {
  if (event.entity.type != entity || event.field != field) return false;
  switch (target) {
    case Target::kAnyChange:
      return true;
    case Target::kBecomesSet:
      return event.old_value.is_null() && !event.new_value.is_null();
    case Target::kValues:
      return std::any_of(values.begin(), values.end(),
                         [&](const nlohmann::json& v) { return same_value(v, event.new_value); });
  }
  return false;
}

std::optional<Timestamp> Deadline::due(const Fields& fields) const {
  auto it = fields.find(field);
  if (it == fields.end() || !it->is_string()) return std::nullopt;
  auto t = parse_date_or_time(it->get_ref<const std::string&>());
  if (!t) return std::nullopt;
  return *t + offset;
}

std::string Trigger::str() const {
  std::string out = std::string(to_string(entity)) + "." + field + " -> ";
  if (target == Target::kAnyChange) return out + "*";
  if (target == Target::kBecomesSet) return out + "set";
  for (size_t i = 0; i < values.size(); ++i)
    out += (i ? " | " : "") + (values[i].is_string() ? values[i].get<std::string>() : values[i].dump());
  return out;
}

std::shared_ptr<const RuleSet> RuleSet::parse(std::string_view text, const std::string& file, Diagnostics& errors) {
  const size_t errors_before = errors.size();
  auto doc = parse_toml_text(text, file, errors);
  if (!doc) return nullptr;
  auto set = std::make_shared<RuleSet>();
  TableReader top(*doc, file, "a rule file", errors);
  if (const toml::array* rules = top.tables("rule"))
    for (const auto& node : *rules)
      if (auto rule = read_rule(*node.as_table(), file, errors)) set->rules_.push_back(std::move(*rule));
  top.finish();
  if (errors.size() != errors_before) return nullptr;
  set->index_reads();
  return set;
}

std::shared_ptr<const RuleSet> RuleSet::load(const std::filesystem::path& dir, Diagnostics& errors) {
  const size_t errors_before = errors.size();
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".toml") files.push_back(entry.path());
  if (ec) {
    errors.push_back(Diagnostic{dir.string(), 0, 0, "cannot read the rules folder: " + ec.message()});
    return nullptr;
  }
  std::sort(files.begin(), files.end());
  auto set = std::make_shared<RuleSet>();
  std::map<std::string, const Rule*> seen;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      errors.push_back(Diagnostic{path.string(), 0, 0, "cannot read the rule file"});
      continue;
    }
    auto part = parse(text.str(), path.string(), errors);
    if (!part) continue;
    for (const auto& rule : part->rules_) set->rules_.push_back(rule);
  }
  for (const auto& rule : set->rules_) {
    for (const auto& other : rule.supersedes)
      if (std::none_of(set->rules_.begin(), set->rules_.end(), [&](const Rule& r) { return r.id == other; }))
        errors.push_back(Diagnostic{rule.file, rule.line, 1,
                                    "rule '" + rule.id + "' supersedes '" + other + "', which is not a rule"});
    auto [it, fresh] = seen.emplace(rule.id, &rule);
    if (!fresh)
      errors.push_back(Diagnostic{
          rule.file, rule.line, 1,
          "rule id '" + rule.id + "' is already used at " + it->second->file + ":" + std::to_string(it->second->line)});
  }
  if (files.empty()) errors.push_back(Diagnostic{dir.string(), 0, 0, "no rule files (*.toml) in the rules folder"});
  if (errors.size() != errors_before) return nullptr;
  set->index_reads();
  return set;
}

std::vector<const Rule*> RuleSet::triggered_by(const Event& event) const {
  std::vector<const Rule*> out;
  for (const auto& rule : rules_)
    if (rule.trigger && rule.trigger->matches(event)) out.push_back(&rule);
  return out;
}

void RuleSet::index_reads() {
  reads_.clear();
  const auto add = [&](std::string_view path) {  // "order.address.city" reads order.address
    const auto first = path.find('.');
    reads_.insert(std::string(path.substr(0, first == path.npos ? path.npos : path.find('.', first + 1))));
  };
  for (const Rule& rule : rules_) {
    if (rule.trigger) add(std::string(to_string(rule.trigger->entity)) + "." + rule.trigger->field);
    if (rule.deadline) add(std::string(to_string(rule.deadline->entity)) + "." + rule.deadline->field);
    if (rule.when)
      for (const std::string& path : rule.when->paths()) add(path);
  }
  // Facts derived from other fields (pipeline/linked.h).
  if (reads_.count("customer.last_contact_at")) reads_.insert("customer.customer_since");
  if (reads_.count("customer.delivered_orders")) reads_.insert("order.status");
}

bool RuleSet::reads(EntityType type, std::string_view field) const {
  if (field == "customer" || field == "order") return true;  // links
  const std::string_view name = to_string(type);
  if (reads_.count(name)) return true;
  std::string path(name);
  path.append(".").append(field);
  return reads_.count(path) > 0;
}

const Rule* RuleSet::find(std::string_view id) const {
  for (const auto& rule : rules_)
    if (rule.id == id) return &rule;
  return nullptr;
}

std::shared_ptr<const RuleSet> RuleSet::with_derived_requirements(
    const std::function<std::vector<FieldRef>(const Rule&)>& derive) const {
  auto set = std::make_shared<RuleSet>(*this);
  for (Rule& rule : set->rules_) {
    if (rule.required_written) continue;
    rule.required = derive(rule);
    rule.required_derived = true;
  }
  return set;
}

}  // namespace tactd
