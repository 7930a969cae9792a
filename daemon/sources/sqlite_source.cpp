#include "sources/sqlite_source.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <exception>
#include <functional>
#include <limits>

#include "sources/mapping.h"
#include "store/state_runner.h"

namespace tactd {
namespace {

constexpr int kBusyTimeoutMs = 2000;  // the shop's own writers come first

class SqliteDatabase final : public SqlDatabase {
 public:
  explicit SqliteDatabase(const std::filesystem::path& file) : db_(file.string(), SQLite::OPEN_READONLY) {
    db_.setBusyTimeout(kBusyTimeoutMs);
  }

  std::vector<nlohmann::json> rows(const std::string& query, const std::string& cursor, std::size_t max_rows) override {
    try {
      SQLite::Statement q(db_, query);
      // The cursor keeps its type: SQLite orders every number before every
      // text, so an integer bound as text ('0') would match no integer row.
      // No cursor yet is the smallest integer, before every number and text.
      long long number = std::numeric_limits<long long>::min();
      auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), number);
      if (cursor.empty() || (ec == std::errc{} && end == cursor.data() + cursor.size()))
        q.bind(":cursor", static_cast<int64_t>(number));
      else
        q.bind(":cursor", cursor);
      std::vector<nlohmann::json> out;
      while (out.size() < max_rows && q.executeStep()) {
        nlohmann::json row = nlohmann::json::object();
        for (int i = 0; i < q.getColumnCount(); ++i) {
          const SQLite::Column column = q.getColumn(i);
          if (column.isInteger())
            row[column.getName()] = column.getInt64();
          else if (column.isFloat())
            row[column.getName()] = column.getDouble();
          else if (column.isNull())
            row[column.getName()] = nullptr;
          else if (column.isBlob())
            row[column.getName()] = nlohmann::json::binary(
                std::vector<std::uint8_t>(static_cast<const std::uint8_t*>(column.getBlob()),
                                          static_cast<const std::uint8_t*>(column.getBlob()) + column.getBytes()));
          else
            row[column.getName()] = column.getString();
        }
        out.push_back(std::move(row));
      }
      return out;
    } catch (const SQLite::Exception& e) {
      throw SqlError(e.what());
    }
  }

 private:
  void interrupt() override { sqlite3_interrupt(db_.getHandle()); }

 private:
  SQLite::Database db_;
};

namespace asio = boost::asio;

// Runs `job` on `worker` and resumes the awaiting coroutine on its own
// executor with the result, or the exception `job` threw.
template <typename T>
asio::awaitable<T> on_worker(asio::thread_pool& worker, std::function<T()> work) {
  const auto loop = co_await asio::this_coro::executor;
  auto initiation = [&worker, loop, job = std::move(work)](auto handler) mutable {
    // The loop keeps running while the job does.
    auto tracked = asio::prefer(loop, asio::execution::outstanding_work.tracked);
    asio::post(worker, [handler = std::move(handler), task = std::move(job), tracked]() mutable {
      std::exception_ptr failure;
      T result{};
      try {
        result = task();
      } catch (...) {
        failure = std::current_exception();
      }
      asio::post(tracked, [handler = std::move(handler), failure, result = std::move(result)]() mutable {
        std::move(handler)(failure, std::move(result));
      });
    });
  };
  T result = co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::exception_ptr, T)>(
      std::move(initiation), asio::use_awaitable);
  co_return result;
}

std::string cursor_text(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// Why a column of `row` cannot become an observation field, or empty: a BLOB,
// or text that is not UTF-8 (the store keeps fields as JSON text).
std::string unreadable(const nlohmann::json& row) {
  for (const auto& [column, value] : row.items()) {
    if (value.is_binary()) return "column '" + column + "' is a BLOB, which has no JSON value";
    if (!value.is_string()) continue;
    try {
      (void)value.dump();
    } catch (const nlohmann::json::type_error&) {
      return "column '" + column + "' holds text that is not UTF-8";
    }
  }
  return "";
}

// `row` as JSON for a problem, its unreadable bytes replaced.
std::string excerpt(const nlohmann::json& row) {
  return row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::unique_ptr<SqlDatabase> SqlDatabase::open_sqlite(const std::filesystem::path& file) {
  try {
    return std::make_unique<SqliteDatabase>(file);
  } catch (const SQLite::Exception& e) {
    throw SqlError("cannot open " + file.string() + ": " + e.what());
  }
}

SqlSource::SqlSource(SourceConfig config, std::unique_ptr<SqlDatabase> database)
    : config_(std::move(config)), database_(std::move(database)) {}

SqlSource::~SqlSource() { stop(); }

void SqlSource::interrupt() {
  interrupted_ = true;
  database_->interrupt();
}

void SqlSource::stop() {
  interrupt();
  worker_.join();
}

asio::awaitable<SqlSource::Poll> SqlSource::poll(Intake& intake, Timestamp now) {
  Poll poll;
  interrupted_ = false;
  const StateRunner state(intake.fibers());
  std::string cursor = (co_await state.run([&] { return intake.cursor(config_.name); })).value_or(config_.cursor_start);
  for (; poll.pages < kMaxPagesPerPoll && !interrupted_; ++poll.pages) {
    std::vector<nlohmann::json> rows;
    try {
      // Named, not a temporary of the co_await expression (GCC 12 destroys
      // such temporaries twice).
      std::function<std::vector<nlohmann::json>()> query = [database = database_, text = config_.query, cursor] {
        return database->rows(text, cursor, kPageRows);
      };
      rows = co_await on_worker(worker_, std::move(query));
    } catch (const SqlError& e) {
      if (!interrupted_) poll.problems.push_back("query failed: " + std::string(e.what()));
      co_return poll;
    }
    if (rows.empty()) co_return poll;
    std::vector<Observation> observations;
    for (const auto& row : rows) {
      std::string error = unreadable(row);
      if (error.empty() && map_records(config_.mappings, row, now, observations, error)) continue;
      ++poll.rejected;
      poll.problems.push_back("row " + excerpt(row) + ": " + error + "; skipped");
    }
    auto last = rows.back().find(config_.cursor_column);
    if (last == rows.back().end() || last->is_null() || last->is_binary()) {
      poll.problems.push_back("the query returns no '" + config_.cursor_column +
                              "' column (cursor_column); nothing committed");
      co_return poll;
    }
    const SourceCursor next{config_.name, cursor_text(*last)};
    if (next.value == cursor) {
      poll.problems.push_back("the cursor did not move past " + cursor +
                              "; the query must return rows after :cursor, in cursor order");
      co_return poll;
    }
    std::string error;
    if (!co_await state.run([&] { return intake.commit(observations, &next, error); })) {
      poll.problems.push_back("not committed, will retry from " + cursor + ": " + error);
      co_return poll;
    }
    poll.observations += static_cast<int>(observations.size());
    cursor = next.value;
  }
  co_return poll;
}

}  // namespace tactd
