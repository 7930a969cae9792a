// Benchmark: observations per second through the whole pipeline (diff,
// rules, policy, render, outbox commit) at a given number of tracked
// entities, beside the ceiling of the storage engine: plain batched SQLite
// upserts of the same rows into the same table, in the same run.
//
//   intake_bench prepare DIR ENTITIES OBSERVATIONS
//       DIR/tactd.toml (shipped rules and templates, a spool source on
//       DIR/spool, a push endpoint), DIR/state.db with ENTITIES tracked
//       entities (a tenth customers, six tenths orders, three tenths
//       shipments), and DIR/stream.jsonl: OBSERVATIONS observations of a
//       realistic mix -- four in ten re-observe an entity unchanged, four
//       change a field no rule fires on, one cancels an order (an apology to
//       the customer), one is a new order.
//   intake_bench pipeline DIR      the stream through Pipeline, in batches
//       of 1,000 (what a spool file or a push request commits), on a copy
//       of the state: the path of `simulate` and of every source.
//   intake_bench pipeline DIR normal    the same with [tactd] sync = "normal"
//       (commits not synced through power loss), printed as "pipeline~".
//   intake_bench ceiling DIR       the same rows upserted with one prepared
//       statement, 1,000 per transaction, on a copy of the state.
//
// .ci/bench runs these at 10 thousand, 100 thousand and 1 million entities
// and the real daemon on the same directories (intake_daemon.py).
#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "model/clock.h"
#include "model/time.h"
#include "pipeline/pipeline.h"
#include "pipeline/snapshot.h"
#include "store/store.h"

using namespace tactd;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kBatch = 1'000;
// The stream starts on a Friday at 11:00 in Amsterdam: no quiet hours.
const Timestamp kStart = *parse_rfc3339("2026-11-20T10:00:00Z");

struct Population {
  long customers, orders, shipments;
  explicit Population(long entities)
      : customers(entities / 10), orders(entities * 6 / 10), shipments(entities - entities / 10 - entities * 6 / 10) {}
};

nlohmann::json customer_fields(long k) {
  return {{"name", "Customer " + std::to_string(k)},
          {"email", "c" + std::to_string(k) + "@example.nl"},
          {"locale", k % 2 ? "nl" : "en"}};
}
nlohmann::json order_fields(long k, const Population& p, const std::string& status) {
  return {{"customer", "c-" + std::to_string(k % p.customers)},
          {"status", status},
          {"total", 10 + k % 90},
          {"payment", "pending"},
          {"promised_by", "2026-11-25T18:00:00Z"}};
}
nlohmann::json shipment_fields(long k, const std::string& status) {
  return {
      {"order", "o-" + std::to_string(k)}, {"status", status}, {"eta", "2026-11-24T12:00:00Z"}, {"carrier", "PostNL"}};
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

long max_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

int prepare(const fs::path& dir, long entities, long observations) {
  fs::create_directories(dir / "spool");
  const fs::path source = TACTD_SOURCE_DIR;
  std::ofstream(dir / "tactd.toml") << "[tactd]\nrules = \"" << (source / "config/rules").string()
                                    << "\"\ntemplates = \"" << (source / "templates").string()
                                    << "\"\nstate = \"state.db\"\nmerchant = \"Bakkerij Bol\"\n"
                                       "[locale]\ntime_zone = \"Europe/Amsterdam\"\nsupported = [\"en\", \"nl\"]\n"
                                       "[[source]]\nname = \"spool\"\ntype = \"spool\"\npath = \"spool\"\n"
                                       "interval = \"1s\"\n"
                                       "[push]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n"
                                       "[log]\nlevel = \"warn\"\n";
  std::ofstream(dir / "token") << "bench-token\n";
  const Population p(entities);
  fs::remove(dir / "state.db");
  {
    auto store = Store::open(dir / "state.db");
    const Timestamp seen = kStart - std::chrono::hours{24};
    long done = 0;
    std::unique_ptr<Store::Transaction> tx;
    auto put = [&](EntityType type, const std::string& id, nlohmann::json fields) {
      if (done++ % 10'000 == 0) {
        if (tx) tx->commit();
        tx.reset();
        tx = store->begin();
      }
      tx->put_entity(Entity{EntityRef{type, id}, seen, std::move(fields), std::nullopt});
    };
    for (long k = 0; k < p.customers; ++k) put(EntityType::kCustomer, "c-" + std::to_string(k), customer_fields(k));
    for (long k = 0; k < p.orders; ++k)
      put(EntityType::kOrder, "o-" + std::to_string(k), order_fields(k, p, "shipped"));
    for (long k = 0; k < p.shipments; ++k)
      put(EntityType::kShipment, "s-" + std::to_string(k), shipment_fields(k, "in_transit"));
    if (tx) tx->commit();
  }
  // Re-observations pick from the first half of each kind, changes walk the
  // second half in order: an entity changes at most once, and what is
  // re-observed is exactly what is stored.
  std::mt19937_64 random(42);
  auto first_half = [&](long n) { return static_cast<long>(random() % std::max(1L, n / 2)); };
  long next_shipment = p.shipments / 2, next_order = p.orders / 2;
  std::ofstream stream(dir / "stream.jsonl");
  for (long i = 0; i < observations; ++i) {
    nlohmann::json o;
    o["observed_at"] = format_rfc3339(kStart + std::chrono::milliseconds{i});
    switch (i % 10) {
      case 0:
      case 1: {
        const long k = first_half(p.orders);
        o["type"] = "order", o["id"] = "o-" + std::to_string(k), o["fields"] = order_fields(k, p, "shipped");
        break;
      }
      case 2: {
        const long k = first_half(p.shipments);
        o["type"] = "shipment", o["id"] = "s-" + std::to_string(k), o["fields"] = shipment_fields(k, "in_transit");
        break;
      }
      case 3: {
        const long k = first_half(p.customers);
        o["type"] = "customer", o["id"] = "c-" + std::to_string(k), o["fields"] = customer_fields(k);
        break;
      }
      case 4:
      case 5: {  // out for delivery: no rule fires
        const long k = next_shipment++ % p.shipments;
        o["type"] = "shipment", o["id"] = "s-" + std::to_string(k),
        o["fields"] = shipment_fields(k, "out_for_delivery");
        break;
      }
      case 6:
      case 7: {  // paid: no rule fires
        const long k = next_order++ % p.orders;
        auto fields = order_fields(k, p, "shipped");
        fields["payment"] = "paid";
        o["type"] = "order", o["id"] = "o-" + std::to_string(k), o["fields"] = fields;
        break;
      }
      case 8: {  // cancelled: the apology
        const long k = next_order++ % p.orders;
        o["type"] = "order", o["id"] = "o-" + std::to_string(k), o["fields"] = order_fields(k, p, "cancelled");
        break;
      }
      default: {  // a new order of a known customer
        auto fields = order_fields(i, p, "placed");
        fields["promised_by"] = "2026-11-27T18:00:00Z";
        o["type"] = "order", o["id"] = "n-" + std::to_string(i), o["fields"] = fields;
      }
    }
    stream << o.dump() << '\n';
  }
  std::printf("prepared %s: %ld entities, %ld observations\n", dir.c_str(), entities, observations);
  return 0;
}

std::vector<Observation> read_stream(const fs::path& dir) {
  std::vector<Observation> result;
  std::ifstream in(dir / "stream.jsonl");
  std::string line, error;
  while (std::getline(in, line)) {
    auto o = parse_observation(line, error);
    if (!o) throw std::runtime_error("stream.jsonl: " + error);
    result.push_back(std::move(*o));
  }
  return result;
}

fs::path copy_state(const fs::path& dir, const char* name) {
  const fs::path copy = dir / name;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(copy.string() + suffix);
  fs::copy_file(dir / "state.db", copy);
  return copy;
}

void report(const char* what, std::size_t n, double seconds, double cpu) {
  std::printf("%-9s %9zu observations %7.2f s %9.0f /s %7.1f us CPU each, max RSS %ld MB\n", what, n, seconds,
              n / seconds, cpu * 1e6 / n, max_rss_mb());
}

int pipeline(const fs::path& dir, Sync sync) {
  Diagnostics errors;
  auto snapshot = load_snapshot(dir / "tactd.toml", errors);
  if (!snapshot) {
    for (const auto& e : errors) std::cerr << e.str() << "\n";
    return 1;
  }
  const auto stream = read_stream(dir);
  auto store = Store::open(copy_state(dir, "pipeline.db"), sync);
  VirtualClock clock{kStart};
  Pipeline pipeline(*snapshot, *store, clock);
  std::size_t notifications = 0;
  const double cpu = cpu_seconds();
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < stream.size(); i += kBatch) {
    const std::span<const Observation> batch(stream.data() + i, std::min(kBatch, stream.size() - i));
    clock.advance_to(batch.back().observed_at);
    notifications += pipeline.apply(batch).notifications.size();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report(sync == Sync::kFull ? "pipeline" : "pipeline~", stream.size(), seconds, cpu_seconds() - cpu);
  std::printf("          %lld statements prepared again\n", store->statements_prepared_again());
  std::printf("          %zu notifications enqueued\n", notifications);
  return 0;
}

int ceiling(const fs::path& dir) {
  const auto stream = read_stream(dir);
  struct Row {
    std::string type, id, fields, parent_type, parent_id;
    long long observed_at;
  };
  std::vector<Row> rows;
  for (const Observation& o : stream) {
    const Entity e{o.ref, o.observed_at, o.fields, std::nullopt};
    const auto parent = e.parent();
    rows.push_back({std::string(to_string(o.ref.type)), o.ref.id, o.fields.dump(),
                    parent ? std::string(to_string(parent->type)) : "", parent ? parent->id : "",
                    std::chrono::duration_cast<std::chrono::milliseconds>(o.observed_at.time_since_epoch()).count()});
  }
  SQLite::Database db(copy_state(dir, "ceiling.db"), SQLite::OPEN_READWRITE);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("PRAGMA synchronous=NORMAL");  // the cheaper of the store's two
  // Plain upserts: without the triggers that keep the store's child counts.
  for (const char* trigger : {"added", "moved", "removed"})
    db.exec(std::string("DROP TRIGGER IF EXISTS child_counts_") + trigger);
  SQLite::Statement upsert(db,
                           "INSERT INTO entities (type, id, fields, observed_at, parent_type, parent_id) "
                           "VALUES (?, ?, ?, ?, NULLIF(?, ''), NULLIF(?, '')) ON CONFLICT (type, id) DO UPDATE SET "
                           "fields = excluded.fields, observed_at = excluded.observed_at, "
                           "parent_type = excluded.parent_type, parent_id = excluded.parent_id");
  const double cpu = cpu_seconds();
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < rows.size(); i += kBatch) {
    SQLite::Transaction tx(db);
    for (std::size_t j = i; j < std::min(rows.size(), i + kBatch); ++j) {
      const Row& r = rows[j];
      upsert.bind(1, r.type);
      upsert.bind(2, r.id);
      upsert.bind(3, r.fields);
      upsert.bind(4, static_cast<int64_t>(r.observed_at));
      upsert.bind(5, r.parent_type);
      upsert.bind(6, r.parent_id);
      upsert.exec();
      upsert.reset();
    }
    tx.commit();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report("ceiling", rows.size(), seconds, cpu_seconds() - cpu);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::err);
  const std::string verb = argc > 2 ? argv[1] : "";
  try {
    if (verb == "prepare" && argc == 5) return prepare(argv[2], std::stol(argv[3]), std::stol(argv[4]));
    if (verb == "pipeline" && argc == 3) return pipeline(argv[2], Sync::kFull);
    if (verb == "pipeline" && argc == 4 && std::string(argv[3]) == "normal") return pipeline(argv[2], Sync::kNormal);
    if (verb == "ceiling" && argc == 3) return ceiling(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "intake_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: intake_bench prepare DIR ENTITIES OBSERVATIONS | pipeline DIR [normal] | ceiling DIR\n");
  return 2;
}
