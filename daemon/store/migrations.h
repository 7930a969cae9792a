// The schema of the state, one description for both backends: numbered
// steps, each with what it does and its SQL per dialect where the dialects
// differ (SQLite's INTEGER PRIMARY KEY and 64-bit INTEGER against
// PostgreSQL's identity columns and BIGINT, SQLite's JSON functions and
// trigger bodies against PL/pgSQL). Both backends apply the same steps in
// the same order and record them in `schema_migrations`, so a version
// number means one schema whichever engine holds it.
//
// Append only: a released step is never edited, a change is a new step
// with the SQL of both dialects.
#pragma once

#include <span>

namespace tactd {

enum class Dialect { kSqlite, kPostgres };

struct Migration {
  int version;              // 1, 2, 3, ... in order
  const char* description;  // for people, and recorded with the version
  const char* sqlite;
  const char* postgres;  // nullptr: the same text as `sqlite`

  // The statements (several, separated by ';') of this step in `dialect`.
  const char* sql(Dialect dialect) const { return dialect == Dialect::kPostgres && postgres ? postgres : sqlite; }
};

// Every step, in order.
std::span<const Migration> migrations();

// The highest step: the version a fully migrated database has.
int latest_schema_version();

}  // namespace tactd
