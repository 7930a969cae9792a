// The PostgreSQL backend of Store (store.h): the same roles, semantics and
// schema steps (migrations.h) as the SQLite one, on one blocking libpq
// connection (postgres/sync_connection.h). libpq stays behind this header.
//
// Blocking, for now: every call waits for the server's answer on the
// calling thread. That is acceptable for the command-line verbs (`tactd
// migrate`, `tactd outbox`, `tactd timeline`) and the tests, which have
// no event loop to stall; the daemon's loop must not wait on a network
// round trip per statement, so `tactd run` on PostgreSQL needs the
// asynchronous postgres::Connection behind these roles (a later step,
// docs/scale-out.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/store.h"

namespace tactd {

// Connects to the database of `conninfo` (libpq keywords or a
// postgresql:// URL; it may carry the password and is never put in an
// error or a log) and applies the missing migrations, one transaction each,
// holding the session advisory lock kMigrationLock meanwhile, so that
// replicas starting together migrate one after the other. Throws StoreError
// (retryable when the server could not be reached). Sync is the server's
// business (synchronous_commit): Store::sync() reports kFull.
std::unique_ptr<Store> open_postgres_store(const std::string& conninfo);

// The key of pg_advisory_lock() that migration holds ('tactd' in ASCII).
inline constexpr long long kMigrationLock = 0x7461637464;

// The libpq connection string of `url` (postgresql://...) with `password`
// (may be empty: none, or libpq's ~/.pgpass) added as its query parameter,
// percent-encoded. Never log the result.
std::string postgres_conninfo(const std::string& url, const std::string& password);

// The conninfo for logs and errors: the password of a URL
// (postgresql://user:secret@host/db) or of a `password=` keyword masked as
// "***".
std::string masked_conninfo(const std::string& conninfo);

}  // namespace tactd
