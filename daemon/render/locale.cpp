#include "render/locale.h"

#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace tactd {
namespace {

// The language part of "nl", "nl-NL" or "nl_BE", compared without case.
bool is_dutch(std::string_view locale) {
  const std::string_view language = locale.substr(0, locale.find_first_of("-_"));
  return language.size() == 2 && (language[0] | 0x20) == 'n' && (language[1] | 0x20) == 'l';
}

constexpr std::array<const char*, 12> kMonthsEn{"January", "February", "March",     "April",   "May",      "June",
                                                "July",    "August",   "September", "October", "November", "December"};
constexpr std::array<const char*, 12> kMonthsNl{"januari", "februari", "maart",     "april",   "mei",      "juni",
                                                "juli",    "augustus", "september", "oktober", "november", "december"};
constexpr std::array<const char*, 7> kDaysEn{"Sunday",   "Monday", "Tuesday", "Wednesday",
                                             "Thursday", "Friday", "Saturday"};
constexpr std::array<const char*, 7> kDaysNl{"zondag",    "maandag", "dinsdag", "woensdag",
                                             "donderdag", "vrijdag", "zaterdag"};

// The sign of a currency, or its ISO code (upper case) when it has none here.
std::string symbol(std::string_view currency, bool& is_code) {
  std::string code(currency);
  for (char& ch : code) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  is_code = false;
  if (code == "EUR") return "€";
  if (code == "USD") return "$";
  if (code == "GBP") return "£";
  is_code = !code.empty();
  return code;
}

// 123450 cents -> "1,234.50" with the given separators.
std::string group(long long cents, char thousands, char decimal) {
  std::string whole = std::to_string(cents / 100);
  for (int i = static_cast<int>(whole.size()) - 3; i > 0; i -= 3) whole.insert(static_cast<size_t>(i), 1, thousands);
  char fraction[4];
  std::snprintf(fraction, sizeof fraction, "%02lld", cents % 100);
  return whole + decimal + fraction;
}

std::string date_text(const LocalTime& local, std::string_view locale) {
  const auto& months = is_dutch(locale) ? kMonthsNl : kMonthsEn;
  return std::to_string(local.day) + " " + months[local.month - 1] + " " + std::to_string(local.year);
}

std::string time_text(const LocalTime& local) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%02d:%02d", local.hour, local.minute);
  return buffer;
}

}  // namespace

std::string format_money(double amount, std::string_view currency, std::string_view locale) {
  const long long cents = std::llround(std::fabs(amount) * 100);
  const bool negative = amount < 0 && cents != 0;
  bool is_code = false;
  const std::string sign_symbol = symbol(currency, is_code);
  if (is_dutch(locale))
    return sign_symbol + (sign_symbol.empty() ? "" : " ") + (negative ? "-" : "") + group(cents, '.', ',');
  return std::string(negative ? "-" : "") + sign_symbol + (is_code ? " " : "") + group(cents, ',', '.');
}

std::string format_date(Timestamp t, std::string_view zone, std::string_view locale) {
  return date_text(to_local(t, zone), locale);
}

std::string format_time(Timestamp t, std::string_view zone) { return time_text(to_local(t, zone)); }

std::string format_date_time(Timestamp t, std::string_view zone, std::string_view locale) {
  const LocalTime local = to_local(t, zone);
  const auto& days = is_dutch(locale) ? kDaysNl : kDaysEn;
  return std::string(days[local.weekday]) + " " + date_text(local, locale) + ", " + time_text(local);
}

}  // namespace tactd
