#include "cluster/cluster.h"

#include <catch2/catch.hpp>

#include <unistd.h>  // getpid

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "store/store.h"

using namespace tactd;
using namespace std::chrono_literals;

namespace {

Timestamp start() { return *parse_rfc3339("2026-11-20T10:00:00Z"); }

// Several replicas on one store, as each would see it, on one virtual clock.
struct Replicas {
  std::unique_ptr<Store> store = Store::open_temporary();
  VirtualClock clock{start()};
  std::vector<std::unique_ptr<Cluster>> members;

  Cluster& add(const std::string& id) {
    members.push_back(std::make_unique<Cluster>(*store, clock, id, 15s));
    return *members.back();
  }
  void advance(Duration d) { clock.advance_to(clock.now() + d); }
  // Every shard owned by exactly one of `alive`.
  static bool partitioned(const std::vector<Cluster*>& alive) {
    for (int shard = 0; shard < kShards; ++shard) {
      int owners = 0;
      for (const Cluster* c : alive) owners += c->owns(shard) ? 1 : 0;
      if (owners != 1) return false;
    }
    return true;
  }
};

}  // namespace

TEST_CASE("a replica's id names its host and process and ends in a random part") {
  const std::string a = make_replica_id();
  const std::string b = make_replica_id();
  CHECK(a != b);
  CHECK(a.find(":" + std::to_string(getpid()) + ":") != std::string::npos);
}

TEST_CASE("the only replica owns every shard after its first renewal, and leaving frees them") {
  Replicas r;
  Cluster& one = r.add("a");
  CHECK_FALSE(one.owns(0));
  const auto round = one.renew();
  CHECK(round.live == 1);
  CHECK(round.owned == kShards);
  CHECK(round.taken.size() == kShards);
  CHECK(one.owned().size() == kShards);
  CHECK(one.owns_key("c-1"));
  one.leave();
  CHECK_FALSE(one.owns(0));
  CHECK(r.store->renew_shards("a", r.clock.now() + 15s).empty());
}

TEST_CASE("ownership ends with the lease as this replica counts it when renewals fail") {
  Replicas r;
  Cluster& one = r.add("a");
  one.renew();
  r.advance(14s);
  CHECK(one.owns(5));
  r.advance(1s);
  CHECK_FALSE(one.owns(5));
  CHECK(one.owned().empty());
}

TEST_CASE("three replicas share the shards fairly, each shard owned by exactly one") {
  Replicas r;
  Cluster& a = r.add("a");
  Cluster& b = r.add("b");
  Cluster& c = r.add("c");
  // Renewing every lease/3 = 5 s; a few rounds settle it.
  for (int round = 0; round < 4; ++round) {
    for (Cluster* m : {&a, &b, &c}) m->renew();
    r.advance(5s);
  }
  for (Cluster* m : {&a, &b, &c}) m->renew();
  CHECK(Replicas::partitioned({&a, &b, &c}));
  for (Cluster* m : {&a, &b, &c}) {
    CHECK(m->live() == 3);
    CHECK(m->owned().size() >= 84);
    CHECK(m->owned().size() <= 86);
  }
}

TEST_CASE("a replica that stops renewing loses its shards to the others within a lease and a renewal") {
  Replicas r;
  Cluster& a = r.add("a");
  Cluster& b = r.add("b");
  Cluster& c = r.add("c");
  for (int round = 0; round < 5; ++round) {
    for (Cluster* m : {&a, &b, &c}) m->renew();
    r.advance(5s);
  }
  const auto lost = c.owned();
  REQUIRE_FALSE(lost.empty());
  // c dies (SIGKILL): it renews no more.
  const Timestamp died = r.clock.now();
  std::optional<Timestamp> covered;
  while (!covered && r.clock.now() < died + 60s) {
    r.advance(5s);
    for (Cluster* m : {&a, &b}) m->renew();
    if (Replicas::partitioned({&a, &b})) covered = r.clock.now();
  }
  REQUIRE(covered);
  CHECK(*covered - died <= 15s + 5s);
  CHECK(a.live() == 2);
  CHECK(a.owned().size() + b.owned().size() == kShards);
}

TEST_CASE("a new replica gets its share from the others, who give up their excess") {
  Replicas r;
  Cluster& a = r.add("a");
  a.renew();
  CHECK(a.owned().size() == kShards);
  Cluster& b = r.add("b");
  const auto first = b.renew();
  CHECK(first.live == 2);
  CHECK(first.owned == 0);  // all taken, none ended
  r.advance(5s);
  const auto gave = a.renew();
  CHECK(gave.released.size() == 128);
  CHECK(a.owned().size() == 128);
  b.renew();
  CHECK(b.owned().size() == 128);
  CHECK(Replicas::partitioned({&a, &b}));
}

TEST_CASE("a polled source is held by one replica at a time, renewed with the shards, and freed by leaving") {
  Replicas r;
  Cluster& a = r.add("a");
  Cluster& b = r.add("b");
  CHECK(a.hold_source("orders"));
  CHECK_FALSE(b.hold_source("orders"));
  for (int round = 0; round < 6; ++round) {
    r.advance(5s);
    a.renew();
    CHECK_FALSE(b.hold_source("orders"));
  }
  a.leave();
  CHECK(b.hold_source("orders"));
}

TEST_CASE("a replica starting on the host of a killed predecessor takes its shards at once") {
  Replicas r;
  // The predecessor: this host, a pid no process has, all shards, a heartbeat now.
  const std::string dead = make_replica_id().substr(0, make_replica_id().find(':')) + ":1073741000:0badcafe";
  Cluster& predecessor = r.add(dead);
  predecessor.renew();
  REQUIRE(predecessor.owned().size() == kShards);
  Cluster& next = r.add("next");
  // "next" is not of this host's form, so only the dead one is looked at.
  const auto round = next.renew();
  CHECK(round.live == 1);
  CHECK(round.owned == kShards);
}
