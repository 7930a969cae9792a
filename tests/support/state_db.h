// Reading the state database of a daemon under test, while it runs. Tests
// that include this link SQLiteCpp.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <filesystem>
#include <string>
#include <vector>

namespace tactd::test {

// The first column of each row `sql` selects from the database at `path`,
// as text; empty while the database does not exist yet.
inline std::vector<std::string> column(const std::filesystem::path& path, const std::string& sql) {
  std::vector<std::string> out;
  try {
    SQLite::Database db(path.string());
    SQLite::Statement query(db, sql);
    while (query.executeStep()) out.push_back(query.getColumn(0).getString());
  } catch (const SQLite::Exception&) {
  }
  return out;
}

}  // namespace tactd::test
