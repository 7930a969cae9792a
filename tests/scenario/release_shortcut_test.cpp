// The release check's shortcut: a notification the pipeline rendered itself
// goes out as rendered when nothing it reads has changed since, and is
// checked and rendered again in full otherwise. Told apart here by handing
// the check an entry whose body differs from what the template makes: the
// shortcut returns it as it is, the full check renders it again.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "model/clock.h"
#include "pipeline/pipeline.h"
#include "scenario/scenario.h"
#include "support/temp_dir.h"

using namespace tactd;
using namespace tactd::test;
using Catch::Contains;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

constexpr const char* kAsStored = "as stored";

struct Bench : PipelineStory {
  Bench() : PipelineStory("2026-11-20T17:30:00+01:00") {}

  // Anna's order A-1 is cancelled: its apology is pending.
  OutboxEntry apology() {
    apply(kAnna);
    apply(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"));
    const Outcome cancelled = apply(
        order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}));
    REQUIRE(cancelled.notifications.size() == 1);
    return store->outbox(OutboxStatus::kPending).front();
  }

  // The body the release check returns for `entry` handed over with kAsStored.
  std::string released(OutboxEntry entry) {
    entry.notification.body = kAsStored;
    Outcome outcome;
    auto transaction = store->begin();
    const auto message = pipeline.release(*transaction, entry, outcome);
    transaction->commit();
    REQUIRE(message);
    return message->body;
  }
};

}  // namespace

TEST_CASE("a notification released with nothing changed since it was rendered goes out as rendered") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  CHECK(bench.released(entry) == kAsStored);
}

TEST_CASE("the shortcut is taken once: a second release of the same entry is checked in full") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  CHECK(bench.released(entry) == kAsStored);
  CHECK_THAT(bench.released(entry), Contains("A-1"));
}

TEST_CASE("a change of the customer since rendering means a full check with the new data") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  bench.apply(obs("customer", "c-42", "2026-11-20T17:40:00+01:00", {{"name", "Annabel de Vries"}}));
  CHECK_THAT(bench.released(entry), Contains("Annabel"));
}

TEST_CASE("an opt-out since rendering is seen: the notification is overtaken") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  bench.apply(obs("customer", "c-42", "2026-11-20T17:40:00+01:00", {{"opt_out", true}}));
  Outcome outcome;
  auto transaction = bench.store->begin();
  CHECK_FALSE(bench.pipeline.release(*transaction, entry, outcome));
  transaction->commit();
  REQUIRE(outcome.held_back.size() == 1);
  CHECK(outcome.held_back[0].code == "overtaken");
}

TEST_CASE("a change of the order itself, or a shipment naming only its order, means a full check") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  SECTION("the order") {
    bench.apply(
        order("A-1", "c-42", "2026-11-20T17:40:00+01:00", "cancelled", {{"cancel_reason", "the oven broke down"}}));
    CHECK_THAT(bench.released(entry), Contains("oven"));
  }
  SECTION("a shipment of the order, which names no customer") {
    bench.apply(obs("shipment", "S-1", "2026-11-20T17:40:00+01:00", {{"order", "A-1"}, {"status", "returned"}}));
    CHECK(bench.released(entry) != kAsStored);
  }
}

TEST_CASE("a shipment seen again unchanged becomes its order's latest: a full check") {
  // Only its time moves (the store's touch), yet the order now sees it
  // instead of the other shipment.
  Bench bench;
  bench.apply(obs("shipment", "S-1", "2026-11-20T16:50:00+01:00", {{"order", "A-1"}, {"status", "packed"}}));
  bench.apply(obs("shipment", "S-2", "2026-11-20T16:55:00+01:00", {{"order", "A-1"}, {"status", "packed"}}));
  const OutboxEntry entry = bench.apology();
  bench.apply(obs("shipment", "S-1", "2026-11-20T17:40:00+01:00", {{"order", "A-1"}, {"status", "packed"}}));
  CHECK(bench.released(entry) != kAsStored);
}

TEST_CASE("a change of another customer's data leaves the shortcut open") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  bench.apply(kBen);
  bench.apply(order("B-1", "c-7", "2026-11-20T17:40:00+01:00", "placed"));
  CHECK(bench.released(entry) == kAsStored);
}

TEST_CASE("an entity moved to another customer means a full check for everyone") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  bench.apply(kBen);
  bench.apply(order("B-1", "c-7", "2026-11-20T17:40:00+01:00", "placed"));
  bench.apply(order("B-1", "c-42", "2026-11-20T17:41:00+01:00", "placed"));
  CHECK(bench.released(entry) != kAsStored);
}

TEST_CASE("a commit by another connection since rendering means a full check") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  {
    auto other = bench.store.open_again();
    Entity someone{EntityRef{EntityType::kCustomer, "c-99"}, at("2026-11-20T17:56:00+01:00"), {{"name", "Cor"}}, {}};
    other->put_entity(someone);  // an operator's script, say: not seen by the pipeline
  }
  CHECK(bench.released(entry) != kAsStored);
}

TEST_CASE("a reload that changed what messages read means a full check, one of channels only does not") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  SECTION("the same rules, templates and message settings (a channel's rate, say)") {
    Snapshot reloaded = bench.snapshot;
    auto config = std::make_shared<Config>(*reloaded.config);
    config->channels.clear();
    reloaded.config = config;
    bench.pipeline.set_snapshot(reloaded);
    CHECK(bench.released(entry) == kAsStored);
  }
  SECTION("another default merchant") {
    Snapshot reloaded = bench.snapshot;
    auto config = std::make_shared<Config>(*reloaded.config);
    config->merchant = "Another Shop";
    reloaded.config = config;
    bench.pipeline.set_snapshot(reloaded);
    CHECK(bench.released(entry) != kAsStored);
  }
  SECTION("rules and templates loaded again from other files") {
    TempDir other;
    std::filesystem::copy(source_dir() / "config", other.path() / "config", std::filesystem::copy_options::recursive);
    std::filesystem::copy(source_dir() / "templates", other.path() / "templates",
                          std::filesystem::copy_options::recursive);
    {
      std::ofstream out(other.path() / "templates/nl/order_cancelled.sms.mustache", std::ios::app);
      out << " Sorry!";
    }
    Diagnostics errors;
    auto reloaded = load_snapshot(other.path() / "config/tactd.toml", errors);
    REQUIRE(reloaded);
    bench.pipeline.set_snapshot(*reloaded);
    CHECK_THAT(bench.released(entry), Contains("Sorry!"));
  }
}

TEST_CASE("an entry this pipeline did not render, as after a restart, is checked in full") {
  Bench bench;
  const OutboxEntry entry = bench.apology();
  Pipeline restarted(bench.snapshot, *bench.store, bench.clock);
  OutboxEntry tampered = entry;
  tampered.notification.body = kAsStored;
  Outcome outcome;
  auto transaction = bench.store->begin();
  const auto message = restarted.release(*transaction, tampered, outcome);
  transaction->commit();
  REQUIRE(message);
  CHECK(message->body != kAsStored);
}

TEST_CASE("a rule whose condition reads what was sent is always checked in full") {
  // first-order-thanks: `when` reads order.sent and shipment.sent, which
  // its own enqueue does not change but another's may.
  Bench bench;
  bench.apply(kAnna);
  bench.apply(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"));
  const Outcome delivered = bench.apply(order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "delivered"));
  REQUIRE(delivered.notifications.size() == 1);
  REQUIRE(delivered.notifications[0].rule == "first-order-thanks");
  const OutboxEntry entry = bench.store->outbox(OutboxStatus::kPending).front();
  CHECK(bench.released(entry) != kAsStored);
}
