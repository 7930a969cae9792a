#include "rules/rule_set.h"

#include <catch2/catch.hpp>

#include "pipeline/snapshot.h"
#include "support/temp_dir.h"

using namespace tactd;
using tactd::test::TempDir;

namespace {

std::string all(const Diagnostics& errors) {
  std::string out;
  for (const auto& e : errors) out += e.str() + "\n";
  return out;
}

std::shared_ptr<const RuleSet> parse_ok(const std::string& text) {
  Diagnostics errors;
  auto set = RuleSet::parse(text, "r.toml", errors);
  INFO(all(errors));
  REQUIRE(set);
  return set;
}

// Parses a one-rule file whose rule has `line` added, and returns the errors.
std::string parse_error(const std::string& line) {
  Diagnostics errors;
  const std::string text =
      "[[rule]]\nid = \"x\"\nkind = \"apology\"\non = \"order.status -> cancelled\"\n"
      "template = \"t\"\nchannels = [\"sms\"]\n" +
      line + "\n";
  CHECK_FALSE(RuleSet::parse(text, "r.toml", errors));
  return all(errors);
}

Event event(EntityType type, const char* field, nlohmann::json old_value, nlohmann::json new_value) {
  return Event{EntityRef{type, "1"}, field, std::move(old_value), std::move(new_value), Timestamp{}};
}

}  // namespace

TEST_CASE("a rule file is read into rules with every key") {
  auto set = parse_ok(R"toml(
[[rule]]
id = "order-cancelled"
description = "apologise"
kind = "apology"
on = "order.status -> cancelled"
when = "exists(order.cancel_reason)"
template = "order_cancelled"
channels = ["sms", "email"]
once = true
cooldown = "1h30m"

[[rule]]
id = "second"
kind = "explanation"
on = "shipment.status -> delivery_failed | exception"
template = "delivery_problem"
channels = ["email"]
)toml");
  REQUIRE(set->rules().size() == 2);
  const Rule& rule = set->rules()[0];
  CHECK(rule.id == "order-cancelled");
  CHECK(rule.kind == Kind::kApology);
  CHECK(rule.trigger->str() == "order.status -> cancelled");
  REQUIRE(rule.when);
  CHECK(rule.when->text() == "exists(order.cancel_reason)");
  CHECK(rule.template_name == "order_cancelled");
  CHECK(rule.channels == std::vector<Channel>{Channel::kSms, Channel::kEmail});
  CHECK(rule.once);
  CHECK(rule.cooldown == std::chrono::minutes{90});
  CHECK(rule.line == 2);
  CHECK(set->rules()[1].trigger->str() == "shipment.status -> delivery_failed | exception");
  CHECK_FALSE(set->rules()[1].once);
}

TEST_CASE("a transition trigger fires on the new value only") {
  auto set = parse_ok(R"(
[[rule]]
id = "a"
kind = "explanation"
on = "shipment.status -> delivery_failed | exception"
template = "t"
channels = ["sms"]
)");
  const Trigger& trigger = *set->rules()[0].trigger;
  CHECK(trigger.matches(event(EntityType::kShipment, "status", "in_transit", "delivery_failed")));
  CHECK(trigger.matches(event(EntityType::kShipment, "status", nullptr, "exception")));
  CHECK_FALSE(trigger.matches(event(EntityType::kShipment, "status", "in_transit", "delivered")));
  CHECK_FALSE(trigger.matches(event(EntityType::kShipment, "eta", "x", "delivery_failed")));
  CHECK_FALSE(trigger.matches(event(EntityType::kOrder, "status", "placed", "delivery_failed")));
  CHECK(set->triggered_by(event(EntityType::kShipment, "status", "x", "exception")).size() == 1);
}

TEST_CASE("a 'set' trigger fires when a field becomes set, '*' on any change") {
  auto set = parse_ok(R"(
[[rule]]
id = "reason"
kind = "explanation"
on = "order.cancel_reason -> set"
template = "t"
channels = ["sms"]

[[rule]]
id = "eta"
kind = "heads_up"
on = "shipment.eta -> *"
template = "t"
channels = ["sms"]

[[rule]]
id = "quoted"
kind = "heads_up"
on = "order.priority -> 'set' | 3 | true"
template = "t"
channels = ["sms"]
)");
  const Trigger& becomes_set = *set->rules()[0].trigger;
  CHECK(becomes_set.matches(event(EntityType::kOrder, "cancel_reason", nullptr, "busy")));
  CHECK_FALSE(becomes_set.matches(event(EntityType::kOrder, "cancel_reason", "busy", "closed")));
  CHECK_FALSE(becomes_set.matches(event(EntityType::kOrder, "cancel_reason", "busy", nullptr)));
  const Trigger& any = *set->rules()[1].trigger;
  CHECK(any.matches(event(EntityType::kShipment, "eta", "a", "b")));
  CHECK(any.matches(event(EntityType::kShipment, "eta", nullptr, "b")));
  const Trigger& quoted = *set->rules()[2].trigger;
  CHECK(quoted.matches(event(EntityType::kOrder, "priority", nullptr, "set")));
  CHECK(quoted.matches(event(EntityType::kOrder, "priority", nullptr, 3)));
  CHECK(quoted.matches(event(EntityType::kOrder, "priority", nullptr, true)));
  CHECK_FALSE(quoted.matches(event(EntityType::kOrder, "priority", nullptr, "3")));
}

TEST_CASE("rule mistakes name file, line, column and what would be right") {
  CHECK_THAT(parse_error("kind2 = 1"), Catch::Contains("r.toml:7:9: unknown key 'kind2' in rule 'x'"));
  CHECK_THAT(parse_error("once = \"yes\""), Catch::Contains("r.toml:7:8: 'once' must be true or false, not a string"));
  CHECK_THAT(parse_error("cooldown = \"1 hour\""),
             Catch::Contains("r.toml:7:12: 'cooldown': '1 hour' has an unknown unit ' ' (use s, m, h or d)"));
  CHECK_THAT(parse_error("cooldown = \"0s\""),
             Catch::Contains("r.toml:7:12: 'cooldown' must be more than 0s and at most 3650d (ten years)"));
  CHECK_THAT(parse_error("cooldown = \"3651d\""),
             Catch::Contains("r.toml:7:12: 'cooldown' must be more than 0s and at most 3650d (ten years); a longer "
                             "one is a typo"));
  CHECK_THAT(parse_error("when = \"order.status = 'x'\""),
             Catch::Contains("r.toml:7:22: '=' is not an operator; use '==' to compare"));
}

TEST_CASE("a rule without required keys says which") {
  Diagnostics errors;
  CHECK_FALSE(RuleSet::parse("[[rule]]\nid = \"x\"\n", "r.toml", errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains("r.toml:1:1: rule 'x' needs 'kind' (a string)"));
  CHECK_THAT(text, Catch::Contains("r.toml:2:6: rule 'x' needs 'on' (like \"order.status -> cancelled\") or 'at' "
                                   "(like \"order.promised_by - 30m\")"));
  CHECK_THAT(text, Catch::Contains("rule 'x' needs 'template' (a string)"));
  CHECK_THAT(text, Catch::Contains("rule 'x' needs 'channels' (a list of strings)"));
}

TEST_CASE("bad kinds and channels are listed with the valid ones") {
  Diagnostics errors;
  CHECK_FALSE(RuleSet::parse(R"([[rule]]
id = "x"
kind = "discount"
on = "order.status -> cancelled"
template = "t"
channels = ["sms", "fax", "sms"]
)",
                             "r.toml", errors));
  const std::string text = all(errors);
  CHECK_THAT(text, Catch::Contains("r.toml:3:8: unknown kind 'discount' (expected one of apology, explanation, "
                                   "price_change_reason, thank_you, heads_up, follow_up, check_in)"));
  CHECK_THAT(text, Catch::Contains("r.toml:6:12: unknown channel 'fax' (expected email or sms)"));
  CHECK_THAT(text, Catch::Contains("r.toml:6:12: channel 'sms' is listed twice"));
}

TEST_CASE("malformed triggers point at the mistake") {
  auto on_error = [](const std::string& on) {
    Diagnostics errors;
    CHECK_FALSE(RuleSet::parse(
        "[[rule]]\nid = \"x\"\nkind = \"apology\"\non = \"" + on + "\"\ntemplate = \"t\"\nchannels = [\"sms\"]\n",
        "r.toml", errors));
    return all(errors);
  };
  CHECK_THAT(on_error("order.status cancelled"),
             Catch::Contains("r.toml:4:7: 'on' must look like \"order.status -> cancelled\" (entity.field -> value), "
                             "found no '->'"));
  CHECK_THAT(on_error("order -> cancelled"),
             Catch::Contains("r.toml:4:7: 'on' needs entity.field before '->', like order.status; found 'order'"));
  CHECK_THAT(on_error("parcel.status -> lost"),
             Catch::Contains("r.toml:4:7: unknown entity 'parcel' (expected one of customer, order, shipment, "
                             "subscription, payment)"));
  CHECK_THAT(on_error("order.sta tus -> x"),
             Catch::Contains("r.toml:4:13: 'sta tus' is not a field name (letters, digits, '_' and '-')"));
  CHECK_THAT(on_error("order.status ->  "),
             Catch::Contains("r.toml:4:22: 'on' needs a value after '->': a status, 'set' or '*'"));
  CHECK_THAT(on_error("order.status -> a || b"), Catch::Contains("r.toml:4:26: empty value between '|' in 'on'"));
  CHECK_THAT(on_error("order.status -> a b"),
             Catch::Contains("r.toml:4:23: 'a b' is not a value; quote it like 'a b'"));
}

TEST_CASE("rules are written as [[rule]] tables") {
  Diagnostics errors;
  CHECK_FALSE(RuleSet::parse("[rule]\nid = \"x\"\n", "r.toml", errors));
  CHECK_THAT(all(errors), Catch::Contains("r.toml:1:1: 'rule' must be written as [[rule]] tables"));
}

TEST_CASE("a TOML syntax error in a rule file names file, line and column") {
  Diagnostics errors;
  CHECK_FALSE(RuleSet::parse("[[rule]]\nid = \"x\n", "r.toml", errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == "r.toml");
  CHECK(errors[0].line == 2);
}

TEST_CASE("rule ids are unique across the files of a folder") {
  TempDir dir;
  const std::string rule =
      "[[rule]]\nid = \"same\"\nkind = \"apology\"\non = \"order.status -> cancelled\"\n"
      "template = \"t\"\nchannels = [\"sms\"]\n";
  dir.write("a.toml", rule);
  dir.write("b.toml", "# b\n" + rule);
  dir.write("notes.txt", "not a rule file");
  Diagnostics errors;
  CHECK_FALSE(RuleSet::load(dir.path(), errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].str() == (dir.path() / "b.toml").string() + ":2:1: rule id 'same' is already used at " +
                               (dir.path() / "a.toml").string() + ":1");
}

TEST_CASE("an empty rules folder is an error") {
  TempDir dir;
  Diagnostics errors;
  CHECK_FALSE(RuleSet::load(dir.path(), errors));
  CHECK_THAT(all(errors), Catch::Contains("no rule files (*.toml) in the rules folder"));
}

TEST_CASE("the shipped rules load") {
  Diagnostics errors;
  auto set = RuleSet::load(test::source_dir() / "config/rules", errors);
  INFO(all(errors));
  REQUIRE(set);
  CHECK(set->rules().size() >= 3);
}

TEST_CASE("a deadline rule fires at a time field moved by an offset") {
  auto set = parse_ok(R"toml(
[[rule]]
id = "at-risk"
kind = "heads_up"
at = "order.promised_by - 30m"
template = "t"
channels = ["sms"]
urgent = true

[[rule]]
id = "due"
kind = "explanation"
at = "payment.due_date + 1d"
template = "t"
channels = ["sms"]
)toml");
  const Rule& at_risk = set->rules()[0];
  REQUIRE(at_risk.deadline);
  CHECK_FALSE(at_risk.trigger);
  CHECK(at_risk.urgent);
  CHECK(at_risk.deadline->text == "order.promised_by - 30m");
  CHECK(at_risk.deadline->due({{"promised_by", "2026-11-20T12:00:00+01:00"}}) == parse_rfc3339("2026-11-20T10:30:00Z"));
  CHECK_FALSE(at_risk.deadline->due({{"promised_by", "soon"}}));
  CHECK_FALSE(at_risk.deadline->due(nlohmann::json::object()));
  CHECK(set->rules()[1].deadline->due({{"due_date", "2026-12-01"}}) == parse_rfc3339("2026-12-02T00:00:00Z"));
  CHECK(set->find("due") == &set->rules()[1]);
  CHECK(set->find("nope") == nullptr);
  CHECK(set->triggered_by(Event{EntityRef{EntityType::kOrder, "1"}, "promised_by", nullptr, "x", Timestamp{}}).empty());
}

TEST_CASE("malformed deadlines point at the mistake") {
  auto at_error = [](const std::string& at) {
    Diagnostics errors;
    CHECK_FALSE(RuleSet::parse(
        "[[rule]]\nid = \"x\"\nkind = \"heads_up\"\nat = \"" + at + "\"\ntemplate = \"t\"\nchannels = [\"sms\"]\n",
        "r.toml", errors));
    return all(errors);
  };
  CHECK_THAT(at_error("tomorrow"),
             Catch::Contains("r.toml:4:7: 'at' must look like \"order.promised_by - 30m\" (entity.field, then "
                             "optionally + or - a duration)"));
  CHECK_THAT(at_error("parcel.eta - 1h"),
             Catch::Contains("r.toml:4:7: unknown entity 'parcel' (expected one of customer, order, shipment, "
                             "subscription, payment)"));
  CHECK_THAT(at_error("order.promised_by - half an hour"),
             Catch::Contains("r.toml:4:25: 'at': 'half an hour' is not a duration"));
  Diagnostics errors;
  CHECK_FALSE(
      RuleSet::parse("[[rule]]\nid = \"x\"\nkind = \"heads_up\"\non = \"order.status -> placed\"\n"
                     "at = \"order.promised_by\"\ntemplate = \"t\"\nchannels = [\"sms\"]\n",
                     "r.toml", errors));
  CHECK_THAT(all(errors), Catch::Contains("r.toml:5:6: a rule has either 'on' (a change) or 'at' (a time), not both"));
}

TEST_CASE("minimum notice and supersession are read, and their mistakes reported") {
  auto set = parse_ok(R"toml(
[[rule]]
id = "price"
kind = "price_change_reason"
on = "subscription.next_price -> *"
template = "t"
channels = ["email"]
min_notice = "30d"
notice_field = "subscription.price_effective"
supersedes = ["other"]
)toml");
  const Rule& rule = set->rules()[0];
  CHECK(rule.min_notice == std::chrono::hours{24 * 30});
  CHECK(rule.notice_field == "subscription.price_effective");
  CHECK(rule.supersedes == std::vector<std::string>{"other"});

  CHECK_THAT(parse_error("min_notice = \"30d\""),
             Catch::Contains("r.toml:7:15: 'min_notice' needs 'notice_field' = entity.field, like "
                             "\"subscription.price_effective\""));
  Diagnostics errors;
  auto defaulted = RuleSet::parse(
      "[[rule]]\nid = \"x\"\nkind = \"price_change_reason\"\non = \"subscription.next_price -> *\"\n"
      "template = \"t\"\nchannels = [\"sms\"]\nnotice_field = \"subscription.price_effective\"\n",
      "r.toml", errors);
  REQUIRE(defaulted);
  CHECK(defaulted->rules()[0].min_notice == std::chrono::hours{24 * 30});
  CHECK_THAT(parse_error("min_notice = \"a month\"\nnotice_field = \"subscription.price_effective\""),
             Catch::Contains("r.toml:7:14: 'min_notice': 'a month' is not a duration"));
}

TEST_CASE("a rule cannot supersede a rule that does not exist") {
  TempDir dir;
  dir.write("a.toml",
            "[[rule]]\nid = \"a\"\nkind = \"apology\"\non = \"order.status -> cancelled\"\n"
            "template = \"t\"\nchannels = [\"sms\"]\nsupersedes = [\"ghost\"]\n");
  Diagnostics errors;
  CHECK_FALSE(RuleSet::load(dir.path(), errors));
  CHECK_THAT(all(errors), Catch::Contains("a.toml:1:1: rule 'a' supersedes 'ghost', which is not a rule"));
}

TEST_CASE("a rule names the fields its message cannot go without, and mistakes in them are reported") {
  auto set = parse_ok(R"toml(
[[rule]]
id = "price"
kind = "price_change_reason"
on = "subscription.next_price -> *"
template = "t"
channels = ["email"]
requires = ["subscription.price_reason", "customer.name"]

[[rule]]
id = "nothing"
kind = "apology"
on = "order.status -> cancelled"
template = "t"
channels = ["sms"]
requires = []

[[rule]]
id = "unsaid"
kind = "apology"
on = "order.status -> cancelled"
template = "t"
channels = ["sms"]
)toml");
  const Rule& price = set->rules()[0];
  CHECK(price.required_written);
  CHECK_FALSE(price.required_derived);
  REQUIRE(price.required.size() == 2);
  CHECK(price.required[0].str() == "subscription.price_reason");
  CHECK(price.required[1] == FieldRef{EntityType::kCustomer, "name"});
  CHECK(set->rules()[1].required_written);
  CHECK(set->rules()[1].required.empty());
  CHECK_FALSE(set->rules()[2].required_written);

  CHECK_THAT(parse_error("requires = [\"price_reason\"]"),
             Catch::Contains("r.toml:7:12: 'requires' names entity fields, like [\"subscription.price_reason\"]; "
                             "found 'price_reason'"));
  CHECK_THAT(parse_error("requires = [\"plan.price\"]"),
             Catch::Contains("r.toml:7:12: unknown entity 'plan' (expected one of customer, order, shipment, "
                             "subscription, payment)"));
  CHECK_THAT(parse_error("requires = [\"order.total\", \"order.total\"]"),
             Catch::Contains("r.toml:7:12: 'requires' names order.total twice"));
  CHECK_THAT(parse_error("requires = \"order.total\""), Catch::Contains("r.toml:7:12: 'requires' must be"));
  CHECK_THAT(parse_error("requires = [\"subscription.price\"]"),
             Catch::Contains("r.toml:7:12: 'requires' names subscription.price, but a rule about an order sees no "
                             "subscription (it sees itself, its shipment and its customer)"));
}

TEST_CASE("a rule that does not say what it requires gets the fields its templates show outside sections") {
  TempDir dir;
  dir.write("tactd.toml",
            "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n[locale]\nsupported = [\"en\", \"nl\"]\n");
  dir.write("rules/r.toml", R"toml(
[[rule]]
id = "derived"
kind = "apology"
on = "order.status -> cancelled"
template = "sorry"
channels = ["email", "sms"]

[[rule]]
id = "written"
kind = "apology"
on = "order.status -> cancelled"
template = "sorry"
channels = ["sms"]
requires = ["order.cancel_reason"]
)toml");
  // Every template shows order.total and the customer's first name outside
  // any section; only some show order.promised_by or the carrier there.
  dir.write("templates/en/sorry.email.mustache",
            "Subject: Order {{order.id}} of {{order.total}}\n\n"
            "Dear {{customer.first_name}}, {{order.promised_by}} {{#order.cancel_reason}}{{order.cancel_reason}}"
            "{{/order.cancel_reason}} {{^shipment.eta}}{{shipment.carrier}}{{/shipment.eta}} {{merchant}}\n");
  dir.write(
      "templates/en/sorry.sms.mustache",
      "Hi {{customer.first_name}}: {{order.raw.total}} {{{order.promised_by}}} {{history.count}} {{event.new}}\n");
  dir.write("templates/nl/sorry.email.mustache",
            "Subject: Bestelling {{order.id}}\n\nBeste {{customer.first_name}}, {{&order.total}} {{! order.note }}\n"
            "{{=<% %>=}}<%shipment.carrier%> <%order.promised_by%>\n");
  dir.write("templates/nl/sorry.sms.mustache",
            "Hoi {{customer.first_name}}, {{order.total}} {{order.promised_by}} {{shipment.carrier}}\n");
  Diagnostics errors;
  auto snapshot = load_snapshot(dir.path() / "tactd.toml", errors);
  INFO(all(errors));
  REQUIRE(snapshot);
  const Rule* derived = snapshot->rules->find("derived");
  REQUIRE(derived);
  CHECK(derived->required_derived);
  std::vector<std::string> fields;
  for (const FieldRef& f : derived->required) fields.push_back(f.str());
  // Sorted by entity type, then field. The carrier is guarded in the English
  // email, so it is not required; ids, merchant, history and event never are.
  CHECK(fields == std::vector<std::string>{"customer.name", "order.promised_by", "order.total"});
  const Rule* written = snapshot->rules->find("written");
  REQUIRE(written);
  CHECK_FALSE(written->required_derived);
  REQUIRE(written->required.size() == 1);
  CHECK(written->required[0].str() == "order.cancel_reason");
}

TEST_CASE("the shipped price-change rule requires the prices, the date and the reason") {
  Diagnostics errors;
  auto snapshot = load_snapshot(test::source_dir() / "config/tactd.toml", errors);
  INFO(all(errors));
  REQUIRE(snapshot);
  const Rule* rule = snapshot->rules->find("price-change");
  REQUIRE(rule);
  std::vector<std::string> fields;
  for (const FieldRef& f : rule->required) fields.push_back(f.str());
  CHECK(fields == std::vector<std::string>{"subscription.price", "subscription.next_price",
                                           "subscription.price_effective", "subscription.price_reason"});
  // Its templates say the same of themselves.
  const Rule* late = snapshot->rules->find("delivery-promise-broken");
  REQUIRE(late);
  CHECK(late->required_derived);
  REQUIRE(late->required.size() == 1);
  CHECK(late->required[0].str() == "order.promised_by");
}

TEST_CASE("a rule set knows which fields a change must have touched to matter") {
  auto set = parse_ok(R"toml(
[[rule]]
id = "late"
kind = "heads_up"
at = "order.promised_by - 30m"
when = "!(shipment.status in ['delivered']) && order.address.city == 'Utrecht'"
template = "t"
channels = ["email"]

[[rule]]
id = "thanks"
kind = "thank_you"
on = "subscription.plan -> *"
when = "customer.delivered_orders == 1"
template = "t"
channels = ["email"]

[[rule]]
id = "silence"
kind = "check_in"
at = "customer.last_contact_at + 180d"
template = "t"
channels = ["email"]
)toml");
  // Read by a deadline, a condition (a nested path reads its top field) or a trigger.
  CHECK(set->reads(EntityType::kOrder, "promised_by"));
  CHECK(set->reads(EntityType::kShipment, "status"));
  CHECK(set->reads(EntityType::kOrder, "address"));
  CHECK(set->reads(EntityType::kSubscription, "plan"));
  // Derived facts: the delivered orders count order statuses; the last
  // contact falls back on the customer's start.
  CHECK(set->reads(EntityType::kOrder, "status"));
  CHECK(set->reads(EntityType::kCustomer, "customer_since"));
  // Links always matter: they change what a rule sees.
  CHECK(set->reads(EntityType::kShipment, "order"));
  CHECK(set->reads(EntityType::kOrder, "customer"));
  // Nothing reads these.
  CHECK_FALSE(set->reads(EntityType::kOrder, "payment"));
  CHECK_FALSE(set->reads(EntityType::kShipment, "eta"));
  CHECK_FALSE(set->reads(EntityType::kCustomer, "name"));
}

TEST_CASE("a rule's action must name a configured action unless it is optional, and the error says where") {
  TempDir dir;
  dir.write("voucher-key", "k\n");
  const std::string base = "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\n[locale]\nsupported = [\"en\"]\n";
  const std::string rule = R"toml(
[[rule]]
id = "late"
kind = "apology"
on = "order.status -> cancelled"
template = "sorry"
channels = ["sms"]
action = "voucher"
)toml";
  dir.write("templates/en/sorry.sms.mustache", "Sorry.{{#action}} Code {{action.code}}.{{/action}}\n");
  dir.write("rules/r.toml", rule);
  dir.write("tactd.toml", base);
  Diagnostics errors;
  CHECK_FALSE(load_snapshot(dir.path() / "tactd.toml", errors));
  CHECK_THAT(all(errors), Catch::Contains("r.toml:8:10: rule 'late' takes action 'voucher', which"));
  CHECK_THAT(all(errors), Catch::Contains("it has no [[action]]"));
  CHECK_THAT(all(errors), Catch::Contains("or say action_optional = true to send without it"));

  dir.write("tactd.toml", base +
                              "[[action]]\nname = \"refund\"\nurl = \"https://shop.example/refunds\"\n"
                              "secret_file = \"voucher-key\"\n");
  errors.clear();
  CHECK_FALSE(load_snapshot(dir.path() / "tactd.toml", errors));
  CHECK_THAT(all(errors), Catch::Contains("its actions: refund"));

  dir.write("tactd.toml", base +
                              "[[action]]\nname = \"voucher\"\nurl = \"https://shop.example/vouchers\"\n"
                              "secret_file = \"voucher-key\"\n");
  errors.clear();
  auto snapshot = load_snapshot(dir.path() / "tactd.toml", errors);
  INFO(all(errors));
  REQUIRE(snapshot);
  CHECK(snapshot->rules->find("late")->action == "voucher");
  CHECK_FALSE(snapshot->rules->find("late")->action_optional);
  // {{action.*}} is no entity field: nothing required of the data for it.
  CHECK(snapshot->rules->find("late")->required.empty());

  dir.write("rules/r.toml", rule + "action_optional = true\n");
  dir.write("tactd.toml", base);
  errors.clear();
  snapshot = load_snapshot(dir.path() / "tactd.toml", errors);
  INFO(all(errors));
  REQUIRE(snapshot);
  CHECK(snapshot->rules->find("late")->action_optional);

  CHECK_THAT(parse_error("action = \"a voucher\""),
             Catch::Contains("r.toml:7:10: 'action' names an [[action]] of the configuration"));
  CHECK_THAT(parse_error("action_optional = true"),
             Catch::Contains("r.toml:7:19: 'action_optional' is only for a rule with an 'action'"));
}

TEST_CASE("the shipped broken-promise apology offers the voucher action, optional so that none is needed") {
  Diagnostics errors;
  auto snapshot = load_snapshot(test::source_dir() / "config/tactd.toml", errors);
  INFO(all(errors));
  REQUIRE(snapshot);
  const Rule* late = snapshot->rules->find("delivery-promise-broken");
  REQUIRE(late);
  CHECK(late->action == "voucher");
  CHECK(late->action_optional);
  CHECK(snapshot->config->actions.empty());
}
