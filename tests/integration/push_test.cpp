// POST /v1/observations on the real `tactd run`, over loopback HTTP.
#include <catch2/catch.hpp>

#include <curl/curl.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "sources/push_endpoint.h"
#include "support/daemon.h"
#include "support/http.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::slurp;
using tactd::test::TempDir;

namespace {

const std::string kSecret = "s3cret-for-tests";
const std::string kToken = "token-for-tests";

// The daemon with a push endpoint on a free loopback port, read from its log.
class PushDaemon {
 public:
  explicit PushDaemon(const TempDir& dir) : dir_(dir), daemon_(write_config(dir), dir.path() / "log", kEnv) {
    port_ = tactd::test::logged_port(dir.path() / "log", "push: listening on 127.0.0.1:");
    REQUIRE(port_ != 0);
  }
  int stop() { return daemon_.stop(); }
  int port() const { return port_; }
  int outbox_rows() const {
    SQLite::Database db((dir_.path() / "state.db").string());
    return db.execAndGet("SELECT COUNT(*) FROM outbox").getInt();
  }

 private:
  inline static const std::vector<std::pair<std::string, std::string>> kEnv{{"TACTD_TEST_PUSH_SECRET", kSecret}};

  static std::filesystem::path write_config(const TempDir& dir) {
    dir.write("token", kToken + "\n");
    return dir.write("tactd.toml",
                     "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                         "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                         "\"\nstate = \"state.db\"\n[push]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n"
                         "hmac_secret_env = \"TACTD_TEST_PUSH_SECRET\"\nmax_body = 4096\nmax_skew = \"5m\"\n");
  }

  const TempDir& dir_;
  tactd::test::Daemon daemon_;
  int port_ = 0;
};

tactd::test::Reply post(int port, const std::string& body, const std::vector<std::string>& headers,
                        const std::string& path = "/v1/observations") {
  return tactd::test::http("POST", "http://127.0.0.1:" + std::to_string(port) + path, body, headers);
}

const std::string kBatch =
    R"({"type":"customer","id":"c-1","observed_at":"2026-11-20T09:00:00Z","fields":{"email":"m@example.com"}}
{"type":"order","id":"A-1","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-1","status":"cancelled"}}
)";

std::string now_seconds() {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

}  // namespace

TEST_CASE("a JSONL batch with a bearer token is answered 202 only after it is committed") {
  TempDir dir;
  PushDaemon daemon(dir);
  const tactd::test::Reply r = post(daemon.port(), kBatch, {"Authorization: Bearer " + kToken});
  CHECK(r.status == 202);
  CHECK_THAT(r.body, Contains("\"accepted\":2"));
  CHECK(daemon.outbox_rows() == 1);  // committed before the answer
  CHECK(daemon.stop() == 0);
  CHECK_THAT(slurp(dir.path() / "log"), !Contains(kToken) && !Contains(kSecret));  // secrets never logged
}

TEST_CASE("a signed request is accepted, a bad signature, a stale timestamp or no credentials are refused") {
  TempDir dir;
  PushDaemon daemon(dir);
  const std::string ts = now_seconds();
  const std::string good = tactd::PushEndpoint::signature(kSecret, ts, kBatch);
  CHECK(post(daemon.port(), kBatch, {"X-Tactd-Timestamp: " + ts, "X-Tactd-Signature: " + good}).status == 202);
  const tactd::test::Reply bad =
      post(daemon.port(), kBatch, {"X-Tactd-Timestamp: " + ts, "X-Tactd-Signature: sha256=00"});
  CHECK(bad.status == 401);
  CHECK_THAT(bad.body, Contains("the signature does not match"));
  const std::string old = std::to_string(std::stoll(ts) - 3600);
  const tactd::test::Reply stale =
      post(daemon.port(), kBatch,
           {"X-Tactd-Timestamp: " + old, "X-Tactd-Signature: " + tactd::PushEndpoint::signature(kSecret, old, kBatch)});
  CHECK(stale.status == 401);
  CHECK_THAT(stale.body, Contains("too far from now"));
  CHECK(post(daemon.port(), kBatch, {}).status == 401);
  CHECK(post(daemon.port(), kBatch, {"Authorization: Bearer wrong"}).status == 401);
  CHECK(daemon.outbox_rows() == 1);
}

TEST_CASE("a malformed line is answered 400 naming the line, and nothing of the batch is committed") {
  TempDir dir;
  PushDaemon daemon(dir);
  const tactd::test::Reply r =
      post(daemon.port(), kBatch + "{\"type\":\"order\",\"id\":\"X\"}\n", {"Authorization: Bearer " + kToken});
  CHECK(r.status == 400);
  const auto body = nlohmann::json::parse(r.body);
  CHECK(body["line"] == 3);
  CHECK(body["error"] == "field 'observed_at' is missing or not a string (expected an RFC 3339 date-time)");
  CHECK(daemon.outbox_rows() == 0);
}

TEST_CASE("a body over the limit gets 413, other paths 404, and malformed HTTP does not take the daemon down") {
  TempDir dir;
  PushDaemon daemon(dir);
  CHECK(post(daemon.port(), std::string(5000, 'x'), {"Authorization: Bearer " + kToken}).status == 413);
  CHECK(post(daemon.port(), kBatch, {"Authorization: Bearer " + kToken}, "/v2/elsewhere").status == 404);
  {  // raw garbage over TCP
    CURL* curl = curl_easy_init();
    const std::string url = "telnet://127.0.0.1:" + std::to_string(daemon.port());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
    REQUIRE(curl_easy_perform(curl) == CURLE_OK);
    size_t sent = 0;
    const std::string garbage = "NOT HTTP AT ALL\r\n\r\n";
    curl_easy_send(curl, garbage.data(), garbage.size(), &sent);
    curl_easy_cleanup(curl);
  }
  CHECK(post(daemon.port(), kBatch, {"Authorization: Bearer " + kToken}).status == 202);  // still serving
  CHECK(daemon.stop() == 0);
}

TEST_CASE("random bytes, bad UTF-8, numbers out of range and absurd depth are answered 400 with the reason") {
  TempDir dir;
  PushDaemon daemon(dir);
  const std::vector<std::string> auth{"Authorization: Bearer " + kToken};
  auto refused = [&](const std::string& body) {
    const tactd::test::Reply r = post(daemon.port(), body, auth);
    CHECK(r.status == 400);
    return nlohmann::json::parse(r.body)["error"].get<std::string>();
  };
  const std::string head = R"({"type":"order","id":"A-9","observed_at":"2026-11-20T10:00:00Z","fields":{"x":)";
  CHECK_THAT(refused(std::string("\x8b\x1f\x08\x00\xff\x13\x9c", 7)), Contains("malformed JSON at column"));
  CHECK_THAT(refused(head + "\"caf\xe9\"}}"), Contains("malformed JSON at column") && Contains("UTF-8"));
  CHECK_THAT(refused(head + "1e400}}"), Contains("JSON number out of range"));
  CHECK(refused(head + std::string(1500, '[') + std::string(1500, ']') + "}}") ==
        "JSON nested deeper than 64 arrays and objects");
  CHECK_THAT(refused(R"({"type":"order","id":18446744073709551615,"observed_at":"2026-11-20T10:00:00Z","fields":{}})"),
             Contains("not a whole number within the 64-bit range"));
  CHECK(post(daemon.port(), kBatch, auth).status == 202);  // still serving, and nothing of the above committed
  CHECK(daemon.outbox_rows() == 1);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("a signature with a timestamp so large it would wrap is refused as too far from now") {
  TempDir dir;
  PushDaemon daemon(dir);
  for (const std::string ts : {"9223372036854775807", "9223372036854", "-9223372036854775807"}) {
    const tactd::test::Reply r =
        post(daemon.port(), kBatch,
             {"X-Tactd-Timestamp: " + ts, "X-Tactd-Signature: " + tactd::PushEndpoint::signature(kSecret, ts, kBatch)});
    CHECK(r.status == 401);
    CHECK_THAT(r.body, Contains("too far from now"));
  }
  CHECK(daemon.outbox_rows() == 0);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("pushes while another process writes to the state every 20 ms are all answered 202") {
  // An operator's `tactd outbox drop`, a backup or a monitoring script: each
  // holds the write lock for 2 ms. The daemon's commits wait their turn
  // (the busy timeout) instead of answering 503.
  TempDir dir;
  PushDaemon daemon(dir);
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    SQLite::Database db((dir.path() / "state.db").string(), SQLite::OPEN_READWRITE);
    db.setBusyTimeout(5000);
    db.exec("CREATE TABLE IF NOT EXISTS operator_notes (at INTEGER)");
    while (!stop) {
      db.exec("BEGIN IMMEDIATE");
      db.exec("INSERT INTO operator_notes VALUES (1)");
      std::this_thread::sleep_for(std::chrono::milliseconds{2});
      db.exec("COMMIT");
      ++writes;
      std::this_thread::sleep_for(std::chrono::milliseconds{18});
    }
  });
  // At least 300 pushes, and on until the writer wrote 20 times: pushes are
  // fast enough now that 300 may all pass between two of its writes.
  constexpr int kPushes = 300, kWrites = 20;
  int accepted = 0, sent = 0;
  std::string refused;
  while (sent < kPushes || writes < kWrites) {
    const std::string n = std::to_string(++sent);
    const auto r = post(daemon.port(),
                        R"({"type":"order","id":"P-)" + n +
                            R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"customer":"c-1","status":"placed"}})",
                        {"Authorization: Bearer " + kToken});
    if (r.status == 202)
      ++accepted;
    else if (refused.empty())
      refused = std::to_string(r.status) + " " + r.body;
  }
  stop = true;
  writer.join();
  INFO(refused);
  CHECK(accepted == sent);
  CHECK(writes >= kWrites);  // the writer did write meanwhile
  SQLite::Database db((dir.path() / "state.db").string());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM entities WHERE type = 'order'").getInt() == sent);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("a push is answered while a big spool file is still being taken in, batch by batch") {
  TempDir dir;
  dir.write("token", kToken + "\n");
  std::filesystem::create_directories(dir.path() / "spool");
  const auto config = dir.write(
      "tactd.toml", "[tactd]\nrules = \"" + (tactd::test::source_dir() / "config/rules").string() +
                        "\"\ntemplates = \"" + (tactd::test::source_dir() / "templates").string() +
                        "\"\nstate = \"state.db\"\n[push]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n"
                        "[[source]]\nname = \"drops\"\ntype = \"spool\"\npath = \"spool\"\ninterval = \"1s\"\n");
  tactd::test::Daemon daemon(config, dir.path() / "log");
  const int port = tactd::test::logged_port(dir.path() / "log", "push: listening on 127.0.0.1:");
  REQUIRE(port != 0);
  constexpr int kLines = 12'000;  // a dozen batches
  std::string lines;
  for (int i = 0; i < kLines; ++i)
    lines += R"({"type":"order","id":"B-)" + std::to_string(i) +
             R"(","observed_at":"2026-11-20T10:00:00Z","fields":{"status":"placed"}})" + "\n";
  tactd::test::drop(dir.path() / "spool", "big.jsonl", lines);
  // The file's first batch is committed, with its progress.
  const auto progress = [&] {
    SQLite::Database db((dir.path() / "state.db").string());
    SQLite::Statement q(db, "SELECT COUNT(*) FROM source_cursors WHERE source = 'spool:drops'");
    return q.executeStep() && q.getColumn(0).getInt() == 1;
  };
  REQUIRE(tactd::test::eventually(progress));
  const tactd::test::Reply r = post(port, kBatch, {"Authorization: Bearer " + kToken});
  CHECK(r.status == 202);
  CHECK(std::filesystem::exists(dir.path() / "spool/big.jsonl"));  // answered before the file is through
  REQUIRE(tactd::test::eventually([&] { return std::filesystem::exists(dir.path() / "spool/done/big.jsonl"); }));
  SQLite::Database db((dir.path() / "state.db").string());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM entities WHERE type = 'order' AND id LIKE 'B-%'").getInt() == kLines);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("concurrent pushes, one of them malformed, are each answered for themselves and all valid ones kept") {
  TempDir dir;
  PushDaemon daemon(dir);
  constexpr int kThreads = 8;
  constexpr int kEach = 10;
  std::vector<std::vector<int>> statuses(kThreads);
  std::vector<std::thread> pushers;
  for (int t = 0; t < kThreads; ++t)
    pushers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string n = std::to_string(t * kEach + i);
        // Thread 0's fifth push lacks observed_at: 400 for it alone.
        const std::string stamp = t == 0 && i == 5 ? "" : R"("observed_at":"2026-11-20T10:00:00Z",)";
        // try_http(): Catch's assertions must not run on these threads.
        const auto r = tactd::test::try_http(
            "POST", "http://127.0.0.1:" + std::to_string(daemon.port()) + "/v1/observations",
            R"({"type":"order","id":"G-)" + n + R"(",)" + stamp + R"("fields":{"customer":"c-1","status":"placed"}})",
            {"Authorization: Bearer " + kToken});
        statuses[static_cast<std::size_t>(t)].push_back(r.status);  // 0 when no answer came
      }
    });
  for (auto& pusher : pushers) pusher.join();
  int accepted = 0;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kEach; ++i) {
      const int status = statuses[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)];
      if (t == 0 && i == 5)
        CHECK(status == 400);
      else
        accepted += status == 202;
    }
  CHECK(accepted == kThreads * kEach - 1);
  SQLite::Database db((dir.path() / "state.db").string());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM entities WHERE type = 'order' AND id LIKE 'G-%'").getInt() ==
        kThreads * kEach - 1);
  CHECK(daemon.stop() == 0);
}
