// Templates: loading, the data a template sees, and rendering.
//
// Templates live in `<templates_dir>/<locale>/<name>.<channel>.mustache`
// (kainjow mustache). An email template starts with a subject line,
//
//   Subject: Your order {{order.id}} was cancelled
//   <blank line>
//   body...
//
// and an SMS template is all body. Loading is done once per configuration
// snapshot; a TemplateSet is immutable and may be shared.
#pragma once

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/diagnostic.h"
#include "model/notification.h"

namespace tactd {

// Everything a message may speak of. `entities` is keyed by entity type
// ({"customer": {...}, "order": {...}, "shipment": {...}}) and holds raw fields.
struct MessageContext {
  std::string rule;
  Kind kind = Kind::kApology;
  EntityRef entity;
  nlohmann::json entities = nlohmann::json::object();
  nlohmann::json event;          // {"field", "old", "new"} of the trigger, or null
  std::vector<Contact> history;  // earlier contact with this customer, oldest first
  std::string locale;            // e.g. "nl"
  std::string time_zone;         // IANA zone of the customer
  std::string merchant;          // who signs: the entity's merchant or the configured one
  // What the rule's action answered (a JSON object), or null: none taken
  // (yet), or it failed.
  nlohmann::json action;
};

// The data a template sees (documented in docs/templates.md): each entity's
// fields ready for display (money in the entity's currency, times in the
// customer's zone, both in the locale's style), the raw values under `raw`,
// `merchant`, `kind`, `rule`, `event`, `history` and, when the rule's action
// answered, `action` (its JSON object as given).
nlohmann::json template_data(const MessageContext& context);

struct Rendered {
  std::optional<std::string> subject;  // set for email
  std::string body;
};

// The names a mustache `source` shows outside every section ({{#x}}...{{/x}}
// and {{^x}}...{{/x}}), in name order: what it cannot render well without.
// Comments, partials and changed delimiters ({{=<% %>=}}) are understood;
// "." is left out.
std::set<std::string> unguarded_names(std::string_view source);

// The entity field a template variable shows, as "<type>.<field>", or ""
// when it shows none that a source provides: `subscription.price` and
// `subscription.raw.price` show subscription.price, `customer.first_name`
// shows customer.name, `order.items.0` shows order.items; `merchant`,
// `history.*` and an entity's `id`, `sent`, `received` and `replied_at` (always
// there, derived) show none.
std::string entity_field_of(std::string_view name);

class TemplateSet {
 public:
  // Loads every `*.mustache` under `dir/<locale>/`. Problems (unreadable
  // file, bad name, mustache syntax, email without a subject) are appended
  // to `errors` as "file:line:column: what"; a broken file is left out.
  static std::shared_ptr<const TemplateSet> load(const std::filesystem::path& dir, Diagnostics& errors);

  bool has(std::string_view locale, std::string_view name, Channel channel) const;
  // The path a template would have, for messages ("templates/nl/x.sms.mustache").
  std::filesystem::path path_of(std::string_view locale, std::string_view name, Channel channel) const;

  // Renders a template with `data` (from template_data). Returns nullopt and
  // sets `error` when the template is missing or rendering fails.
  std::optional<Rendered> render(std::string_view locale, std::string_view name, Channel channel,
                                 const nlohmann::json& data, std::string& error) const;

  // A template parsed once, when the set is loaded (template_set.cpp).
  struct Compiled;
  struct Template {
    std::filesystem::path path;
    std::string subject;  // mustache source; empty for SMS
    std::string body;     // mustache source
    int body_line = 1;    // line of the body's first line in the file
    std::shared_ptr<Compiled> compiled;
  };
  // Whether `other` holds the same templates with the same sources.
  bool same_sources(const TemplateSet& other) const {
    return std::equal(templates_.begin(), templates_.end(), other.templates_.begin(), other.templates_.end(),
                      [](const auto& a, const auto& b) {
                        return a.first == b.first && a.second.subject == b.second.subject &&
                               a.second.body == b.second.body;
                      });
  }
  // The loaded template, or nullptr; valid as long as this TemplateSet.
  const Template* find(std::string_view locale, std::string_view name, Channel channel) const {
    auto it = templates_.find(std::make_tuple(std::string(locale), std::string(name), channel));
    return it == templates_.end() ? nullptr : &it->second;
  }

 private:
  std::filesystem::path dir_;
  std::map<std::tuple<std::string, std::string, Channel>, Template> templates_;
};

}  // namespace tactd
