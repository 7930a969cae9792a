// What a PostgreSQL statement takes and gives, without libpq: bound
// parameters, rows converted into a small typed form, and errors classified
// by whether retrying the transaction can help. Shared by the asynchronous
// Connection and the blocking SyncConnection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace tactd::pg {

// Why a statement failed, in the terms a caller decides by.
enum class ErrorKind {
  serialization_failure,  // SQLSTATE 40001: retry the transaction
  deadlock,               // 40P01: retry the transaction
  connection,             // 08xxx, 57P01-57P03, or the connection was lost: retry once reconnected
  unique_violation,       // 23505: the row exists (an idempotency key was already taken)
  constraint_violation,   // other 23xxx: the data is wrong for the schema
  syntax,                 // 42xxx: the statement is wrong
  other,                  // anything else the server said, or a client-side failure
};

struct Error {
  ErrorKind kind = ErrorKind::other;
  // The server's five characters. Client-side failures: 08006 (08001 when
  // connecting timed out) for a lost connection, else empty.
  std::string sqlstate;
  std::string message;  // for people: primary message, and the detail when there is one

  // Whether running the same transaction again can succeed: serialization
  // failures, deadlocks and lost connections; never a syntax error or a
  // constraint violation.
  bool retryable() const {
    return kind == ErrorKind::serialization_failure || kind == ErrorKind::deadlock || kind == ErrorKind::connection;
  }
};

// The kind of a SQLSTATE. `connection_bad`: the connection is gone, whatever
// the server (or nobody) said.
ErrorKind classify_sqlstate(std::string_view sqlstate, bool connection_bad = false);
std::string_view to_string(ErrorKind kind);

// A value of a row. Columns of type bool, int2/int4/int8, float4/float8 and
// NULL are converted; every other type (text, numeric, timestamptz, json,
// ...) stays the server's text form, to be parsed by the caller that knows
// what it asked for.
using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string>;

class Row {
 public:
  explicit Row(std::vector<Value> values) : values_(std::move(values)) {}
  std::size_t size() const { return values_.size(); }
  const Value& operator[](std::size_t column) const { return values_.at(column); }
  bool is_null(std::size_t column) const { return std::holds_alternative<std::monostate>(values_.at(column)); }
  // The value as that type; throws std::bad_variant_access when it is not
  // (a NULL included): a statement whose columns the caller misjudged is a bug.
  std::int64_t integer(std::size_t column) const { return std::get<std::int64_t>(values_.at(column)); }
  double real(std::size_t column) const { return std::get<double>(values_.at(column)); }
  bool boolean(std::size_t column) const { return std::get<bool>(values_.at(column)); }
  const std::string& text(std::size_t column) const { return std::get<std::string>(values_.at(column)); }

 private:
  std::vector<Value> values_;
};

// The outcome of one statement: rows and the count of rows it changed, or
// the error.
struct Result {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  std::int64_t affected = 0;  // INSERT/UPDATE/DELETE/...: rows changed; SELECT: rows returned
  std::optional<Error> error;

  bool ok() const { return !error; }
};

// Parameters $1, $2, ... of a statement, always sent apart from its text
// (never spliced into it), in the server's text form.
class Params {
 public:
  Params() = default;
  template <typename... Ts>
  requires(!(sizeof...(Ts) == 1 &&
             (std::is_same_v<std::remove_cvref_t<Ts>, Params> && ...))) explicit Params(Ts&&... values) {
    (add(std::forward<Ts>(values)), ...);
  }

  Params& add(std::nullopt_t) {
    values_.emplace_back(std::nullopt);
    return *this;
  }
  Params& add(std::string value) {
    values_.emplace_back(std::move(value));
    return *this;
  }
  Params& add(std::string_view value) { return add(std::string(value)); }
  Params& add(const char* value) { return add(std::string(value)); }
  Params& add(bool value) { return add(std::string(value ? "true" : "false")); }
  Params& add(std::int64_t value) { return add(std::to_string(value)); }
  Params& add(int value) { return add(std::to_string(value)); }
  Params& add(double value);
  template <typename T>
  Params& add(const std::optional<T>& value) {
    return value ? add(*value) : add(std::nullopt);
  }

  const std::vector<std::optional<std::string>>& values() const { return values_; }

 private:
  std::vector<std::optional<std::string>> values_;
};

}  // namespace tactd::pg
