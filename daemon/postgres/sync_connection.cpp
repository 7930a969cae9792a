#include "postgres/sync_connection.h"

#include <string>
#include <unordered_map>

#include "postgres/libpq_result.h"

namespace tactd::pg {

struct SyncConnection::Handle {
  ConnPtr conn;
  std::unordered_map<std::string, std::string> prepared;  // statement text -> its name on the server
};

SyncConnection::SyncConnection(const std::string& conninfo) : handle_(std::make_unique<Handle>()) {
  handle_->conn.reset(PQconnectdb(conninfo.c_str()));
  if (!handle_->conn) {
    error_ = Error{ErrorKind::other, "", "libpq could not allocate a connection"};
  } else if (PQstatus(handle_->conn.get()) != CONNECTION_OK) {
    error_ = connection_error(handle_->conn.get());
  } else {
    log_notices(handle_->conn.get());
  }
}

SyncConnection::~SyncConnection() = default;

Result SyncConnection::query(const std::string& sql, const Params& params) {
  if (error_) return Result{{}, {}, 0, error_};
  if (params.values().empty()) {
    ResultPtr result(PQexec(handle_->conn.get(), sql.c_str()));
    return convert(result.get(), handle_->conn.get());
  }
  const BoundParams bound(params);
  ResultPtr result(PQexecParams(handle_->conn.get(), sql.c_str(), static_cast<int>(bound.pointers.size()), nullptr,
                                bound.pointers.data(), nullptr, nullptr, 0));
  return convert(result.get(), handle_->conn.get());
}

Result SyncConnection::query_prepared(const std::string& sql, const Params& params) {
  if (error_) return Result{{}, {}, 0, error_};
  PGconn* conn = handle_->conn.get();
  auto known = handle_->prepared.find(sql);
  if (known == handle_->prepared.end()) {
    std::string name = "s" + std::to_string(handle_->prepared.size() + 1);
    ResultPtr prepared(PQprepare(conn, name.c_str(), sql.c_str(), 0, nullptr));
    Result outcome = convert(prepared.get(), conn);
    if (!outcome.ok()) return outcome;
    known = handle_->prepared.emplace(sql, std::move(name)).first;
  }
  const BoundParams bound(params);
  ResultPtr result(PQexecPrepared(conn, known->second.c_str(), static_cast<int>(bound.pointers.size()),
                                  bound.pointers.data(), nullptr, nullptr, 0));
  return convert(result.get(), conn);
}

}  // namespace tactd::pg
