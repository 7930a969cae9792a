// Rules: which moments deserve a message. Loaded from every `*.toml` file in
// the rules folder (in name order), one or more [[rule]] tables per file:
//
//   [[rule]]
//   id       = "order-cancelled"
//   kind     = "apology"
//   on       = "order.status -> cancelled"    # or: at = "order.promised_by - 30m"
//   when     = "exists(order.customer)"
//   template = "order_cancelled"
//   channels = ["sms", "email"]
//   once     = true
//   cooldown = "1h"
//   requires = ["order.cancel_reason"]         # fields the message cannot go without
//   action   = "voucher"                       # an [[action]] taken before sending
//   action_optional = true                     # no such [[action]] configured: send without
//
// The rule language is documented in docs/rules.md.
#pragma once

#include <compare>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/diagnostic.h"
#include "model/entity.h"
#include "model/notification.h"
#include "rules/expression.h"

namespace tactd {

// A field of an entity, as rules and templates name it:
// "subscription.price_reason".
struct FieldRef {
  EntityType entity = EntityType::kOrder;
  std::string field;

  std::string str() const;
  auto operator<=>(const FieldRef&) const = default;
};

// "subscription.price_reason" -> FieldRef, or nullopt when it names no
// entity type or field.
std::optional<FieldRef> parse_field_ref(std::string_view text);

// `on = "<entity>.<field> -> <target>"`: fires on an event of that field
// whose new value matches the target.
struct Trigger {
  enum class Target {
    kValues,      // `-> cancelled`, `-> delivery_failed | exception`
    kBecomesSet,  // `-> set`: the field went from absent to present
    kAnyChange,   // `-> *`: any change, including becoming set or cleared
  };
  EntityType entity = EntityType::kOrder;
  std::string field;
  Target target = Target::kValues;
  std::vector<nlohmann::json> values;

  bool matches(const Event& event) const;
  std::string str() const;
};

// `at = "<entity>.<field> [+|- <duration>]"`: fires once when the clock
// reaches the time in that field (an RFC 3339 date-time or a YYYY-MM-DD
// date) moved by the offset. Rescheduled whenever the field changes.
struct Deadline {
  EntityType entity = EntityType::kOrder;
  std::string field;
  Duration offset{0};
  std::string text;  // as written, for messages

  // The due time for an entity's fields, or nullopt when the field is
  // absent or not a time.
  std::optional<Timestamp> due(const Fields& fields) const;
};

struct Rule {
  std::string id;
  Kind kind = Kind::kApology;
  // Exactly one of the two is set.
  std::optional<Trigger> trigger;    // `on`
  std::optional<Deadline> deadline;  // `at`
  std::optional<Expression> when;
  std::string template_name;
  std::vector<Channel> channels;  // in order of preference
  bool once = false;              // at most one message per entity
  Duration cooldown{0};           // per customer, between messages of this rule
  bool urgent = false;            // sent during quiet hours too
  // Minimum notice: the message is about a change that takes effect at the
  // time in `notice_field` ("subscription.price_effective"); when that is
  // nearer than `min_notice` (default 30 days), the customer is not rushed:
  // operators are told.
  std::string notice_field;
  Duration min_notice{0};
  // Rules this one supersedes: when it fires, their pending messages about
  // the same entity (or an entity linked to it) are dropped, and while it is
  // pending they are held back.
  std::vector<std::string> supersedes;
  // Fields the message cannot go without: when one is absent, null or empty
  // text, the customer gets nothing and operators are told which entity
  // lacks what ("missing_field"). `requires` as written (`[]`: nothing);
  // a rule that does not say gets, from load_snapshot, the entity fields its
  // templates show outside every section in every locale and channel, and
  // `required_derived` is set.
  std::vector<FieldRef> required;
  bool required_written = false;  // `requires` was given
  bool required_derived = false;
  // The [[action]] of the configuration taken before the message is sent
  // (a voucher from the shop's API, usable in the template as {{action.*}});
  // empty: none. A name no [[action]] has is a configuration error, unless
  // `action_optional`: then the rule sends without one (load_snapshot).
  std::string action;
  bool action_optional = false;
  int action_line = 0;  // where `action` was written
  int action_column = 0;
  std::string file;  // where it was defined, for messages
  int line = 0;
  // The rule's TOML table as written back by the parser: two rules with the
  // same id and definition behave the same (a reload reports the others as
  // changed).
  std::string definition;
};

class RuleSet {
 public:
  // Loads every `*.toml` in `dir`. Returns nullptr, with every problem in
  // `errors` as "file:line:column: what", when anything is wrong.
  static std::shared_ptr<const RuleSet> load(const std::filesystem::path& dir, Diagnostics& errors);
  // Parses one file's text (used by load and tests); `file` names it in messages.
  static std::shared_ptr<const RuleSet> parse(std::string_view text, const std::string& file, Diagnostics& errors);

  const std::vector<Rule>& rules() const { return rules_; }
  // Rules whose trigger matches `event`, in load order.
  std::vector<const Rule*> triggered_by(const Event& event) const;
  // The rule with this id, or nullptr.
  const Rule* find(std::string_view id) const;
  // Whether a change of `field` of an entity of `type` can matter to a
  // rule: a trigger, condition or deadline reads it or a fact derived from
  // it, or it links the entity to another (`customer`, `order`). A change
  // of any other field fires nothing and moves no timer.
  bool reads(EntityType type, std::string_view field) const;

  // A copy in which every rule that does not say what it requires gets
  // `derive(rule)` (for load_snapshot, which knows the templates).
  std::shared_ptr<const RuleSet> with_derived_requirements(
      const std::function<std::vector<FieldRef>(const Rule&)>& derive) const;

 private:
  void index_reads();

  std::vector<Rule> rules_;
  // "order.status"; a bare "order" when a condition reads a whole entity.
  std::set<std::string, std::less<>> reads_;
};

}  // namespace tactd
