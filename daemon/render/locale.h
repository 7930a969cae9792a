// Locale-aware formatting of money and time for messages. Locales are BCP 47
// language tags; `nl` and `en` are known, anything else formats as `en`.
#pragma once

#include <string>
#include <string_view>

#include "model/time.h"

namespace tactd {

// "€ 31,40" (nl), "€31.40" (en); thousands grouped ("€ 1.234,50",
// "€1,234.50"); EUR €, USD $, GBP £, other currencies by code ("CHF 12.00").
std::string format_money(double amount, std::string_view currency, std::string_view locale);

// "vrijdag 20 november 2026, 18:00" (nl), "Friday 20 November 2026, 18:00" (en),
// in the IANA zone `zone` (UTC when empty or unknown).
std::string format_date_time(Timestamp t, std::string_view zone, std::string_view locale);

// "20 november 2026" (nl), "20 November 2026" (en).
std::string format_date(Timestamp t, std::string_view zone, std::string_view locale);

// "18:00"
std::string format_time(Timestamp t, std::string_view zone);

}  // namespace tactd
