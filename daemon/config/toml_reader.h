// Reading TOML tables into typed values with diagnostics that name file,
// line and column. Shared by the components that read operator TOML
// (configuration, rules); included by their .cpp files only.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "model/diagnostic.h"

namespace tactd {

// Parses a TOML file. On a syntax error returns nullopt and appends
// "file:line:column: <what toml++ says>".
std::optional<toml::table> parse_toml_file(const std::string& file, Diagnostics& errors);
// The same for text already in memory; `file` names it in messages.
std::optional<toml::table> parse_toml_text(std::string_view text, const std::string& file, Diagnostics& errors);

// Reads the keys of one table. Every getter marks its key as known; finish()
// reports keys nobody asked for, which catches typos such as `tempalte`.
// `errors` must outlive the reader.
class TableReader {
 public:
  // `where` names the table in messages, e.g. "[policy]" or "rule 'x'".
  TableReader(const toml::table& table, std::string file, std::string where, Diagnostics& errors);

  std::optional<std::string> string(std::string_view key, bool required = false);
  std::optional<long long> integer(std::string_view key, bool required = false);
  std::optional<double> number(std::string_view key);  // an integer or a float
  std::optional<bool> boolean(std::string_view key);
  std::optional<std::vector<std::string>> strings(std::string_view key, bool required = false);
  const toml::table* table(std::string_view key);
  // An array of tables, written [[key]] in the file.
  const toml::array* tables(std::string_view key);

  // Line and column of the value of `key` (of the table when absent).
  int line(std::string_view key) const;
  int column(std::string_view key) const;
  // Appends "file:line:col: message" pointing at the value of `key`.
  void error(std::string_view key, std::string message);
  // Reports every key that no getter asked for.
  void finish();

  const std::string& file() const { return file_; }
  Diagnostics& errors() const { return errors_; }

 private:
  const toml::node* find(std::string_view key);

  const toml::table& table_;
  std::string file_;
  std::string where_;
  Diagnostics& errors_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace tactd
