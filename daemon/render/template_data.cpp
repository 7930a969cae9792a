#include "render/render.h"

#include <array>
#include <charconv>
#include <cmath>
#include <optional>

#include "render/locale.h"

namespace tactd {
namespace {

constexpr std::array<std::string_view, 6> kMoneyFields{"total",      "amount",    "price",
                                                       "next_price", "old_price", "refund_amount"};

bool is_money(std::string_view field) {
  for (auto name : kMoneyFields)
    if (name == field) return true;
  return false;
}

std::string number_text(const nlohmann::json& value) {
  if (value.is_number_integer() || value.is_number_unsigned()) return value.dump();
  const double d = value.get<double>();
  if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
  return value.dump();
}

// The entity's `currency`, EUR when it names none.
std::string currency_of(const nlohmann::json& fields) {
  auto it = fields.find("currency");
  return it != fields.end() && it->is_string() ? it->get<std::string>() : "EUR";
}

// A money amount given as text ("23.50"), as sources sometimes do.
std::optional<double> amount_in(const std::string& text) {
  double amount = 0;
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(text.data(), last, amount);
  if (ec != std::errc{} || end != last) return std::nullopt;
  return amount;
}

// One value ready for display; `money_currency` is set for money fields.
nlohmann::json display(const nlohmann::json& value, const std::string* money_currency, const MessageContext& c) {
  if (value.is_number()) {
    if (money_currency) return format_money(value.get<double>(), *money_currency, c.locale);
    return number_text(value);
  }
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (money_currency) {
      if (auto amount = amount_in(text)) return format_money(*amount, *money_currency, c.locale);
    }
    if (text.size() == 10) {
      if (auto day = parse_date_or_time(text)) return format_date(*day, "UTC", c.locale);
    } else if (auto t = parse_rfc3339(text)) {
      return format_date_time(*t, c.time_zone, c.locale);
    }
    return value;
  }
  if (value.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& element : value) out.push_back(display(element, nullptr, c));
    return out;
  }
  if (value.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto it = value.begin(); it != value.end(); ++it) out[it.key()] = display(it.value(), nullptr, c);
    return out;
  }
  return value;  // booleans and null
}

// `id` is the entity's own: the field when the source (or pipeline) set it,
// else the context's entity id for the entity the rule fired for.
nlohmann::json entity_data(const std::string& type, const nlohmann::json& fields, const MessageContext& c) {
  if (!fields.is_object()) return nlohmann::json::object();
  const std::string currency = currency_of(fields);
  nlohmann::json out = nlohmann::json::object();
  for (auto it = fields.begin(); it != fields.end(); ++it)
    out[it.key()] = display(it.value(), is_money(it.key()) ? &currency : nullptr, c);
  if (!out.contains("id") && type == to_string(c.entity.type) && !c.entity.id.empty()) out["id"] = c.entity.id;
  if (type == "customer") {
    auto name = fields.find("name");
    if (name != fields.end() && name->is_string()) {
      const auto& text = name->get_ref<const std::string&>();
      const auto start = text.find_first_not_of(' ');
      if (start != std::string::npos) out["first_name"] = text.substr(start, text.find(' ', start) - start);
    }
  }
  out["raw"] = fields;
  return out;
}

}  // namespace

nlohmann::json template_data(const MessageContext& c) {
  nlohmann::json data = nlohmann::json::object();
  if (c.entities.is_object())
    for (auto it = c.entities.begin(); it != c.entities.end(); ++it)
      data[it.key()] = entity_data(it.key(), it.value(), c);
  data["merchant"] = c.merchant;
  data["kind"] = std::string(to_string(c.kind));
  data["rule"] = c.rule;
  data["locale"] = c.locale;
  data["entity"] = {{"type", std::string(to_string(c.entity.type))}, {"id", c.entity.id}};
  if (c.event.is_object()) {
    const std::string field = c.event.value("field", "");
    const auto entity = c.entities.find(std::string(to_string(c.entity.type)));
    const std::string currency =
        currency_of(entity == c.entities.end() || !entity->is_object() ? nlohmann::json::object() : *entity);
    const std::string* money = is_money(field) ? &currency : nullptr;
    data["event"] = {{"field", field},
                     {"old", display(c.event.value("old", nlohmann::json()), money, c)},
                     {"new", display(c.event.value("new", nlohmann::json()), money, c)}};
  }
  nlohmann::json list = nlohmann::json::array();
  for (const Contact& contact : c.history)
    list.push_back({{"kind", std::string(to_string(contact.kind))},
                    {"at", format_date_time(contact.at, c.time_zone, c.locale)},
                    {"rule", contact.rule},
                    {"channel", std::string(to_string(contact.channel))}});
  data["history"] = {{"count", c.history.size()}, {"any", !c.history.empty()}, {"first", c.history.empty()}};
  if (!list.empty()) data["history"]["last"] = list.back();
  data["history"]["list"] = std::move(list);
  // The answer of the rule's action, as the endpoint gave it; absent when
  // there is none, so that {{^action}} says something without it.
  if (c.action.is_object() && !c.action.empty()) data["action"] = c.action;
  return data;
}

}  // namespace tactd
