#include "render/locale.h"

#include <array>
#include <cmath>
#include <cstdio>

namespace tactd {
namespace {

bool is_dutch(std::string_view locale) { return locale.substr(0, 2) == "nl"; }

constexpr std::array<const char*, 12> kMonthsEn{"January", "February", "March",     "April",   "May",      "June",
                                                "July",    "August",   "September", "October", "November", "December"};
constexpr std::array<const char*, 12> kMonthsNl{"januari", "februari", "maart",     "april",   "mei",      "juni",
                                                "juli",    "augustus", "september", "oktober", "november", "december"};
constexpr std::array<const char*, 7> kDaysEn{"Sunday",   "Monday", "Tuesday", "Wednesday",
                                             "Thursday", "Friday", "Saturday"};
constexpr std::array<const char*, 7> kDaysNl{"zondag",    "maandag", "dinsdag", "woensdag",
                                             "donderdag", "vrijdag", "zaterdag"};

std::string symbol(std::string_view currency) {
  if (currency == "EUR") return "€";
  if (currency == "USD") return "$";
  if (currency == "GBP") return "£";
  return std::string(currency);
}

// "1234.5" -> "1,234.50" with the given separators.
std::string group(long long cents, char thousands, char decimal) {
  std::string whole = std::to_string(cents / 100);
  for (int i = static_cast<int>(whole.size()) - 3; i > 0; i -= 3) whole.insert(static_cast<size_t>(i), 1, thousands);
  char fraction[4];
  std::snprintf(fraction, sizeof fraction, "%02lld", cents % 100);
  return whole + decimal + fraction;
}

}  // namespace

std::string format_money(double amount, std::string_view currency, std::string_view locale) {
  const long long cents = std::llround(std::fabs(amount) * 100);
  const bool negative = amount < 0 && cents != 0;
  const std::string sign_symbol = symbol(currency);
  const bool is_code = sign_symbol.size() == 3 && sign_symbol == currency;
  if (is_dutch(locale)) return sign_symbol + " " + (negative ? "-" : "") + group(cents, '.', ',');
  return std::string(negative ? "-" : "") + sign_symbol + (is_code ? " " : "") + group(cents, ',', '.');
}

std::string format_date(Timestamp t, std::string_view zone, std::string_view locale) {
  const LocalTime local = to_local(t, zone);
  const auto& months = is_dutch(locale) ? kMonthsNl : kMonthsEn;
  return std::to_string(local.day) + " " + months[local.month - 1] + " " + std::to_string(local.year);
}

std::string format_time(Timestamp t, std::string_view zone) {
  const LocalTime local = to_local(t, zone);
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%02d:%02d", local.hour, local.minute);
  return buffer;
}

std::string format_date_time(Timestamp t, std::string_view zone, std::string_view locale) {
  const LocalTime local = to_local(t, zone);
  const auto& days = is_dutch(locale) ? kDaysNl : kDaysEn;
  return std::string(days[local.weekday]) + " " + format_date(t, zone, locale) + ", " + format_time(t, zone);
}

}  // namespace tactd
