// One PostgreSQL connection driven by the caller's Boost.Asio io_context,
// through libpq's non-blocking interface: connecting (PQconnectStart/Poll),
// sending (PQsendQueryParams, PQflush) and reading (PQconsumeInput,
// PQisBusy, PQgetResult) each wait for the socket's readiness on the loop,
// so a slow statement never blocks it. libpq stays behind this header.
//
// Statements run one at a time, in the order they were asked for; a
// transaction holds the connection from BEGIN to COMMIT or ROLLBACK, other
// statements wait for it. LISTEN/NOTIFY notifications go to a handler. A lost
// connection is reported and made again with backoff; what was in flight or
// waiting fails with ErrorKind::connection (retryable), never silently.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "postgres/result.h"

namespace boost::asio {
class io_context;
}

namespace tactd::pg {

struct Notification {
  std::string channel;
  std::string payload;
  int sender_pid = 0;  // the backend that sent it
};

// A change of the connection's state, for logs, metrics and health.
struct ConnectionEvent {
  bool up = false;      // connected (again) or lost
  std::string message;  // lost: why; up: the server's host and port (never the password)
  int attempt = 0;      // failed attempts since the last time it was up
};

struct ConnectionOptions {
  std::string conninfo;  // libpq keywords ("host=... dbname=...") or a postgresql:// URI; never logged
  std::chrono::milliseconds connect_timeout{10'000};    // one attempt, from PQconnectStart to ready
  std::chrono::milliseconds statement_timeout{30'000};  // the server's statement_timeout; 0: none
  // The server's idle_in_transaction_session_timeout: a transaction left
  // open that long without a statement (a stuck caller) is ended by the
  // server, which drops the connection, so it cannot hold rows locked and
  // the connection taken forever. 0: none.
  std::chrono::milliseconds idle_in_transaction_timeout{60'000};
  // Waiting for a statement's answer longer than this (statement_timeout
  // plus a grace, when there is one) takes the connection for lost.
  std::chrono::milliseconds answer_grace{10'000};
  std::chrono::milliseconds reconnect_min{100};  // backoff after the first failure, doubled up to max
  std::chrono::milliseconds reconnect_max{5'000};
  std::size_t max_waiting = 4096;  // statements waiting for their turn; more fail at once
  // Runs on the loop for each NOTIFY on a channel listened to; must not block.
  std::function<void(const Notification&)> on_notification;
  // Runs on the loop when the connection is made and when it is lost.
  std::function<void(const ConnectionEvent&)> on_event;
};

enum class Isolation { read_committed, repeatable_read, serializable };

namespace detail {
class ConnectionState;  // connection.cpp: libpq's connection and the loop's side of it
}

// A transaction from Connection::begin: statements run inside it, and no
// other statement of the connection runs until commit() or rollback(), so
// a coroutine holding one must not await Connection::query on the same
// connection (it would wait for itself). Destroying an open transaction
// rolls it back. Move-only.
class Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&& other) noexcept;
  ~Transaction();

  // The outcome of BEGIN: an error means there is no transaction.
  bool ok() const { return !error_; }
  const std::optional<Error>& error() const { return error_; }

  boost::asio::awaitable<Result> query(std::string sql, Params params = {});
  // The same through a statement prepared on the connection (Connection::query_prepared).
  boost::asio::awaitable<Result> query_prepared(std::string sql, Params params = {});
  // COMMIT: an error (a serialization failure at commit, a lost connection)
  // means nothing of the transaction is stored. Either ends the transaction.
  boost::asio::awaitable<Result> commit();
  boost::asio::awaitable<Result> rollback();

 private:
  friend class Connection;
  Transaction(std::shared_ptr<detail::ConnectionState> state, std::uint64_t id, std::optional<Error> error);
  boost::asio::awaitable<Result> end(const char* statement);
  void abandon();  // ROLLBACK if still open, without waiting for it

  std::shared_ptr<detail::ConnectionState> state_;  // null once ended, failed or moved from
  std::uint64_t id_ = 0;
  std::optional<Error> error_;
};

class Connection {
 public:
  // Starts connecting at once and returns; statements asked for meanwhile
  // wait for the connection (or fail with the first attempt's error). `io`
  // must outlive the connection; call everything on the loop's thread.
  static std::unique_ptr<Connection> open(boost::asio::io_context& io, ConnectionOptions options);
  // Closes the connection: statements in flight or waiting complete with an
  // error ("closed"). The coroutines awaiting them must still be run by `io`.
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One statement (several separated by ";" only without parameters), its
  // parameters bound as $1, $2, ...; outside any transaction of this
  // connection (autocommit).
  boost::asio::awaitable<Result> query(std::string sql, Params params = {});
  // One statement, prepared on the connection the first time its text is
  // seen and run by name afterwards (planned once per connection; prepared
  // again on each new connection after a loss).
  boost::asio::awaitable<Result> query_prepared(std::string sql, Params params = {});

  // BEGIN at `isolation`; the transaction holds the connection until it ends.
  boost::asio::awaitable<Transaction> begin(Isolation isolation = Isolation::read_committed);

  // LISTEN on `channel` (letters, digits and '_', at most 63: a channel name
  // cannot be a bound parameter, so it is checked instead), again after each
  // reconnection. NOTIFYs arrive at ConnectionOptions::on_notification.
  // Send one with query("SELECT pg_notify($1, $2)", Params(channel, payload)).
  boost::asio::awaitable<Result> listen(std::string channel);

  // Whether the connection is up now.
  bool connected() const;
  // The backend's process id (for pg_terminate_backend in tests, and logs); 0 when down.
  int backend_pid() const;

 private:
  explicit Connection(std::shared_ptr<detail::ConnectionState> state);
  std::shared_ptr<detail::ConnectionState> state_;
};

}  // namespace tactd::pg
