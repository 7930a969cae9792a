// The cluster role of the store: what several tactd replicas on one
// database share to split the work (docs/scale-out.md).
//
// Work is split by customer into kShards virtual shards. Each shard is
// owned by one replica through a lease in the database that its owner
// renews; a lease that ended is free for anyone to take. Each polled
// source likewise has one lease, so that only its holder reads it. What a
// replica receives for a shard it does not own goes to the shared intake,
// where the owner finds it.
//
// Every take is a compare-and-set in the database: of two replicas taking
// one free lease at once, exactly one gets it. The store only keeps the
// leases; who takes how many is the cluster component's business
// (cluster/cluster.h). On SQLite the one process is the only replica and
// takes every shard through the same calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/entity.h"
#include "model/time.h"

namespace tactd {

// The number of virtual shards. Fixed: a customer's shard must not move
// when replicas come and go, only the shard's owner does.
inline constexpr int kShards = 256;

// The shard of a key (a customer id): the 32-bit FNV-1a hash of its bytes
// modulo kShards. Stable across processes, builds and machines (never
// std::hash, which is neither).
int shard_of(std::string_view key);

// One shard's lease as stored: `owner` empty when released or never taken.
struct ShardLease {
  int shard = 0;
  std::string owner;
  Timestamp until{};
};

// An observation waiting in the shared intake for the owner of its shard.
struct IntakeEntry {
  long long id = 0;
  int shard = 0;
  Observation observation;
  Timestamp received_at{};
};

// Implementations throw StoreError (store_error.h). Through a
// Store::Transaction, each call runs within it; on the Store, in a
// transaction of its own (refused, std::logic_error, while a Transaction is
// open: store.h).
class ClusterStore {
 public:
  // Records that `replica` is alive at `now`.
  virtual void heartbeat(const std::string& replica, Timestamp now) = 0;
  // How many replicas gave a heartbeat at or after `since` (this one included
  // once it gave one). Replicas silent before `forget_before` are removed.
  virtual std::size_t live_replicas(Timestamp since, Timestamp forget_before) = 0;
  // Removes `replica` from the live ones (a clean stop), with its leases.
  virtual void leave(const std::string& replica) = 0;

  // Every shard lease stored, by shard (a shard never taken has no row).
  virtual std::vector<ShardLease> shard_leases() const = 0;
  // Takes `shard` for `replica` until `until`, as a compare-and-set: when it
  // is free (never taken, released, or its lease ended at or before `now`)
  // or already `replica`'s. True when `replica` holds it now.
  virtual bool take_shard(int shard, const std::string& replica, Timestamp now, Timestamp until) = 0;
  // The same for several shards in one statement; returns those `replica`
  // holds now, ascending.
  virtual std::vector<int> take_shards(std::span<const int> shards, const std::string& replica, Timestamp now,
                                       Timestamp until) = 0;
  // Extends every lease `replica` still holds to `until`; returns those
  // shards, ascending. A lease that ended is renewed only if nobody took it.
  virtual std::vector<int> renew_shards(const std::string& replica, Timestamp until) = 0;
  // Gives up `replica`'s leases of `shards` (empty: of all its shards).
  virtual void release_shards(const std::string& replica, std::span<const int> shards) = 0;

  // The same compare-and-set for the lease of the polled source `source`.
  virtual bool take_source(const std::string& source, const std::string& replica, Timestamp now, Timestamp until) = 0;
  // Gives up `replica`'s source leases (empty `source`: all of them).
  virtual void release_source(const std::string& replica, const std::string& source) = 0;

  // Puts `observation` in the shared intake for the owner of `shard`. Call
  // in the transaction that commits the source's cursor.
  virtual void put_intake(int shard, const Observation& observation, Timestamp received_at) = 0;
  // Up to `limit` intake entries of `shards`, oldest (lowest id) first,
  // locked until the open transaction ends (PostgreSQL: FOR UPDATE SKIP
  // LOCKED, so two consumers never get the same entry nor wait for each
  // other). Delete them with delete_intake() in the transaction that
  // applies them. An entry whose observation cannot be read is deleted
  // and told in `unreadable` (its id and why), so that it cannot block
  // its shard.
  virtual std::vector<IntakeEntry> claim_intake(std::span<const int> shards, std::size_t limit,
                                                std::vector<std::string>* unreadable = nullptr) = 0;
  virtual void delete_intake(std::span<const long long> ids) = 0;
  // How many entries wait in the shared intake.
  virtual std::size_t intake_size() const = 0;
  // The shards that have entries waiting in the shared intake, ascending:
  // an owner applies what it receives for them only after those, so that
  // it applies a shard's observations in the order they were received.
  virtual std::vector<int> intake_shards() const = 0;

 protected:
  ~ClusterStore() = default;
};

}  // namespace tactd
