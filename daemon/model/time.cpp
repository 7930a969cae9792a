#include "model/time.h"

#include <date/date.h>
#include <date/tz.h>

#include <cctype>
#include <charconv>

namespace tactd {
namespace {

// Reads exactly `width` digits at `pos`; advances `pos`.
bool read_digits(std::string_view text, size_t& pos, size_t width, int& out) {
  if (pos + width > text.size()) return false;
  int value = 0;
  for (size_t i = 0; i < width; ++i) {
    char c = text[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + (c - '0');
  }
  pos += width;
  out = value;
  return true;
}

bool expect(std::string_view text, size_t& pos, char c) {
  if (pos < text.size() && text[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

bool fail(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return false;
}

const date::time_zone* find_zone(std::string_view zone) {
  if (zone.empty()) return nullptr;
  try {
    return date::locate_zone(zone);
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace

std::optional<Timestamp> parse_rfc3339(std::string_view text, std::string* error) {
  const std::string quoted = "'" + std::string(text) + "'";
  size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!(read_digits(text, pos, 4, year) && expect(text, pos, '-') && read_digits(text, pos, 2, month) &&
        expect(text, pos, '-') && read_digits(text, pos, 2, day))) {
    fail(error, quoted + " is not an RFC 3339 date-time (expected YYYY-MM-DDThh:mm:ss and an offset)");
    return std::nullopt;
  }
  if (!(expect(text, pos, 'T') || expect(text, pos, 't') || expect(text, pos, ' '))) {
    fail(error, quoted + " has no time of day (expected 'T' and hh:mm:ss after the date)");
    return std::nullopt;
  }
  if (!(read_digits(text, pos, 2, hour) && expect(text, pos, ':') && read_digits(text, pos, 2, minute) &&
        expect(text, pos, ':') && read_digits(text, pos, 2, second))) {
    fail(error, quoted + " has a malformed time of day (expected hh:mm:ss)");
    return std::nullopt;
  }
  int millis = 0;
  if (expect(text, pos, '.')) {
    int digits = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (digits < 3) millis = millis * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) {
      fail(error, quoted + " has an empty fraction of a second");
      return std::nullopt;
    }
    for (; digits < 3; ++digits) millis *= 10;
  }
  int offset_minutes = 0;
  if (expect(text, pos, 'Z') || expect(text, pos, 'z')) {
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!(read_digits(text, pos, 2, oh) && expect(text, pos, ':') && read_digits(text, pos, 2, om)) || oh > 23 ||
        om > 59) {
      fail(error, quoted + " has a malformed offset (expected Z or +hh:mm)");
      return std::nullopt;
    }
    offset_minutes = sign * (oh * 60 + om);
  } else {
    fail(error, quoted + " has no time-zone offset (expected Z or +hh:mm after the time)");
    return std::nullopt;
  }
  if (pos != text.size()) {
    fail(error, quoted + " has unexpected text after the offset");
    return std::nullopt;
  }
  date::year_month_day ymd{date::year{year}, date::month{static_cast<unsigned>(month)},
                           date::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) {
    fail(error, quoted + " is not a valid calendar date");
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 60) {
    fail(error, quoted + " is not a valid time of day");
    return std::nullopt;
  }
  auto t = Timestamp{date::sys_days{ymd}} + std::chrono::hours{hour} + std::chrono::minutes{minute} +
           std::chrono::seconds{second} + std::chrono::milliseconds{millis} - std::chrono::minutes{offset_minutes};
  return t;
}

std::optional<Timestamp> parse_date_or_time(std::string_view text) {
  if (text.size() == 10) {
    size_t pos = 0;
    int year, month, day;
    if (read_digits(text, pos, 4, year) && expect(text, pos, '-') && read_digits(text, pos, 2, month) &&
        expect(text, pos, '-') && read_digits(text, pos, 2, day)) {
      date::year_month_day ymd{date::year{year}, date::month{static_cast<unsigned>(month)},
                               date::day{static_cast<unsigned>(day)}};
      if (ymd.ok()) return Timestamp{date::sys_days{ymd}};
    }
    return std::nullopt;
  }
  return parse_rfc3339(text);
}

std::string format_rfc3339(Timestamp t, std::string_view zone) {
  const LocalTime local = to_local(t, zone);
  const auto millis = (t.time_since_epoch() % std::chrono::seconds{1}).count();
  char buffer[64];
  int n = std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02d", local.year, local.month, local.day,
                        local.hour, local.minute, local.second);
  std::string out(buffer, static_cast<size_t>(n));
  if (millis != 0) {
    std::snprintf(buffer, sizeof buffer, ".%03d", static_cast<int>((millis + 1000) % 1000));
    out += buffer;
  }
  if (find_zone(zone) == nullptr) return out + "Z";
  const auto offset_minutes = std::chrono::duration_cast<std::chrono::minutes>(local.offset).count();
  const long magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  std::snprintf(buffer, sizeof buffer, "%c%02ld:%02ld", offset_minutes < 0 ? '-' : '+', magnitude / 60, magnitude % 60);
  return out + buffer;
}

std::optional<Duration> parse_duration(std::string_view text, std::string* error) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (text.empty()) {
    fail(error, "empty duration (expected a number and a unit: 30s, 30m, 2h, 7d)");
    return std::nullopt;
  }
  Duration total{0};
  size_t pos = 0;
  while (pos < text.size()) {
    long long amount = 0;
    auto [end, ec] = std::from_chars(text.data() + pos, text.data() + text.size(), amount);
    if (ec == std::errc::result_out_of_range || (ec == std::errc{} && amount > kMaxDurationDays * 86400)) {
      fail(error,
           quoted + " is longer than any duration tactd uses (at most " + std::to_string(kMaxDurationDays) + "d)");
      return std::nullopt;
    }
    if (ec != std::errc{} || end == text.data() + pos || amount < 0) {
      fail(error, quoted + " is not a duration (expected a number and a unit: 30s, 30m, 2h, 7d)");
      return std::nullopt;
    }
    pos = static_cast<size_t>(end - text.data());
    if (pos >= text.size()) {
      fail(error, quoted + " has a number without a unit (use s, m, h or d)");
      return std::nullopt;
    }
    switch (text[pos]) {
      case 's':
        total += std::chrono::seconds{amount};
        break;
      case 'm':
        total += std::chrono::minutes{amount};
        break;
      case 'h':
        total += std::chrono::hours{amount};
        break;
      case 'd':
        total += std::chrono::days{amount};
        break;
      default:
        fail(error, quoted + " has an unknown unit '" + std::string(1, text[pos]) + "' (use s, m, h or d)");
        return std::nullopt;
    }
    ++pos;
    if (total > std::chrono::days{kMaxDurationDays}) {
      fail(error,
           quoted + " is longer than any duration tactd uses (at most " + std::to_string(kMaxDurationDays) + "d)");
      return std::nullopt;
    }
  }
  return total;
}

bool is_known_time_zone(std::string_view zone) { return find_zone(zone) != nullptr; }

LocalTime to_local(Timestamp t, std::string_view zone) {
  LocalTime out;
  const auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  date::local_seconds local{seconds.time_since_epoch()};
  if (const date::time_zone* tz = find_zone(zone)) {
    const auto info = tz->get_info(seconds);
    out.offset = info.offset;
    local = date::local_seconds{seconds.time_since_epoch() + info.offset};
  }
  const auto day = date::floor<date::days>(local);
  const date::year_month_day ymd{day};
  const date::hh_mm_ss<std::chrono::seconds> hms{local - day};
  out.year = static_cast<int>(ymd.year());
  out.month = static_cast<unsigned>(ymd.month());
  out.day = static_cast<unsigned>(ymd.day());
  out.weekday = date::weekday{day}.c_encoding();
  out.hour = static_cast<int>(hms.hours().count());
  out.minute = static_cast<int>(hms.minutes().count());
  out.second = static_cast<int>(hms.seconds().count());
  return out;
}

Timestamp next_local_time(Timestamp after, int minute_of_day, std::string_view zone) {
  const LocalTime local = to_local(after, zone);
  const date::local_days today{date::year{local.year} / date::month{local.month} / date::day{local.day}};
  const date::time_zone* tz = find_zone(zone);
  for (int add = 0; add < 3; ++add) {
    const auto wanted = date::local_seconds{today + date::days{add}} + std::chrono::minutes{minute_of_day};
    Timestamp t;
    if (tz) {
      t = std::chrono::time_point_cast<Duration>(tz->to_sys(wanted, date::choose::latest));
    } else {
      t = Timestamp{std::chrono::duration_cast<Duration>(wanted.time_since_epoch())};
    }
    if (t >= after) return t;
  }
  return after;  // unreachable: some day within three has the time
}

}  // namespace tactd
