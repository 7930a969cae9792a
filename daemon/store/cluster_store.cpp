#include "store/cluster_store.h"

namespace tactd {

int shard_of(std::string_view key) {
  // FNV-1a, 32 bits: offset basis 2166136261, prime 16777619.
  std::uint32_t hash = 2166136261u;
  for (const char c : key) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 16777619u;
  }
  return static_cast<int>(hash % kShards);
}

}  // namespace tactd
