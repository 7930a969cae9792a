#include "config/toml_reader.h"

namespace tactd {
namespace {

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "a list";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

void report(const toml::parse_error& e, const std::string& file, Diagnostics& errors) {
  const auto& begin = e.source().begin;
  errors.push_back(
      Diagnostic{file, static_cast<int>(begin.line), static_cast<int>(begin.column), std::string(e.description())});
}

}  // namespace

std::optional<toml::table> parse_toml_file(const std::string& file, Diagnostics& errors) {
  try {
    return toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    report(e, file, errors);
    return std::nullopt;
  }
}

std::optional<toml::table> parse_toml_text(std::string_view text, const std::string& file, Diagnostics& errors) {
  try {
    return toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    report(e, file, errors);
    return std::nullopt;
  }
}

TableReader::TableReader(const toml::table& table, std::string file, std::string where, Diagnostics& errors)
    : table_(table), file_(std::move(file)), where_(std::move(where)), errors_(errors) {}

const toml::node* TableReader::find(std::string_view key) {
  known_.emplace(key);
  return table_.get(key);
}

int TableReader::line(std::string_view key) const {
  const toml::node* node = table_.get(key);
  return static_cast<int>((node ? node->source() : table_.source()).begin.line);
}

int TableReader::column(std::string_view key) const {
  const toml::node* node = table_.get(key);
  return static_cast<int>((node ? node->source() : table_.source()).begin.column);
}

void TableReader::error(std::string_view key, std::string message) {
  errors_.push_back(Diagnostic{file_, line(key), column(key), std::move(message)});
}

std::optional<std::string> TableReader::string(std::string_view key, bool required) {
  const toml::node* node = find(key);
  if (!node) {
    if (required) error(key, where_ + " needs '" + std::string(key) + "' (a string)");
    return std::nullopt;
  }
  if (auto value = node->value<std::string>()) return *value;
  error(key, "'" + std::string(key) + "' must be a string, not " + std::string(type_name(*node)));
  return std::nullopt;
}

std::optional<long long> TableReader::integer(std::string_view key, bool required) {
  const toml::node* node = find(key);
  if (!node) {
    if (required) error(key, where_ + " needs '" + std::string(key) + "' (an integer)");
    return std::nullopt;
  }
  if (node->is_integer()) return node->value<long long>();
  error(key, "'" + std::string(key) + "' must be an integer, not " + std::string(type_name(*node)));
  return std::nullopt;
}

std::optional<double> TableReader::number(std::string_view key) {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  if (node->is_integer() || node->is_floating_point()) return node->value<double>();
  error(key, "'" + std::string(key) + "' must be a number, not " + std::string(type_name(*node)));
  return std::nullopt;
}

std::optional<bool> TableReader::boolean(std::string_view key) {
  const toml::node* node = find(key);
  if (!node) return std::nullopt;
  if (node->is_boolean()) return node->value<bool>();
  error(key, "'" + std::string(key) + "' must be true or false, not " + std::string(type_name(*node)));
  return std::nullopt;
}

std::optional<std::vector<std::string>> TableReader::strings(std::string_view key, bool required) {
  const toml::node* node = find(key);
  if (!node) {
    if (required) error(key, where_ + " needs '" + std::string(key) + "' (a list of strings)");
    return std::nullopt;
  }
  const toml::array* array = node->as_array();
  std::vector<std::string> out;
  if (array) {
    for (const auto& element : *array) {
      auto value = element.value<std::string>();
      if (!value) {
        array = nullptr;
        break;
      }
      out.push_back(*value);
    }
  }
  if (!array) {
    error(key, "'" + std::string(key) + "' must be a list of strings, like [\"a\", \"b\"]");
    return std::nullopt;
  }
  return out;
}

const toml::table* TableReader::table(std::string_view key) {
  const toml::node* node = find(key);
  if (!node) return nullptr;
  if (const toml::table* t = node->as_table()) return t;
  error(key, "'" + std::string(key) + "' must be a table, not " + std::string(type_name(*node)));
  return nullptr;
}

const toml::array* TableReader::tables(std::string_view key) {
  const toml::node* node = find(key);
  if (!node) return nullptr;
  const toml::array* array = node->as_array();
  if (array && array->is_array_of_tables()) return array;
  error(key, "'" + std::string(key) + "' must be written as [[" + std::string(key) + "]] tables");
  return nullptr;
}

void TableReader::finish() {
  for (const auto& [key, node] : table_) {
    if (known_.count(key.str())) continue;
    std::string list;
    for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
    const auto& begin = node.source().begin;
    errors_.push_back(
        Diagnostic{file_, static_cast<int>(begin.line), static_cast<int>(begin.column),
                   "unknown key '" + std::string(key.str()) + "' in " + where_ + " (known keys: " + list + ")"});
  }
}

}  // namespace tactd
