// The SQL polling source: a query against a shop's own database, read
// incrementally by a cursor column. The database is behind SqlDatabase, so
// that a PostgreSQL implementation can be added beside the SQLite one.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "sources/source.h"

namespace tactd {

// Blocking: SqlSource calls it on a worker thread, one call at a time.
class SqlDatabase {
 public:
  virtual ~SqlDatabase() = default;
  // Runs `query` with `:cursor` bound to `cursor`: as an integer when it is
  // one, as the smallest integer when it is empty (before every value), else
  // as text. Each row as a JSON object keyed by column name, a BLOB as a
  // JSON binary value; the first `max_rows` rows at most. Throws SqlError.
  virtual std::vector<nlohmann::json> rows(const std::string& query, const std::string& cursor,
                                           std::size_t max_rows) = 0;
  // Makes a running rows() end soon with SqlError; safe from any thread.
  virtual void interrupt() = 0;

  // A read-only connection to an SQLite file. Throws SqlError.
  static std::unique_ptr<SqlDatabase> open_sqlite(const std::filesystem::path& file);
};

class SqlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The operator's query runs on a thread of the source's own, so that a slow
// query, or one waiting for the shop's writers (its busy timeout), never
// holds the event loop: the intake, the timers and the deliveries go on.
// The pages are committed on the loop that awaits poll().
class SqlSource {
 public:
  // `config` is a validated sqlite source with a mapping. Call on the loop.
  SqlSource(SourceConfig config, std::unique_ptr<SqlDatabase> database);
  // Interrupts a running query and waits for the worker to end it. A poll
  // that awaits the query cannot be destroying the source, so it is done.
  ~SqlSource();
  SqlSource(const SqlSource&) = delete;
  SqlSource& operator=(const SqlSource&) = delete;

  struct Poll {
    int pages = 0;
    int observations = 0;
    int rejected = 0;  // rows that cannot be read (BLOB, text not UTF-8) or mapped; skipped, said in `problems`
    std::vector<std::string> problems;
  };

  // Reads page after page of rows after the committed cursor, each page
  // (at most kPageRows rows, whatever the query's LIMIT) committed with the
  // cursor of its last row, until a page comes back empty or
  // kMaxPagesPerPoll pages were read. `now` stamps rows whose mapping names
  // no time. `intake` must outlive the poll; one poll at a time.
  boost::asio::awaitable<Poll> poll(Intake& intake, Timestamp now);

  // Makes the running poll end soon (the daemon stops): its query, if one
  // runs, fails as interrupted, and no further page is read. The next poll
  // runs as usual. Safe from any thread.
  void interrupt();
  // Interrupts the running query, if any, and waits for the worker to hand
  // its outcome to the loop: after this no query runs and none will, so the
  // loop's io_context may be destroyed (with the poll awaiting it). Call
  // from the thread that destroys the loop, not on it while it runs.
  void stop();

  static constexpr int kMaxPagesPerPoll = 100;
  static constexpr std::size_t kPageRows = 1000;

 private:
  SourceConfig config_;
  std::shared_ptr<SqlDatabase> database_;
  std::atomic<bool> interrupted_{false};
  boost::asio::thread_pool worker_{1};
};

}  // namespace tactd
