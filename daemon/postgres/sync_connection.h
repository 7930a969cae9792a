// A blocking PostgreSQL connection for the command-line verbs (`tactd
// migrate` and the like), which have no event loop: the same bound
// parameters, typed results and error classes as Connection, through
// libpq's blocking calls. Never use it on the daemon's loop.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "postgres/result.h"

namespace tactd::pg {

class SyncConnection {
 public:
  // Connects (blocking); `error` is set when it could not, and every
  // statement then fails with it.
  explicit SyncConnection(const std::string& conninfo);
  ~SyncConnection();
  SyncConnection(const SyncConnection&) = delete;
  SyncConnection& operator=(const SyncConnection&) = delete;

  const std::optional<Error>& error() const { return error_; }
  // One statement with its parameters bound as $1, $2, ...; without
  // parameters, `sql` may hold several statements separated by ';' (a
  // migration), and the last one's result is returned.
  Result query(const std::string& sql, const Params& params = {});
  // One statement, prepared on this connection the first time its text is
  // seen and run by name afterwards: for the statements a caller runs again
  // and again, whose planning then costs once per connection.
  Result query_prepared(const std::string& sql, const Params& params = {});

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
  std::optional<Error> error_;
};

}  // namespace tactd::pg
