// What both backends (sqlite_store.cpp, pg_store.cpp) need to turn their
// rows into the model and back: times as milliseconds since the epoch, the
// stored names of statuses and kinds, and the Message-ID reference. Private
// to daemon/store.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "model/entity.h"
#include "model/notification.h"
#include "store/outbox_store.h"

namespace tactd::store_rows {

inline long long millis(Timestamp t) { return t.time_since_epoch().count(); }
inline Timestamp from_millis(long long ms) { return Timestamp{Duration{ms}}; }

// The lease end of a claim made by claim(): never, until its verdict.
inline constexpr std::int64_t kNoLeaseEnd = std::numeric_limits<std::int64_t>::max();

// A row holding a value the code cannot read; each backend's guard() names
// the operation.
struct CorruptRow : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T>
T decode(std::optional<T> value, std::string_view what, const std::string& text) {
  if (!value) throw CorruptRow("unknown " + std::string(what) + " '" + text + "' in the database");
  return *value;
}

std::optional<OutboxStatus> parse_status(std::string_view text);
// These throw CorruptRow for a value they do not know.
OutboxStatus status_from(const std::string& text);
EntityRef ref_from(const std::string& text);
EntityType type_from(const std::string& text);
Kind kind_from(const std::string& text);
Channel channel_from(const std::string& text);

// The shards with entries in the shared intake, ascending, in SQL both
// dialects read: a loose scan of intake_by_shard, one index step per shard
// that has entries instead of a walk over all of them.
inline constexpr const char* kIntakeShards =
    "WITH RECURSIVE s(shard) AS (SELECT (SELECT MIN(shard) FROM intake) UNION ALL "
    "SELECT (SELECT MIN(i.shard) FROM intake i WHERE i.shard > s.shard) FROM s WHERE s.shard IS NOT NULL) "
    "SELECT shard FROM s WHERE shard IS NOT NULL";

// The local part of the Message-ID channels/mime.cpp gives the email of
// `key`: the first 32 hex digits of its SHA-256.
std::string message_ref(const std::string& key);

}  // namespace tactd::store_rows
