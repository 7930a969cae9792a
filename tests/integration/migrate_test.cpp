// `tactd migrate`, the real binary, on SQLite and on the CTest run's
// PostgreSQL server (a database of its own per case).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "postgres/sync_connection.h"
#include "store/migrations.h"
#include "support/daemon.h"
#include "support/postgres.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::run_tactd;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

// The schema version a new database gets (store_test checks the number).
const int kLatest = tactd::latest_schema_version();

// A configuration in `dir` whose state is `state_lines`: [tactd] state, or a [state] table.
std::string config_with(const TempDir& dir, const std::string& state_lines) {
  std::filesystem::create_directories(dir.path() / "rules");
  std::filesystem::create_directories(dir.path() / "templates");
  return "'" + dir.write("tactd.toml", "[tactd]\ntemplates = \"templates\"\n" + state_lines).string() + "'";
}

}  // namespace

TEST_CASE("tactd migrate brings a SQLite state up to date and says its version") {
  TempDir dir;
  const auto config = config_with(dir, "state = \"state.db\"\n");
  const auto r = run_tactd(dir.path(), "migrate --config " + config);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("schema version " + std::to_string(kLatest)));
  CHECK(std::filesystem::exists(dir.path() / "state.db"));
}

TEST_CASE("tactd migrate twice at once on one PostgreSQL database: both succeed, one schema, no password shown") {
  TempDir dir;
  tactd::test::PgDatabase db;
  dir.write("db-password", "never-shown-0451\n");
  const auto config = config_with(dir, "[state]\nurl = \"" + db.url() + "\"\npassword_file = \"db-password\"\n");
  const std::string tactd = std::string("'") + TACTD_BINARY + "' migrate --config " + config;
  const auto folder = dir.path().string();
  const std::string both = "(" + tactd + " >'" + folder + "/out1' 2>&1; echo $? >'" + folder + "/status1') & (" +
                           tactd + " >'" + folder + "/out2' 2>&1; echo $? >'" + folder + "/status2') & wait";
  REQUIRE(std::system(both.c_str()) == 0);
  for (const char* n : {"1", "2"}) {
    INFO("run " << n << ": " << slurp(dir.path() / (std::string("out") + n)));
    CHECK(slurp(dir.path() / (std::string("status") + n)) == "0\n");
    CHECK_THAT(slurp(dir.path() / (std::string("out") + n)),
               Contains("schema version " + std::to_string(kLatest)) && !Contains("never-shown-0451"));
  }
  tactd::pg::SyncConnection check(db.conninfo());
  CHECK(check.query("SELECT COUNT(*) FROM schema_migrations").rows.at(0).integer(0) == kLatest);

  const auto again = run_tactd(dir.path(), "migrate --config " + config);
  CHECK(again.status == 0);
  CHECK_THAT(again.out, Contains("schema version " + std::to_string(kLatest)));
  // The server's notice that schema_migrations exists goes to the log at
  // debug level, not raw to standard error.
  CHECK_THAT(again.err, !Contains("NOTICE"));
}

TEST_CASE("tactd migrate without a reachable PostgreSQL exits 2 saying why, the password masked") {
  TempDir dir;
  const auto config = config_with(dir, "state = \"postgresql://tactd@127.0.0.1:1/none?connect_timeout=5\"\n");
  const auto r = run_tactd(dir.path(), "migrate --config " + config);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("cannot connect to the state database postgresql://tactd@127.0.0.1:1/none"));
}
