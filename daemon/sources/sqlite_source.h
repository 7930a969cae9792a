// The SQL polling source: a query against a shop's own database, read
// incrementally by a cursor column. The database is behind SqlDatabase, so
// that a PostgreSQL implementation can be added beside the SQLite one.
#pragma once

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "sources/source.h"

namespace tactd {

class SqlDatabase {
 public:
  virtual ~SqlDatabase() = default;
  // Runs `query` with `:cursor` bound to `cursor`: as an integer when it is
  // one, as the smallest integer when it is empty (before every value), else
  // as text. Each row as a JSON object keyed by column name, a BLOB as a
  // JSON binary value. Throws SqlError.
  virtual std::vector<nlohmann::json> rows(const std::string& query, const std::string& cursor) = 0;

  // A read-only connection to an SQLite file. Throws SqlError.
  static std::unique_ptr<SqlDatabase> open_sqlite(const std::filesystem::path& file);
};

class SqlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SqlSource {
 public:
  // `config` is a validated sqlite source with a mapping.
  SqlSource(SourceConfig config, std::unique_ptr<SqlDatabase> database)
      : config_(std::move(config)), database_(std::move(database)) {}

  struct Poll {
    int pages = 0;
    int observations = 0;
    int rejected = 0;  // rows that cannot be read (BLOB, text not UTF-8) or mapped; skipped, said in `problems`
    std::vector<std::string> problems;
  };

  // Reads page after page of rows after the committed cursor, each page
  // committed with the cursor of its last row, until a page comes back
  // empty or kMaxPagesPerPoll pages were read. `now` stamps rows whose
  // mapping names no time.
  Poll poll(Intake& intake, Timestamp now);

  static constexpr int kMaxPagesPerPoll = 100;

 private:
  SourceConfig config_;
  std::unique_ptr<SqlDatabase> database_;
};

}  // namespace tactd
