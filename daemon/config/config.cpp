#include "config/config.h"

#include <algorithm>

#include "config/toml_reader.h"
#include "model/time.h"

namespace tactd {
namespace {

constexpr long long kMaxDailyCap = 1000;

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& value) {
  std::filesystem::path p(value);
  return p.is_absolute() ? p : (base / p).lexically_normal();
}

}  // namespace

std::shared_ptr<const Config> load_config(const std::filesystem::path& file, Diagnostics& errors) {
  const std::string name = file.string();
  const size_t errors_before = errors.size();
  if (!std::filesystem::is_regular_file(file)) {
    errors.push_back(Diagnostic{name, 0, 0, "cannot read the configuration file (no such file)"});
    return nullptr;
  }
  auto doc = parse_toml_file(name, errors);
  if (!doc) return nullptr;

  auto config = std::make_shared<Config>();
  config->file = file;
  const auto base = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();

  TableReader top(*doc, name, "the configuration", errors);
  if (const toml::table* section = top.table("tactd")) {
    TableReader r(*section, name, "[tactd]", errors);
    config->rules_dir = resolve(base, r.string("rules").value_or("rules"));
    config->templates_dir = resolve(base, r.string("templates").value_or("../templates"));
    config->state_path = resolve(base, r.string("state").value_or("tactd-state.db"));
    config->merchant = r.string("merchant").value_or("");
    auto require_folder = [&r](const char* key, const std::filesystem::path& dir) {
      if (!std::filesystem::is_directory(dir))
        r.error(key, "'" + std::string(key) + "' names '" + dir.string() + "', which is not a folder");
    };
    require_folder("rules", config->rules_dir);
    require_folder("templates", config->templates_dir);
    r.finish();
  } else {
    top.error("tactd", "the configuration needs a [tactd] table with at least 'rules' and 'templates'");
  }
  if (const toml::table* section = top.table("locale")) {
    TableReader r(*section, name, "[locale]", errors);
    if (auto v = r.strings("supported")) {
      if (v->empty()) r.error("supported", "'supported' must name at least one locale, like [\"en\"]");
      config->locales = *v;
    }
    if (auto v = r.string("default")) {
      config->default_locale = *v;
      if (std::find(config->locales.begin(), config->locales.end(), *v) == config->locales.end())
        r.error("default", "the default locale '" + *v + "' is not in 'supported'");
    }
    if (auto v = r.string("time_zone")) {
      config->default_time_zone = *v;
      if (!is_known_time_zone(*v))
        r.error("time_zone", "'" + *v + "' is not an IANA time zone (like \"Europe/Amsterdam\" or \"UTC\")");
    }
    r.finish();
  }
  if (const toml::table* section = top.table("policy")) {
    TableReader r(*section, name, "[policy]", errors);
    if (auto v = r.integer("max_per_customer_per_day")) {
      if (*v < 1 || *v > kMaxDailyCap)
        r.error("max_per_customer_per_day",
                "'max_per_customer_per_day' must be between 1 and " + std::to_string(kMaxDailyCap));
      else
        config->max_per_customer_per_day = static_cast<int>(*v);
    }
    r.finish();
  }
  top.finish();
  if (errors.size() != errors_before) return nullptr;
  return config;
}

}  // namespace tactd
