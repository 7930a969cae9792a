// Internal to postgres: libpq's handles owned by unique_ptr, and a PGresult
// turned into a Result. Not part of the component's interface.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>

#include "postgres/result.h"

namespace tactd::pg {

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// The rows of `result`, or its error classified (`conn` tells whether the
// connection went bad with it). A null `result` is a client-side failure:
// the connection's own error message.
Result convert(const PGresult* result, const PGconn* conn);

// An error that came without a result: the connection's message, classified
// as `kind`.
Error connection_error(const PGconn* conn, ErrorKind kind = ErrorKind::connection);

// The server's notices and warnings on `conn` go to the log (a NOTICE at
// debug level, anything else as a warning) instead of libpq's default,
// standard error, where they would stand unexplained among the log lines.
void log_notices(PGconn* conn);

// The parameters as libpq takes them: pointers into `params`, which must
// outlive the call.
struct BoundParams {
  explicit BoundParams(const Params& params);
  std::vector<const char*> pointers;
};

}  // namespace tactd::pg
