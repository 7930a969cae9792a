// Two replicas on one state (docs/scale-out.md): each applies only the
// customers of the shards it owns; the rest waits in the shared intake,
// committed with the source's cursor, until its owner applies it. On the
// virtual clock, two pipelines and two connections to one SQLite file.
#include <catch2/catch.hpp>

#include <memory>

#include "cluster/cluster.h"
#include "model/clock.h"
#include "pipeline/pipeline.h"
#include "scenario/scenario.h"
#include "support/temp_dir.h"

using namespace tactd;
using namespace tactd::test;
using namespace std::chrono_literals;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

Observation parsed(const std::string& line) {
  std::string error;
  auto observation = parse_observation(line, error);
  REQUIRE(observation);
  return *observation;
}

struct Replica {
  std::unique_ptr<Store> store;
  std::unique_ptr<Cluster> cluster;
  std::unique_ptr<Pipeline> pipeline;
};

struct TwoReplicas {
  TempDir dir;
  std::optional<Snapshot> snapshot;
  VirtualClock clock{at("2026-11-20T17:30:00+01:00")};
  Replica a;
  Replica b;

  TwoReplicas() {
    Diagnostics errors;
    snapshot = load_snapshot(source_dir() / "config/tactd.toml", errors);
    REQUIRE(snapshot);
    for (auto [replica, id] : {std::pair{&a, "a"}, std::pair{&b, "b"}}) {
      replica->store = Store::open(dir.path() / "state.db");
      replica->cluster = std::make_unique<Cluster>(*replica->store, clock, id, 15s);
      replica->pipeline = std::make_unique<Pipeline>(*snapshot, *replica->store, clock);
      replica->pipeline->set_cluster(replica->cluster.get());
    }
    // a takes everything, b none; five seconds later a gives half up and b takes it.
    a.cluster->renew();
    b.cluster->renew();
    clock.advance_to(clock.now() + 5s);
    a.cluster->renew();
    b.cluster->renew();
    REQUIRE(a.cluster->owned().size() == 128);
    REQUIRE(b.cluster->owned().size() == 128);
  }

  // The replica owning `customer`'s shard, and the other one.
  std::pair<Replica*, Replica*> owner_of(const char* customer) {
    return a.cluster->owns_key(customer) ? std::pair{&a, &b} : std::pair{&b, &a};
  }
};

}  // namespace

TEST_CASE(
    "what a replica receives for another replica's customer waits in the shared intake and its owner applies it") {
  TwoReplicas replicas;
  auto [owner, other] = replicas.owner_of("c-42");
  const std::vector<Observation> batch{
      parsed(kAnna), parsed(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed")),
      parsed(order("A-1", "c-42", "2026-11-20T17:20:00+01:00", "cancelled", {{"cancel_reason", "no courier"}}))};
  const SourceCursor cursor{"shop", "page-2"};
  const Outcome received = other->pipeline->apply(batch, &cursor);
  CHECK(received.forwarded == 3);
  CHECK(received.notifications.empty());
  CHECK(other->store->cursor("shop") == std::optional<std::string>("page-2"));
  CHECK(other->store->intake_size() == 3);
  CHECK_FALSE(other->store->entity(EntityRef{EntityType::kOrder, "A-1"}));

  // The other replica finds nothing of its own there.
  CHECK(other->pipeline->apply_intake().from_intake == 0);
  const Outcome applied = owner->pipeline->apply_intake();
  CHECK(applied.from_intake == 3);
  REQUIRE(applied.notifications.size() == 1);
  CHECK(applied.notifications[0].customer == "c-42");
  CHECK(owner->store->intake_size() == 0);
}

TEST_CASE("a replica applies its own customers' observations at once") {
  TwoReplicas replicas;
  auto [owner, other] = replicas.owner_of("c-42");
  const Outcome own = owner->pipeline->apply(std::vector<Observation>{
      parsed(kAnna), parsed(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed")),
      parsed(order("A-1", "c-42", "2026-11-20T17:20:00+01:00", "cancelled", {{"cancel_reason", "no courier"}}))});
  CHECK(own.forwarded == 0);
  CHECK(own.notifications.size() == 1);
  CHECK(owner->store->intake_size() == 0);
}

TEST_CASE("an observation's shard follows its customer: a shipment its order's, an unknown order's own reference") {
  TwoReplicas replicas;
  Pipeline& p = *replicas.a.pipeline;
  CHECK(p.shard_key(EntityRef{EntityType::kCustomer, "c-42"}, nlohmann::json::object()) == "c-42");
  CHECK(p.shard_key(EntityRef{EntityType::kOrder, "A-1"}, {{"customer", "c-42"}}) == "c-42");
  // A shipment of an order not seen yet: the order's reference.
  CHECK(p.shard_key(EntityRef{EntityType::kShipment, "S-1"}, {{"order", "A-1"}}) == "order/A-1");
  CHECK(p.shard_key(EntityRef{EntityType::kPayment, "P-1"}, nlohmann::json::object()) == "payment/P-1");
  // Once the order is known, its customer; and a partial update of a known
  // order without `customer` keeps the stored one.
  replicas.b.pipeline->set_cluster(nullptr);  // applies everything, as a lone replica
  replicas.b.pipeline->apply(parsed(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed")));
  CHECK(p.shard_key(EntityRef{EntityType::kShipment, "S-1"}, {{"order", "A-1"}}) == "c-42");
  CHECK(p.shard_key(EntityRef{EntityType::kOrder, "A-1"}, {{"status", "paid"}}) == "c-42");
}

TEST_CASE("an owner applies what it receives for its shard after what waits for it in the shared intake") {
  TwoReplicas replicas;
  auto [owner, other] = replicas.owner_of("c-42");
  // The order is placed through the other replica: it waits in the shared
  // intake. Its cancellation, stamped the same second (a source with whole
  // seconds), then reaches the owner directly.
  CHECK(other->pipeline
            ->apply(std::vector<Observation>{parsed(kAnna),
                                             parsed(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"))})
            .forwarded == 2);
  const Outcome received = owner->pipeline->apply(std::vector<Observation>{
      parsed(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "cancelled", {{"cancel_reason", "no courier"}}))});
  // Applied now, it would be undone by the older placement applied after it.
  CHECK(received.forwarded == 1);
  CHECK(received.notifications.empty());
  CHECK(owner->store->intake_shards() == std::vector<int>{shard_of("c-42")});

  const Outcome applied = owner->pipeline->apply_intake();
  CHECK(applied.from_intake == 3);
  REQUIRE(applied.notifications.size() == 1);
  CHECK(applied.notifications[0].kind == Kind::kApology);
  const auto stored = owner->store->entity(EntityRef{EntityType::kOrder, "A-1"});
  REQUIRE(stored);
  CHECK(stored->fields.at("status") == "cancelled");
  CHECK(owner->store->intake_shards().empty());
  // With its shard's intake empty, the owner applies at once again.
  CHECK(owner->pipeline->apply(parsed(kAnna)).forwarded == 0);
}
