#include "cluster/cluster.h"

#include <signal.h>  // kill
#include <unistd.h>  // gethostname, getpid

#include <cerrno>
#include <set>

#include <algorithm>
#include <array>
#include <cstdio>
#include <random>
#include <stdexcept>

namespace tactd {

std::string make_replica_id() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  std::random_device random;
  std::array<char, 9> suffix{};
  std::snprintf(suffix.data(), suffix.size(), "%08x", static_cast<unsigned>(random()));
  return std::string(host.data()) + ":" + std::to_string(getpid()) + ":" + suffix.data();
}

namespace {

std::string host_name() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  return host.data();
}

// A replica of this host ("<host>:<pid>:<random>") whose process is gone:
// a predecessor killed before it could leave. Its leases need not be
// waited for, nor its heartbeat counted.
bool dead_neighbour(const std::string& replica, const std::string& host) {
  if (replica.rfind(host + ":", 0) != 0) return false;
  const std::string rest = replica.substr(host.size() + 1);
  const auto colon = rest.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  long pid = 0;
  for (std::size_t i = 0; i < colon; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return false;
    pid = pid * 10 + (rest[i] - '0');
    if (pid > 1 << 30) return false;
  }
  if (pid == getpid()) return false;
  return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

Cluster::Cluster(ClusterStore& store, const Clock& clock, std::string replica, Duration lease)
    : store_(store), clock_(clock), replica_(std::move(replica)), lease_(lease) {
  if (lease_ <= Duration::zero()) throw std::invalid_argument("a cluster lease must be positive");
}

Cluster::Round Cluster::renew() {
  // Ownership is counted from before the first statement: whatever the
  // database took meanwhile, our leases there end no earlier than this.
  const Timestamp now = clock_.now();
  const Timestamp until = now + lease_;
  Round round;
  if (owned_until_ == Timestamp{}) {
    // The first renewal: a predecessor on this host that was killed (on
    // SQLite, always the previous process) leaves now instead of after its
    // leases end.
    const std::string host = host_name();
    std::set<std::string> gone;
    for (const ShardLease& lease : store_.shard_leases())
      if (!lease.owner.empty() && lease.owner != replica_ && dead_neighbour(lease.owner, host))
        gone.insert(lease.owner);
    for (const std::string& replica : gone) store_.leave(replica);
  }
  store_.heartbeat(replica_, now);
  // Silent for a lease: not live. Silent for ten: forgotten.
  live_ = std::max<std::size_t>(1, store_.live_replicas(now - lease_, now - 10 * lease_));
  round.live = live_;
  const std::size_t fair = (kShards + live_ - 1) / live_;

  std::bitset<kShards> held;
  for (const int shard : store_.renew_shards(replica_, until)) held.set(static_cast<std::size_t>(shard));
  // Beyond the fair share: give up the highest, so that a new replica finds
  // some free at its next renewal.
  if (held.count() > fair) {
    for (int shard = kShards - 1; shard >= 0 && held.count() > fair; --shard) {
      if (!held.test(static_cast<std::size_t>(shard))) continue;
      held.reset(static_cast<std::size_t>(shard));
      round.released.push_back(shard);
    }
    std::reverse(round.released.begin(), round.released.end());
    store_.release_shards(replica_, round.released);
  } else if (held.count() < fair) {
    std::bitset<kShards> taken_by_others;
    for (const ShardLease& lease : store_.shard_leases())
      if (lease.owner != replica_ && !lease.owner.empty() && lease.until > now)
        taken_by_others.set(static_cast<std::size_t>(lease.shard));
    // Start where this replica's id hashes to, so that replicas starting
    // together try different shards first instead of all racing for 0.
    // One statement for them all; one another replica took meanwhile is
    // not ours, and the next renewal looks again.
    const int start = shard_of(replica_);
    std::vector<int> wanted;
    for (int i = 0; i < kShards && held.count() + wanted.size() < fair; ++i) {
      const int shard = (start + i) % kShards;
      const auto bit = static_cast<std::size_t>(shard);
      if (!held.test(bit) && !taken_by_others.test(bit)) wanted.push_back(shard);
    }
    if (!wanted.empty())
      for (const int shard : store_.take_shards(wanted, replica_, now, until)) {
        const auto bit = static_cast<std::size_t>(shard);
        held.set(bit);
        if (!owned_.test(bit)) round.taken.push_back(shard);
      }
  }
  for (int shard = 0; shard < kShards; ++shard) {
    const auto bit = static_cast<std::size_t>(shard);
    if (owned_.test(bit) && !held.test(bit) &&
        std::find(round.released.begin(), round.released.end(), shard) == round.released.end())
      round.lost.push_back(shard);
  }
  std::erase_if(sources_, [&](const std::string& source) { return !store_.take_source(source, replica_, now, until); });
  owned_ = held;
  owned_until_ = until;
  round.owned = owned_.count();
  return round;
}

bool Cluster::owns(int shard) const {
  if (shard < 0 || shard >= kShards) return false;
  return owned_.test(static_cast<std::size_t>(shard)) && clock_.now() < owned_until_;
}

std::vector<int> Cluster::owned() const {
  std::vector<int> out;
  if (clock_.now() >= owned_until_) return out;
  for (int shard = 0; shard < kShards; ++shard)
    if (owned_.test(static_cast<std::size_t>(shard))) out.push_back(shard);
  return out;
}

bool Cluster::hold_source(const std::string& source) {
  const Timestamp now = clock_.now();
  const bool held = store_.take_source(source, replica_, now, now + lease_);
  const bool known = std::find(sources_.begin(), sources_.end(), source) != sources_.end();
  if (held && !known) sources_.push_back(source);
  if (!held && known) std::erase(sources_, source);
  return held;
}

void Cluster::release_source(const std::string& source) {
  std::erase(sources_, source);
  store_.release_source(replica_, source);
}

void Cluster::leave() {
  owned_.reset();
  sources_.clear();
  store_.leave(replica_);
}

}  // namespace tactd
