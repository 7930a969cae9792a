#include "postgres/connection.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <spdlog/spdlog.h>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "postgres/libpq_result.h"

namespace tactd::pg {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// A statement waiting for its turn. `txn` names the transaction it belongs
// to (0: none).
struct Request {
  enum class Role { plain, begin, end };
  std::string sql;
  Params params;
  std::uint64_t txn = 0;
  Role role = Role::plain;
  std::function<void(Result)> done;  // posts the result to its awaiting coroutine
  bool prepared = false;             // prepared once per connection, then run by name
};

Result failure(ErrorKind kind, std::string message) {
  Result result;
  result.error = Error{kind, kind == ErrorKind::connection ? "08006" : "", std::move(message)};
  return result;
}

bool valid_channel(const std::string& channel) {
  return !channel.empty() && channel.size() <= 63 && std::all_of(channel.begin(), channel.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

namespace detail {

// Everything of one connection, owned by its driver coroutine and by the
// Connection and Transaction handles; only the driver touches libpq.
class ConnectionState : public std::enable_shared_from_this<ConnectionState> {
 public:
  ConnectionState(asio::io_context& io, ConnectionOptions options)
      : io_(io), options_(std::move(options)), deadline_(io), sleep_(io) {}

  ~ConnectionState() { drop(); }

  void start() {
    asio::co_spawn(io_, drive(shared_from_this()), [](std::exception_ptr failure) {
      if (!failure) return;
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        spdlog::critical("postgres: the connection's driver stopped: {}", e.what());
      }
    });
  }

  void close() {
    closing_ = true;
    wake();
    deadline_.cancel();
    sleep_.cancel();
  }

  void submit(Request request) {
    if (closing_) {
      finish(request, failure(ErrorKind::connection, "the connection is closed"));
      return;
    }
    if (request.role != Request::Role::begin && request.txn != 0 && request.txn != open_txn_) {
      finish(request, failure(ErrorKind::connection, "the transaction is no longer open (its connection was lost)"));
      return;
    }
    if (waiting_.size() >= options_.max_waiting) {
      finish(request, failure(ErrorKind::other, "too many statements waiting for the connection (" +
                                                    std::to_string(waiting_.size()) + ")"));
      return;
    }
    waiting_.push_back(std::move(request));
    if (idle_) wake();
  }

  std::uint64_t next_txn() { return ++last_txn_; }
  bool connected() const { return conn_ && !lost_ && up_; }
  int backend_pid() const { return connected() ? PQbackendPID(conn_.get()) : 0; }
  asio::io_context& io() { return io_; }

  void remember_channel(const std::string& channel) { channels_.insert(channel); }

 private:
  enum class Wait { ready, woken, timed_out, closing, failed };

  static void finish(Request& request, Result result) {
    if (request.done) request.done(std::move(result));
  }

  void wake() {
    if (socket_) socket_->cancel();
  }

  // The connection's socket on the loop; the fd stays libpq's (released, never closed, here).
  void adopt_socket() {
    release_socket();
    const int fd = PQsocket(conn_.get());
    if (fd >= 0) socket_.emplace(io_, fd);
  }
  void release_socket() {
    if (socket_) {
      socket_->release();  // cancels the waits without closing libpq's socket
      socket_.reset();
    }
  }
  void drop() {
    release_socket();  // before PQfinish closes the fd
    conn_.reset();
    prepared_.clear();  // a new connection knows none of them
    up_ = false;
  }

  // Waits until the socket is ready for `type`, `until` passes, or wake()
  // or close() interrupts.
  asio::awaitable<Wait> wait(asio::posix::descriptor_base::wait_type type, std::optional<Clock::time_point> until) {
    if (closing_) co_return Wait::closing;
    if (!socket_) co_return Wait::failed;
    const std::uint64_t generation = ++wait_generation_;
    timed_out_ = false;
    if (until) {
      deadline_.expires_at(*until);
      deadline_.async_wait([weak = weak_from_this(), generation](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || self->wait_generation_ != generation) return;
        self->timed_out_ = true;
        self->wake();
      });
    }
    boost::system::error_code ec;
    co_await socket_->async_wait(type, asio::redirect_error(asio::use_awaitable, ec));
    ++wait_generation_;  // a deadline handler already queued no longer applies
    if (until) deadline_.cancel();
    if (closing_) co_return Wait::closing;
    if (timed_out_) co_return Wait::timed_out;
    if (ec == asio::error::operation_aborted) co_return Wait::woken;
    if (ec) co_return Wait::failed;
    co_return Wait::ready;
  }

  // The driver: connect, serve statements until the connection is lost,
  // wait, connect again; until close().
  // `self` keeps the state alive as long as the driver runs.
  asio::awaitable<void> drive([[maybe_unused]] std::shared_ptr<ConnectionState> self) {
    auto backoff = options_.reconnect_min;
    int attempt = 0;
    while (!closing_) {
      std::optional<Error> error = co_await connect();
      if (!error) error = co_await prepare();
      if (!error) {
        up_ = true;
        if (attempt > 0) spdlog::info("postgres: connected again to {} after {} failed attempts", where(), attempt);
        report(ConnectionEvent{true, where(), attempt});
        attempt = 0;
        backoff = options_.reconnect_min;
        error = co_await serve();
      }
      drop();
      if (closing_) break;
      ++attempt;
      const std::string why = error ? error->message : "the connection was lost";
      fail_waiting(why);
      spdlog::warn("postgres: no connection to the server: {} (attempt {}); connecting again in {} ms", why, attempt,
                   backoff.count());
      report(ConnectionEvent{false, why, attempt});
      sleep_.expires_after(backoff);
      boost::system::error_code ec;
      co_await sleep_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      backoff = std::min(backoff * 2, options_.reconnect_max);
    }
    drop();
    fail_waiting("the connection is closed");
  }

  void report(const ConnectionEvent& event) {
    if (!options_.on_event) return;
    try {
      options_.on_event(event);
    } catch (const std::exception& e) {
      spdlog::error("postgres: the connection event handler failed: {}", e.what());
    }
  }

  std::string where() const {
    const char* host = PQhost(conn_.get());
    const char* port = PQport(conn_.get());
    return std::string(host ? host : "?") + ":" + (port ? port : "?");
  }

  void fail_waiting(const std::string& why) {
    open_txn_ = 0;
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& request : waiting) finish(request, failure(ErrorKind::connection, why));
  }

  // PQconnectStart, then PQconnectPoll whenever the socket is ready as it asks.
  asio::awaitable<std::optional<Error>> connect() {
    lost_ = false;
    conn_.reset(PQconnectStart(options_.conninfo.c_str()));
    if (!conn_) co_return Error{ErrorKind::other, "", "libpq could not allocate a connection"};
    if (PQstatus(conn_.get()) == CONNECTION_BAD) co_return connection_error(conn_.get());
    const auto until = Clock::now() + options_.connect_timeout;
    PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
    while (poll != PGRES_POLLING_OK) {
      if (poll == PGRES_POLLING_FAILED) co_return connection_error(conn_.get());
      // Each step may have opened another socket (the next address): watch the current one.
      adopt_socket();
      const auto type = poll == PGRES_POLLING_READING ? asio::posix::descriptor_base::wait_read
                                                      : asio::posix::descriptor_base::wait_write;
      switch (co_await wait(type, until)) {
        case Wait::closing:
          co_return Error{ErrorKind::connection, "08006", "the connection is closed"};
        case Wait::timed_out:
          co_return Error{ErrorKind::connection, "08001",
                          "could not connect within " + std::to_string(options_.connect_timeout.count()) + " ms"};
        case Wait::failed:
          co_return connection_error(conn_.get());
        default:
          break;
      }
      poll = PQconnectPoll(conn_.get());
    }
    if (PQsetnonblocking(conn_.get(), 1) != 0) co_return connection_error(conn_.get());
    log_notices(conn_.get());
    adopt_socket();
    co_return std::nullopt;
  }

  // What every new connection needs before the first statement: the
  // timeouts (milliseconds; 0 turns them off) and the channels listened to.
  asio::awaitable<std::optional<Error>> prepare() {
    const std::string sql =
        "SELECT pg_catalog.set_config('statement_timeout', $1, false), "
        "pg_catalog.set_config('idle_in_transaction_session_timeout', $2, false)";
    const Params params(std::to_string(options_.statement_timeout.count()),
                        std::to_string(options_.idle_in_transaction_timeout.count()));
    Result set = co_await execute(sql, params);
    if (set.error) co_return set.error;
    for (const auto& channel : channels_) {
      const std::string listen = "LISTEN \"" + channel + "\"";
      const Params none;
      Result listened = co_await execute(listen, none);
      if (listened.error) co_return listened.error;
    }
    co_return std::nullopt;
  }

  // Runs waiting statements, one at a time; between them reads what the
  // server sends by itself (notifications, its goodbye). Returns why the
  // connection was lost; nullopt on close().
  asio::awaitable<std::optional<Error>> serve() {
    while (!closing_) {
      auto next = pick();
      if (next == waiting_.end()) {
        idle_ = true;
        const Wait woke = co_await wait(asio::posix::descriptor_base::wait_read, std::nullopt);
        idle_ = false;
        if (woke == Wait::closing) co_return std::nullopt;
        if (woke == Wait::woken) continue;
        if (woke == Wait::failed || !PQconsumeInput(conn_.get()) || PQstatus(conn_.get()) == CONNECTION_BAD)
          co_return connection_error(conn_.get());
        deliver_notifications();
        // An error the server sent unasked (its shutdown) stays as a result: drop it.
        while (!PQisBusy(conn_.get())) {
          ResultPtr stray(PQgetResult(conn_.get()));
          if (!stray) break;
        }
        continue;
      }
      Request request = std::move(*next);
      waiting_.erase(next);
      Result result = co_await execute(request.sql, request.params, request.prepared);
      if (request.role == Request::Role::begin && result.ok()) open_txn_ = request.txn;
      if (request.role == Request::Role::end) open_txn_ = 0;
      finish(request, std::move(result));
      if (lost_) co_return lost_error_;
    }
    co_return std::nullopt;
  }

  // The next statement allowed to run: the open transaction's, else the oldest.
  std::deque<Request>::iterator pick() {
    if (open_txn_ == 0) return waiting_.begin();
    return std::find_if(waiting_.begin(), waiting_.end(),
                        [this](const Request& request) { return request.txn == open_txn_; });
  }

  // Sends one statement with its parameters bound and reads all its
  // results. `prepared`: through a statement prepared on this connection
  // the first time its text is seen (PQsendPrepare), run by name afterwards
  // (PQsendQueryPrepared); a new connection prepares again.
  asio::awaitable<Result> execute(const std::string& sql, const Params& params, bool prepared = false) {
    PGconn* conn = conn_.get();
    const BoundParams bound(params);
    if (!prepared) {
      if (!PQsendQueryParams(conn, sql.c_str(), static_cast<int>(bound.pointers.size()), nullptr, bound.pointers.data(),
                             nullptr, nullptr, 0))
        co_return lose(convert(nullptr, conn));
      co_return co_await answer(conn);
    }
    auto known = prepared_.find(sql);
    if (known == prepared_.end()) {
      std::string name = "a" + std::to_string(prepared_.size() + 1);
      if (!PQsendPrepare(conn, name.c_str(), sql.c_str(), 0, nullptr)) co_return lose(convert(nullptr, conn));
      Result made = co_await answer(conn);
      if (!made.ok()) co_return made;
      known = prepared_.emplace(sql, std::move(name)).first;
    }
    if (!PQsendQueryPrepared(conn, known->second.c_str(), static_cast<int>(bound.pointers.size()),
                             bound.pointers.data(), nullptr, nullptr, 0))
      co_return lose(convert(nullptr, conn));
    co_return co_await answer(conn);
  }

  // Flushes what was sent and reads all its results.
  asio::awaitable<Result> answer(PGconn* conn) {
    const std::optional<Clock::time_point> until =
        options_.statement_timeout.count() > 0
            ? std::optional(Clock::now() + options_.statement_timeout + options_.answer_grace)
            : std::nullopt;
    // PQflush sends what libpq buffered; 1: the socket is full, wait until it
    // takes more. Input read meanwhile so that the server is never stuck writing to us.
    for (int flushed; (flushed = PQflush(conn)) != 0;) {
      if (flushed < 0) co_return lose(convert(nullptr, conn));
      if (!PQconsumeInput(conn)) co_return lose(convert(nullptr, conn));
      if (auto stop = co_await waited(asio::posix::descriptor_base::wait_write, until)) co_return *stop;
    }
    std::optional<Result> outcome;
    for (;;) {
      while (PQisBusy(conn)) {
        if (auto stop = co_await waited(asio::posix::descriptor_base::wait_read, until)) co_return *stop;
        if (!PQconsumeInput(conn)) co_return lose(convert(nullptr, conn));
        deliver_notifications();
      }
      ResultPtr part(PQgetResult(conn));
      if (!part) break;
      Result converted = convert(part.get(), conn);
      if (!outcome || (outcome->ok() && !converted.ok()))
        outcome = std::move(converted);  // the first error wins
      else if (converted.ok())
        outcome = std::move(converted);  // else the last result
    }
    deliver_notifications();
    if (!outcome) outcome = convert(nullptr, conn);
    if (PQstatus(conn) == CONNECTION_BAD) co_return lose(std::move(*outcome));
    co_return std::move(*outcome);
  }

  // Waits inside execute(): nullopt when the socket is ready, else the
  // result that ends the statement (and the connection: a statement cut off
  // halfway leaves libpq in a state only a new connection clears).
  asio::awaitable<std::optional<Result>> waited(asio::posix::descriptor_base::wait_type type,
                                                std::optional<Clock::time_point> until) {
    Wait woke = Wait::woken;
    while (woke == Wait::woken) woke = co_await wait(type, until);  // a new statement asked for: keep waiting
    switch (woke) {
      case Wait::ready:
        co_return std::nullopt;
      case Wait::closing:
        co_return lose(failure(ErrorKind::connection, "the connection is closed"));
      case Wait::timed_out:
        co_return lose(failure(ErrorKind::connection, "no answer from the server within the statement timeout and " +
                                                          std::to_string(options_.answer_grace.count()) + " ms"));
      default:
        co_return lose(failure(ErrorKind::connection, "the connection's socket failed"));
    }
  }

  Result lose(Result result) {
    lost_ = true;
    if (!result.error) result = failure(ErrorKind::connection, "the connection was lost");
    result.error->kind = ErrorKind::connection;  // whatever the server said last: the connection is gone
    lost_error_ = result.error;
    return result;
  }

  void deliver_notifications() {
    while (PGnotify* raw = PQnotifies(conn_.get())) {
      std::unique_ptr<PGnotify, decltype(&PQfreemem)> notify(raw, &PQfreemem);
      if (!options_.on_notification) continue;
      try {
        options_.on_notification(Notification{notify->relname, notify->extra ? notify->extra : "", notify->be_pid});
      } catch (const std::exception& e) {
        spdlog::error("postgres: the notification handler failed on channel {}: {}", notify->relname, e.what());
      }
    }
  }

  asio::io_context& io_;
  ConnectionOptions options_;
  ConnPtr conn_;
  std::optional<asio::posix::stream_descriptor> socket_;  // libpq's socket, watched, never owned
  asio::steady_timer deadline_;                           // of the current wait()
  asio::steady_timer sleep_;                              // the backoff between attempts
  std::uint64_t wait_generation_ = 0;
  bool timed_out_ = false;
  bool idle_ = false;     // serve() waits for the server with nothing to send: wake() it for a statement
  bool closing_ = false;  // close() was called
  bool up_ = false;
  bool lost_ = false;  // the current connection is gone; serve() returns lost_error_
  std::optional<Error> lost_error_;
  std::deque<Request> waiting_;  // bounded by options_.max_waiting
  std::uint64_t open_txn_ = 0;   // the transaction that holds the connection; 0: none
  std::uint64_t last_txn_ = 0;
  std::set<std::string> channels_;               // LISTENed to, again on each new connection
  std::map<std::string, std::string> prepared_;  // statement text -> its name on the current connection
};

}  // namespace detail

namespace {

// Submits `request` and suspends the awaiting coroutine until its result is
// posted back on the loop. Not a coroutine itself: GCC 12 destroys a
// coroutine's by-value parameter twice when it is moved into a lambda.
asio::awaitable<Result> run(std::shared_ptr<detail::ConnectionState> state, Request request) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result)>(
      [state, request = std::move(request)](auto handler) mutable {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        request.done = [shared, &io = state->io()](Result result) {
          asio::post(io, [shared, result = std::move(result)]() mutable { (*shared)(std::move(result)); });
        };
        state->submit(std::move(request));
      },
      asio::use_awaitable);
}

const char* begin_statement(Isolation isolation) {
  switch (isolation) {
    case Isolation::repeatable_read:
      return "BEGIN ISOLATION LEVEL REPEATABLE READ";
    case Isolation::serializable:
      return "BEGIN ISOLATION LEVEL SERIALIZABLE";
    case Isolation::read_committed:
      break;
  }
  return "BEGIN ISOLATION LEVEL READ COMMITTED";
}

}  // namespace

// --- Connection ---

std::unique_ptr<Connection> Connection::open(asio::io_context& io, ConnectionOptions options) {
  auto state = std::make_shared<detail::ConnectionState>(io, std::move(options));
  state->start();
  return std::unique_ptr<Connection>(new Connection(std::move(state)));
}

Connection::Connection(std::shared_ptr<detail::ConnectionState> state) : state_(std::move(state)) {}

Connection::~Connection() { state_->close(); }

asio::awaitable<Result> Connection::query(std::string sql, Params params) {
  return run(state_, Request{std::move(sql), std::move(params), 0, Request::Role::plain, {}});
}

asio::awaitable<Result> Connection::query_prepared(std::string sql, Params params) {
  return run(state_, Request{std::move(sql), std::move(params), 0, Request::Role::plain, {}, true});
}

asio::awaitable<Transaction> Connection::begin(Isolation isolation) {
  auto state = state_;
  const std::uint64_t id = state->next_txn();
  // Requests are built before co_await, never as its temporaries: GCC 12 destroys those twice.
  Request request{begin_statement(isolation), {}, id, Request::Role::begin, {}};
  Result begun = co_await run(state, std::move(request));
  if (!begun.ok()) co_return Transaction(nullptr, id, std::move(begun.error));
  co_return Transaction(std::move(state), id, std::nullopt);
}

asio::awaitable<Result> Connection::listen(std::string channel) {
  auto state = state_;
  if (!valid_channel(channel))
    co_return failure(ErrorKind::other, "'" + channel + "' is not a channel name (letters, digits and _, at most 63)");
  Request request{"LISTEN \"" + channel + "\"", {}, 0, Request::Role::plain, {}};
  Result listened = co_await run(state, std::move(request));
  if (listened.ok()) state->remember_channel(channel);
  co_return listened;
}

bool Connection::connected() const { return state_->connected(); }
int Connection::backend_pid() const { return state_->backend_pid(); }

// --- Transaction ---

Transaction::Transaction(std::shared_ptr<detail::ConnectionState> state, std::uint64_t id, std::optional<Error> error)
    : state_(std::move(state)), id_(id), error_(std::move(error)) {}

Transaction::Transaction(Transaction&& other) noexcept
    : state_(std::move(other.state_)), id_(other.id_), error_(std::move(other.error_)) {}

Transaction& Transaction::operator=(Transaction&& other) noexcept {
  if (this != &other) {
    abandon();
    state_ = std::move(other.state_);
    id_ = other.id_;
    error_ = std::move(other.error_);
  }
  return *this;
}

Transaction::~Transaction() { abandon(); }

void Transaction::abandon() {
  // Still open: roll back, without waiting for it (the connection runs it next).
  if (auto state = std::move(state_)) state->submit(Request{"ROLLBACK", {}, id_, Request::Role::end, {}});
}

asio::awaitable<Result> Transaction::query(std::string sql, Params params) {
  if (!state_) co_return failure(ErrorKind::other, error_ ? error_->message : "the transaction has ended");
  Request request{std::move(sql), std::move(params), id_, Request::Role::plain, {}};
  co_return co_await run(state_, std::move(request));
}

asio::awaitable<Result> Transaction::query_prepared(std::string sql, Params params) {
  if (!state_) co_return failure(ErrorKind::other, error_ ? error_->message : "the transaction has ended");
  Request request{std::move(sql), std::move(params), id_, Request::Role::plain, {}, true};
  co_return co_await run(state_, std::move(request));
}

asio::awaitable<Result> Transaction::commit() { return end("COMMIT"); }
asio::awaitable<Result> Transaction::rollback() { return end("ROLLBACK"); }

asio::awaitable<Result> Transaction::end(const char* statement) {
  if (!state_) co_return failure(ErrorKind::other, error_ ? error_->message : "the transaction has ended");
  auto state = std::move(state_);  // ended whatever the outcome
  Request request{statement, {}, id_, Request::Role::end, {}};
  co_return co_await run(std::move(state), std::move(request));
}

}  // namespace tactd::pg
