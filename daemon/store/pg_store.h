// The PostgreSQL backend of Store (store.h): the same roles, semantics and
// schema steps (migrations.h) as the SQLite one. libpq stays behind this
// header.
//
// Two ways to reach the server. The command-line verbs (`tactd migrate`,
// `tactd outbox`, `tactd timeline`) and the tests have no event loop to
// stall: their store waits for each answer on the calling thread
// (postgres/sync_connection.h). The daemon's store sends each statement on
// the asynchronous postgres::Connection and suspends the calling fiber until
// the answer is back; its calls must be made through StateRunner::run()
// (store/state_runner.h, which says why the loop cannot stall), any other
// call on the loop throws std::logic_error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/store.h"

namespace boost::asio {
class io_context;
}

namespace tactd {

// Connects to the database of `conninfo` (libpq keywords or a
// postgresql:// URL; it may carry the password and is never put in an
// error or a log) and applies the missing migrations, one transaction each,
// holding the session advisory lock kMigrationLock meanwhile, so that
// replicas starting together migrate one after the other. Throws StoreError
// (retryable when the server could not be reached). Sync is the server's
// business (synchronous_commit): Store::sync() reports kFull.
std::unique_ptr<Store> open_postgres_store(const std::string& conninfo);

// The daemon's store on `io`'s loop: migrates as above (blocking, before
// the loop runs), then connects on the loop (pg::Connection: a lost
// connection is made again with backoff; calls meanwhile fail with a
// retryable StoreError). Its fibers() run the work of StateRunner::run().
// Destroy it before `io`, after `io` has stopped running.
std::unique_ptr<Store> open_postgres_store(const std::string& conninfo, boost::asio::io_context& io);

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
