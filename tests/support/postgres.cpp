#include "support/postgres.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

#include "postgres/sync_connection.h"

namespace tactd::test {
namespace {

std::string server_conninfo() {
  const char* env = std::getenv("TACTD_PG_CONNINFO_FILE");
  const std::string file = env && *env ? env : TACTD_PG_CONNINFO_FILE;
  std::ifstream in(file);
  std::string conninfo;
  if (!in || !std::getline(in, conninfo) || conninfo.empty())
    throw std::runtime_error(
        "no PostgreSQL server for the tests: " + file +
        " is missing or empty. The CTest fixture 'postgres' (test postgres_start: tests/support/postgres_server.sh "
        "start) writes it; run the test through ctest, or start the server by hand with that script. If "
        "postgres_start failed, its output says why (apt-get install postgresql-15: .ci/deps).");
  return conninfo;
}

}  // namespace

PgDatabase::PgDatabase() : server_(server_conninfo()) {
  static std::atomic<int> counter{0};
  std::random_device random;
  name_ = "t_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(random() % 100000);
  pg::SyncConnection admin(server_);
  if (admin.error())
    throw std::runtime_error("cannot connect to the tests' PostgreSQL (" + server_ + "): " + admin.error()->message);
  // A name is no parameter; this one is made of [a-z0-9_] above.
  auto created = admin.query("CREATE DATABASE " + name_);
  if (!created.ok()) throw std::runtime_error("CREATE DATABASE " + name_ + " failed: " + created.error->message);
  conninfo_ = server_ + " dbname=" + name_;  // a later keyword overrides the earlier one
}

std::string PgDatabase::url() const {
  std::istringstream words(conninfo_);
  std::string word, host, port, user, dbname;
  while (words >> word) {  // the last dbname wins
    const auto eq = word.find('=');
    const std::string key = word.substr(0, eq), value = word.substr(eq + 1);
    if (key == "host") host = value;
    if (key == "port") port = value;
    if (key == "user") user = value;
    if (key == "dbname") dbname = value;
  }
  return "postgresql://" + user + "@" + host + ":" + port + "/" + dbname;
}

PgDatabase::~PgDatabase() {
  pg::SyncConnection admin(server_);
  if (!admin.error()) admin.query("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

}  // namespace tactd::test
