// The state: entity snapshots, the outbox, timers, source cursors and
// contact history, kept in SQLite.
//
// The schema is created and upgraded by numbered migrations recorded in the
// table `schema_migrations`; opening a database applies the missing ones in
// one transaction each. SQLite and SQLiteCpp stay behind this header.
//
// A Store is used from one thread (the event loop); it is not thread-safe.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/cluster_store.h"
#include "store/contact_store.h"
#include "store/cursor_store.h"
#include "store/entity_store.h"
#include "store/outbox_store.h"
#include "store/store_error.h"
#include "store/timer_store.h"

namespace tactd {

// How far a commit is on disk when it returns ([tactd] sync).
// kFull: through power loss (the write-ahead log is synced on every commit),
// so that a 202, a file moved to done/ and a committed cursor hold.
// kNormal: through a killed process only; a power loss may roll back the
// last commits. Cheaper per commit.
enum class Sync { kFull, kNormal };

class FiberScheduler;  // store/state_runner.h

// The whole store: each role (entity snapshots, the outbox, timers and
// waiting intents, source cursors, contact history) is an interface of its
// own, and a component that needs one role takes only that one (the
// replicas' shards, leases and shared intake: ClusterStore). What is
// here spans them all: opening, durability, the schema and transactions.
class Store : public EntityStore,
              public OutboxStore,
              public TimerStore,
              public WaitingStore,
              public CursorStore,
              public ContactStore,
              public ClusterStore {
 public:
  virtual ~Store() = default;

  // Opens (creating if needed) the database at `path` in WAL mode and
  // migrates it. A new database is readable by its owner only (0600; its
  // -wal and -shm files take the same mode). Throws StoreError.
  static std::unique_ptr<Store> open(const std::filesystem::path& path, Sync sync = Sync::kFull);
  // A private database in a new temporary file, removed when the Store is
  // destroyed (used by `simulate` and tests); kNormal, as nothing of it
  // outlives the process.
  static std::unique_ptr<Store> open_temporary();

  // The durability in force, as the database connection reports it.
  virtual Sync sync() const = 0;

  // The highest migration applied.
  virtual int schema_version() const = 0;

  // A transaction that rolls back unless committed. Nesting is not allowed:
  // begin() while another Transaction is alive throws StoreError. A
  // Transaction must not outlive its Store.
  class Transaction {
   public:
    virtual ~Transaction() = default;
    virtual void commit() = 0;
  };
  virtual std::unique_ptr<Transaction> begin() = 0;

  // Changes when another connection (an operator's `tactd outbox ...`, a
  // script) committed to the database since the last call; this Store's
  // own commits leave it as it is (SQLite's PRAGMA data_version).
  virtual long long data_version() const = 0;

  // What another process committed that this one should act on soon.
  enum class Change {
    kOutbox,  // an outbox entry was added, or made pending again (a retry, a replica's cut-off send)
    kIntake,  // observations were put in the shared intake for a shard's owner
  };
  // Calls `changed` on the loop each time a change is committed, by any
  // process on the database, this one included, so that a replica wakes
  // at once instead of at its next look. A store that cannot tell (SQLite,
  // whose readers look on their own schedule) never calls it. Call once,
  // on the loop, before it runs; `changed` must not block.
  virtual void watch(std::function<void(Change)> changed) { (void)changed; }

  // The fibers its calls must run on (StateRunner): a store whose calls
  // wait on the network suspends the calling fiber instead of the loop.
  // nullptr (the default, SQLite): call it directly.
  virtual FiberScheduler* fibers() { return nullptr; }
};

}  // namespace tactd
