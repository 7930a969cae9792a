// Time, durations and time zones as tactd sees them.
//
// Every instant is a UTC `Timestamp` with millisecond precision. Text is
// RFC 3339 (`2026-11-20T17:30:00+01:00`, `...Z`, optional fraction); local
// views are computed through the IANA time-zone database of the system
// (/usr/share/zoneinfo), so nothing here reads the wall clock.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tactd {

using Duration = std::chrono::milliseconds;
using Timestamp = std::chrono::sys_time<Duration>;

// Parses RFC 3339 date-time with a `Z` or `±hh:mm` offset. On failure returns
// nullopt and, when `error` is given, says what is wrong.
std::optional<Timestamp> parse_rfc3339(std::string_view text, std::string* error = nullptr);

// Parses a calendar date `YYYY-MM-DD` as midnight in UTC, or a full RFC 3339
// date-time; used for fields such as `due_date` that may be either.
std::optional<Timestamp> parse_date_or_time(std::string_view text);

// Formats as RFC 3339 in the given IANA zone (offset included), or in UTC
// with `Z` when `zone` is empty or unknown. Fractions only when non-zero.
std::string format_rfc3339(Timestamp t, std::string_view zone = {});

// Parses `30s`, `30m`, `2h`, `7d` and sums such as `1h30m`. Negative amounts
// are refused, and so is anything longer than kMaxDurationDays, far beyond
// any sensible setting and far from overflowing a Duration; callers check
// their own, tighter ranges.
inline constexpr long long kMaxDurationDays = 36500;  // a hundred years
std::optional<Duration> parse_duration(std::string_view text, std::string* error = nullptr);

// True when `zone` names a zone in the system's time-zone database.
bool is_known_time_zone(std::string_view zone);

// A broken-down local time in an IANA zone.
struct LocalTime {
  int year = 0;
  unsigned month = 0;    // 1..12
  unsigned day = 0;      // 1..31
  unsigned weekday = 0;  // 0 = Sunday .. 6 = Saturday
  int hour = 0;
  int minute = 0;
  int second = 0;
  std::chrono::seconds offset{0};  // local - UTC
};

// Converts `t` to local time in `zone`; an empty or unknown zone means UTC.
LocalTime to_local(Timestamp t, std::string_view zone);

// The first instant at or after `after` whose local time of day in `zone`
// is `minute_of_day` (0..1439). A local time skipped by a daylight-saving
// change resolves to the instant of the change.
Timestamp next_local_time(Timestamp after, int minute_of_day, std::string_view zone);

}  // namespace tactd
