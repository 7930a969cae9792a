#include "postgres/sync_connection.h"

#include "postgres/libpq_result.h"

namespace tactd::pg {

struct SyncConnection::Handle {
  ConnPtr conn;
};

SyncConnection::SyncConnection(const std::string& conninfo) : handle_(std::make_unique<Handle>()) {
  handle_->conn.reset(PQconnectdb(conninfo.c_str()));
  if (!handle_->conn) {
    error_ = Error{ErrorKind::other, "", "libpq could not allocate a connection"};
  } else if (PQstatus(handle_->conn.get()) != CONNECTION_OK) {
    error_ = connection_error(handle_->conn.get());
  }
}

SyncConnection::~SyncConnection() = default;

Result SyncConnection::query(const std::string& sql, const Params& params) {
  if (error_) return Result{{}, {}, 0, error_};
  const BoundParams bound(params);
  ResultPtr result(PQexecParams(handle_->conn.get(), sql.c_str(), static_cast<int>(bound.pointers.size()), nullptr,
                                bound.pointers.data(), nullptr, nullptr, 0));
  return convert(result.get(), handle_->conn.get());
}

}  // namespace tactd::pg
