// A database of its own for one test, on the PostgreSQL server of the CTest
// run (support/postgres_server.sh, started once by the fixture "postgres";
// its connection string is in the file $TACTD_PG_CONNINFO_FILE). Tests stay
// independent under ctest -j2 because none shares a database.
//
// No server is no reason to skip: the constructor throws, saying why, and
// the test fails.
#pragma once

#include <string>

namespace tactd::test {

class PgDatabase {
 public:
  PgDatabase();   // CREATE DATABASE with a name of its own
  ~PgDatabase();  // DROP DATABASE ... WITH (FORCE), whatever is still connected
  PgDatabase(const PgDatabase&) = delete;
  PgDatabase& operator=(const PgDatabase&) = delete;

  const std::string& name() const { return name_; }
  // libpq keywords for this database.
  const std::string& conninfo() const { return conninfo_; }
  // postgresql://user@host:port/name, as [tactd] state takes it.
  std::string url() const;

 private:
  std::string server_;  // the fixture's connection string (database tactd_test)
  std::string name_;
  std::string conninfo_;
};

}  // namespace tactd::test
