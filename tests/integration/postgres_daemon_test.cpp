// The real `tactd run` on the CTest run's PostgreSQL server (a database of
// its own per case), pushing to it and delivering to a loopback provider:
// a stalled database holds up the store's work, never the loop (health and
// metrics answer at once), and a lost connection is made again while
// pushes meanwhile get 503, nothing of them kept.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>

#include "postgres/sync_connection.h"
#include "support/daemon.h"
#include "support/http.h"
#include "support/postgres.h"
#include "support/scripted_server.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::eventually;
using tactd::test::Provider;
using tactd::test::slurp;
using tactd::test::TempDir;
using namespace std::chrono_literals;

namespace {

const std::string kToken = "token-for-tests";
const tactd::test::Environment kSecrets = {{"MAIL_KEY", "SG.fixture-mail-key"}};

// A cancelled order of customer c-<id>, who has an email address: one apology by email.
std::string cancellation(const std::string& id) {
  return R"({"type":"customer","id":"c-)" + id + R"(","observed_at":"2026-11-20T09:00:00Z","fields":{"email":"m)" + id +
         R"(@example.com","name":"M"}})" + "\n" + R"({"type":"order","id":"A-)" + id +
         R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-)" + id + R"(","status":"cancelled"}})" +
         "\n";
}

class PgDaemon {
 public:
  // `more`: further TOML tables for the configuration.
  PgDaemon(const TempDir& dir, const tactd::test::PgDatabase& db, const Provider& provider,
           const std::string& more = {})
      : daemon_(write_config(dir, db, provider, more), dir.path() / "log", kSecrets) {
    push_ = tactd::test::logged_port(dir.path() / "log", "push: listening on 127.0.0.1:");
    admin_ = tactd::test::logged_port(dir.path() / "log", "admin: /healthz, /readyz and /metrics on 127.0.0.1:");
    REQUIRE(push_ != 0);
    REQUIRE(admin_ != 0);
  }
  tactd::test::Reply push(const std::string& body) const {
    return tactd::test::http("POST", "http://127.0.0.1:" + std::to_string(push_) + "/v1/observations", body,
                             {"Authorization: Bearer " + kToken});
  }
  // push() for another thread than the test's: no Catch assertion (status 0 when no answer came).
  tactd::test::Reply try_push(const std::string& body) const {
    return tactd::test::try_http("POST", "http://127.0.0.1:" + std::to_string(push_) + "/v1/observations", body,
                                 {"Authorization: Bearer " + kToken});
  }
  tactd::test::Reply admin(const std::string& path) const {
    return tactd::test::http("GET", "http://127.0.0.1:" + std::to_string(admin_) + path);
  }
  int stop() { return daemon_.stop(); }
  void signal(int signal) const { daemon_.signal(signal); }

 private:
  static std::filesystem::path write_config(const TempDir& dir, const tactd::test::PgDatabase& db,
                                            const Provider& provider, const std::string& more) {
    dir.write("token", kToken + "\n");
    return dir.write("tactd.toml", "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                                       "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                                       "\"\nmerchant = \"Bakkerij Bol\"\n[state]\nurl = \"" + db.url() +
                                       "\"\n[locale]\ntime_zone = \"Europe/Amsterdam\"\n"
                                       "[push]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n"
                                       "[admin]\nlisten = \"127.0.0.1:0\"\n"
                                       "[[channel]]\nchannel = \"email\"\nprovider = \"sendgrid\"\nurl = \"" +
                                       provider.base() +
                                       "/v3/mail/send\"\nfrom = \"Bakkerij Bol <hallo@bakkerijbol.example>\"\n"
                                       "secret_env = \"MAIL_KEY\"\nbackoff = \"1s\"\ntimeout = \"2s\"\n" +
                                       more);
  }

  tactd::test::Daemon daemon_;
  int push_ = 0;
  int admin_ = 0;
};

// How long `request` takes.
template <typename F>
std::chrono::milliseconds timed(F&& request) {
  const auto start = std::chrono::steady_clock::now();
  request();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

// A push whose commit waits on the server: another session holds `table`
// locked (the outbox: after the push's rules have fired), so the store
// work of pushes, sources and deliveries waits until release().
class HeldPush {
 public:
  HeldPush(const PgDaemon& daemon, const tactd::test::PgDatabase& db, const std::string& body,
           const std::string& table = "outbox")
      : holder_(db.conninfo()) {
    REQUIRE(holder_.query("BEGIN").ok());
    REQUIRE(holder_.query("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE").ok());
    pusher_ = std::thread([this, &daemon, body] { answer_ = daemon.try_push(body).status; });
    REQUIRE(eventually([&] { return holder_.query("SELECT 1 FROM pg_locks WHERE NOT granted").rows.size() > 0; }));
  }
  ~HeldPush() {
    if (!pusher_.joinable()) return;
    holder_.query("ROLLBACK");
    pusher_.join();
  }
  // The session holding the lock, for a look at the database meanwhile.
  tactd::pg::SyncConnection& holder() { return holder_; }
  // The push's status: 0 while it waits.
  long answer() const { return answer_; }
  // Lets the push's commit go on and waits for its answer.
  long release() {
    REQUIRE(holder_.query("COMMIT").ok());
    pusher_.join();
    return answer_;
  }

 private:
  tactd::pg::SyncConnection holder_;
  std::atomic<long> answer_{0};
  std::thread pusher_;
};

}  // namespace

TEST_CASE("on PostgreSQL a stalled database holds up the push, never the loop: health and metrics answer meanwhile") {
  TempDir dir;
  tactd::test::PgDatabase db;
  Provider provider(dir);
  PgDaemon daemon(dir, db, provider);
  CHECK(daemon.push(cancellation("1")).status == 202);
  REQUIRE(eventually([&] { return provider.requests().size() == 1; }));

  // Another session holds the entities: the daemon's next intake waits for
  // it on the server.
  HeldPush held(daemon, db, cancellation("2"), "entities");
  for (int i = 0; i < 5; ++i) {
    tactd::test::Reply health, metrics;
    const auto took = timed([&] {
      health = daemon.admin("/healthz");
      metrics = daemon.admin("/metrics");
    });
    CHECK(health.status == 200);
    CHECK(metrics.status == 200);
    CHECK_THAT(metrics.body, Contains("tactd_outbox_pending"));
    CHECK(took < 2000ms);  // the loop is free; the database is not answering at all
  }
  CHECK(held.answer() == 0);  // the push still waits for its commit
  CHECK(held.release() == 202);
  REQUIRE(eventually([&] { return provider.requests().size() == 2; }));
  std::this_thread::sleep_for(1s);
  CHECK(provider.requests().size() == 2);  // each delivered once
  CHECK(daemon.stop() == 0);
}

TEST_CASE("on PostgreSQL a reload waits for the store work under way, which keeps the rules it began with") {
  TempDir dir;
  tactd::test::PgDatabase db;
  Provider provider(dir);
  PgDaemon daemon(dir, db, provider);
  CHECK(daemon.push(cancellation("1")).status == 202);
  REQUIRE(eventually([&] { return provider.requests().size() == 1; }));

  // The next push's store work is suspended in the middle of deciding.
  HeldPush held(daemon, db, cancellation("2"));
  // A reload meanwhile (the same files: new rules, templates and
  // configuration all the same) is read at once and takes over only once
  // that work is done; before, it freed the rules the work was reading.
  daemon.signal(SIGHUP);
  REQUIRE(eventually([&] { return slurp(dir.path() / "log").find("reloading") != std::string::npos; }));
  CHECK(daemon.admin("/healthz").status == 200);  // the loop has turned since
  CHECK(slurp(dir.path() / "log").find("reload: done") == std::string::npos);
  CHECK(held.release() == 202);
  REQUIRE(eventually([&] { return slurp(dir.path() / "log").find("reload: done") != std::string::npos; }));
  REQUIRE(eventually([&] { return provider.requests().size() == 2; }));  // the second apology was decided
  CHECK(daemon.stop() == 0);
}

TEST_CASE("on PostgreSQL the leases are renewed while the store work waits for the database") {
  TempDir dir;
  tactd::test::PgDatabase db;
  Provider provider(dir);
  PgDaemon daemon(dir, db, provider, "[cluster]\nlease = \"3s\"\n");  // renewed every second
  CHECK(daemon.push(cancellation("1")).status == 202);
  REQUIRE(eventually([&] { return provider.requests().size() == 1; }));

  // The next push's commit waits for longer than a lease.
  HeldPush held(daemon, db, cancellation("2"));
  const long long locked_at =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  // The renewals go on meanwhile, on a connection of their own: the
  // shards' leases keep ending a lease ahead, so no other replica could
  // take them. (Renewed through the store's queue, they waited behind the
  // push, and the leases ended under it.)
  const auto leases_end = [&] {
    const tactd::pg::Result ends = held.holder().query("SELECT MIN(lease_until), COUNT(*) FROM shard_leases");
    REQUIRE(ends.ok());
    REQUIRE(ends.rows.at(0).integer(1) == 256);
    return ends.rows.at(0).integer(0);
  };
  REQUIRE(eventually([&] { return leases_end() > locked_at + 3500; }));
  CHECK(held.answer() == 0);  // the push still waits for its commit
  CHECK(held.release() == 202);
  REQUIRE(eventually([&] { return provider.requests().size() == 2; }));
  CHECK(daemon.stop() == 0);
}

TEST_CASE("on PostgreSQL a lost connection is logged and made again, pushes meanwhile get 503 and nothing is lost") {
  TempDir dir;
  tactd::test::PgDatabase db;
  Provider provider(dir);
  PgDaemon daemon(dir, db, provider);
  CHECK(daemon.push(cancellation("1")).status == 202);
  REQUIRE(eventually([&] { return provider.requests().size() == 1; }));

  // The daemon's connection ends, and no new one is let in for a while
  // (said from another database: a session cannot lock out its own).
  const std::string server = db.conninfo().substr(0, db.conninfo().rfind(" dbname="));
  tactd::pg::SyncConnection admin(server);
  REQUIRE(admin.query("ALTER DATABASE " + db.name() + " WITH ALLOW_CONNECTIONS false").ok());
  REQUIRE(admin
              .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> "
                     "pg_backend_pid()",
                     tactd::pg::Params(db.name()))
              .ok());
  REQUIRE(
      eventually([&] { return slurp(dir.path() / "log").find("no connection to the server") != std::string::npos; }));
  const tactd::test::Reply refused = daemon.push(cancellation("2"));
  CHECK(refused.status == 503);
  CHECK(refused.headers.count("retry-after") == 1);
  CHECK(daemon.admin("/healthz").status == 200);

  REQUIRE(admin.query("ALTER DATABASE " + db.name() + " WITH ALLOW_CONNECTIONS true").ok());
  long status = 0;
  REQUIRE(eventually([&] {  // the sender tries again, as 503 and Retry-After ask
    status = daemon.push(cancellation("2")).status;
    return status == 202;
  }));
  REQUIRE(eventually([&] { return provider.requests().size() == 2; }));
  std::this_thread::sleep_for(1s);
  CHECK(provider.requests().size() == 2);
  CHECK_THAT(slurp(dir.path() / "log"), Contains("connected again"));
  CHECK(daemon.stop() == 0);
}
