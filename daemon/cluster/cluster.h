// This replica's part of the work when several tactd processes share one
// PostgreSQL database (docs/scale-out.md).
//
// A replica owns some of the kShards virtual shards (store/cluster_store.h)
// through leases it renews every lease/3: each renewal gives a heartbeat,
// counts the live replicas, renews the leases it holds, and then gives up
// the shards beyond its fair share (ceil(kShards / live replicas)), so
// that a new replica finds some free, or takes free and ended ones up to
// that share. A replica that stops renewing loses its shards to the others
// once its leases end: within one lease and one renewal interval.
//
// On SQLite the one process is the only live replica and takes every shard
// in its first renewal, through the same calls.
#pragma once

#include <algorithm>
#include <bitset>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "model/clock.h"
#include "store/cluster_store.h"

namespace tactd {

// A replica's id: "<host>:<pid>:<8 random hex digits>", unique even when a
// restarted process gets the pid of a dead one.
std::string make_replica_id();

class Cluster {
 public:
  // `store` and `clock` must outlive the Cluster. Call from one thread (the
  // loop). `lease` must be positive.
  Cluster(ClusterStore& store, const Clock& clock, std::string replica, Duration lease);

  const std::string& replica() const { return replica_; }
  Duration lease() const { return lease_; }
  // How often renew() should run: a third of the lease, so that two
  // renewals may fail before a lease ends.
  Duration renew_every() const { return lease_ / 3; }

  // What one renewal changed.
  struct Round {
    std::vector<int> taken;     // shards newly owned
    std::vector<int> released;  // given up to make room for others
    std::vector<int> lost;      // owned before, taken by another (our lease had ended)
    std::size_t live = 0;       // live replicas, this one included
    std::size_t owned = 0;      // shards owned after it
  };
  // One renewal, at the clock's current time. Throws StoreError; then the
  // shards stay owned until their leases end as measured here (owns()).
  Round renew();

  // Whether this replica owns `shard` now: the last renewal held it and its
  // lease, counted from before that renewal started, has not ended.
  bool owns(int shard) const;
  bool owns_key(std::string_view key) const { return owns(shard_of(key)); }
  // The shards owned now, ascending.
  std::vector<int> owned() const;
  // Live replicas as the last renewal counted them (at least 1).
  std::size_t live() const { return live_; }

  // Takes or renews the lease of polled source `source` (a compare-and-set);
  // true while this replica holds it. A source held is renewed by each
  // renew() after, so that its lease does not end between two polls.
  // Throws StoreError.
  bool hold_source(const std::string& source);
  void release_source(const std::string& source);

  // A clean stop: gives up every shard and source lease at once, so that
  // the others need not wait for them to end. Throws StoreError.
  void leave();

 private:
  ClusterStore& store_;
  const Clock& clock_;
  std::string replica_;
  Duration lease_;
  std::bitset<kShards> owned_;
  Timestamp owned_until_{};
  std::size_t live_ = 1;
  std::vector<std::string> sources_;  // held, renewed with the shards
};

}  // namespace tactd
