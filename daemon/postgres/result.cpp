#include "postgres/result.h"

#include <charconv>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "postgres/libpq_result.h"

namespace tactd::pg {
namespace {

// Type OIDs of pg_type that never change (catalog/pg_type.dat).
constexpr Oid kBool = 16;
constexpr Oid kInt8 = 20;
constexpr Oid kInt2 = 21;
constexpr Oid kInt4 = 23;
constexpr Oid kFloat4 = 700;
constexpr Oid kFloat8 = 701;

Value convert_value(Oid type, const char* text, int length) {
  std::string_view s(text, static_cast<std::size_t>(length));
  switch (type) {
    case kBool:
      return s == "t";
    case kInt2:
    case kInt4:
    case kInt8: {
      std::int64_t n = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec == std::errc() && end == s.data() + s.size()) return n;
      break;
    }
    case kFloat4:
    case kFloat8:
      if (s == "NaN" || s == "Infinity" || s == "-Infinity") break;  // left as text: rare, and not comparable
      return std::strtod(std::string(s).c_str(), nullptr);
    default:
      break;
  }
  return std::string(s);
}

std::string message_of(const PGresult* result, const PGconn* conn) {
  std::string message;
  if (result) {
    if (const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY)) message = primary;
    if (const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL))
      message += std::string(" (") + detail + ")";
    if (message.empty()) message = PQresultErrorMessage(result);
  }
  if (message.empty() && conn) message = PQerrorMessage(conn);
  // libpq's messages span lines ("...failed: Connection refused\n\tIs the server running..."): one line for logs.
  std::string line;
  for (char c : message) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
    if (c == ' ' && (line.empty() || line.back() == ' ')) continue;
    line += c;
  }
  message = std::move(line);
  while (!message.empty() && message.back() == ' ') message.pop_back();
  if (message.empty()) message = "unknown PostgreSQL error";
  return message;
}

}  // namespace

ErrorKind classify_sqlstate(std::string_view sqlstate, bool connection_bad) {
  if (connection_bad) return ErrorKind::connection;
  if (sqlstate == "40001") return ErrorKind::serialization_failure;
  if (sqlstate == "40P01") return ErrorKind::deadlock;
  // 08: connection exception; 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now.
  if (sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03")
    return ErrorKind::connection;
  if (sqlstate == "23505") return ErrorKind::unique_violation;
  if (sqlstate.starts_with("23")) return ErrorKind::constraint_violation;
  if (sqlstate.starts_with("42")) return ErrorKind::syntax;
  return ErrorKind::other;
}

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::serialization_failure:
      return "serialization failure";
    case ErrorKind::deadlock:
      return "deadlock";
    case ErrorKind::connection:
      return "connection";
    case ErrorKind::unique_violation:
      return "unique violation";
    case ErrorKind::constraint_violation:
      return "constraint violation";
    case ErrorKind::syntax:
      return "syntax";
    case ErrorKind::other:
      break;
  }
  return "other";
}

Params& Params::add(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);  // shortest form that reads back exactly
  return add(std::string(buffer, ec == std::errc() ? end : buffer));
}

Result convert(const PGresult* result, const PGconn* conn) {
  Result out;
  const bool bad = conn && PQstatus(conn) == CONNECTION_BAD;
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY) {
    const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    std::string sqlstate = state ? state : "";
    out.error = Error{classify_sqlstate(sqlstate, bad || !result), std::move(sqlstate), message_of(result, conn)};
    return out;
  }
  const int columns = PQnfields(result);
  const int rows = PQntuples(result);
  out.columns.reserve(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c) out.columns.emplace_back(PQfname(result, c));
  out.rows.reserve(static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    std::vector<Value> values;
    values.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(result, r, c)) {
        values.emplace_back(std::monostate{});
      } else {
        values.push_back(convert_value(PQftype(result, c), PQgetvalue(result, r, c), PQgetlength(result, r, c)));
      }
    }
    out.rows.emplace_back(std::move(values));
  }
  const char* tuples = PQcmdTuples(const_cast<PGresult*>(result));
  out.affected = (tuples && *tuples) ? std::strtoll(tuples, nullptr, 10) : rows;
  return out;
}

Error connection_error(const PGconn* conn, ErrorKind kind) {
  return Error{kind, kind == ErrorKind::connection ? "08006" : "", message_of(nullptr, conn)};
}

BoundParams::BoundParams(const Params& params) {
  pointers.reserve(params.values().size());
  for (const auto& value : params.values()) pointers.push_back(value ? value->c_str() : nullptr);
}

void log_notices(PGconn* conn) {
  PQsetNoticeReceiver(
      conn,
      [](void*, const PGresult* notice) {
        const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
        const char* text = PQresultErrorField(notice, PG_DIAG_MESSAGE_PRIMARY);
        if (!text) return;
        if (severity && (std::string_view(severity) == "NOTICE" || std::string_view(severity) == "DEBUG" ||
                         std::string_view(severity) == "LOG" || std::string_view(severity) == "INFO"))
          spdlog::debug("postgres: the server notes: {}", text);
        else
          spdlog::warn("postgres: the server warns: {}", text);
      },
      nullptr);
}

}  // namespace tactd::pg
