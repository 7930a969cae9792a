// Logging for a service whose standard error is read by journald or a
// person at a terminal, and log fields that text from outside cannot forge.
//
// Every record is one line. Under journald (JOURNAL_STREAM names the file
// that standard error is) a line is `<N>message`, N the syslog priority the
// journal files it under (trace and debug 7, info 6, warning 4, error 3,
// critical 2), without a timestamp: the journal keeps its own. Elsewhere it
// is `2026-11-20T17:30:00.123+01:00 warning message`. In a message, control
// characters and bytes that are not UTF-8 are escaped as kv() escapes them
// (backslash and quote are left alone), so a record never spans lines.
#pragma once

#include <spdlog/common.h>

#include <optional>
#include <string>
#include <string_view>

namespace tactd {

// Makes the default spdlog logger ("tactd") write to standard error in the
// format above, at `level` and up, and flush from warnings up. Replaces the
// default logger each time it is called; call before the loop starts.
void setup_logging(spdlog::level::level_enum level);

// True when JOURNAL_STREAM is "<device>:<inode>" of the file open as `fd`:
// systemd connected it to the journal and it was not redirected since.
bool is_journal_stream(int fd);

// "trace", "debug", "info", "warn" (or "warning"), "error", any case;
// nullopt for anything else.
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view text);

// One log field, `key=value`, that stays one field on one line whatever
// `value` holds. The value is quoted ("...") when it is empty or holds a
// space, '=', '"', '\' or anything escaped. Escaped are: backslash and
// quote (\\, \"), newline, carriage return and tab (\n, \r, \t), other
// control characters including C1 ones (\xNN for each byte), and bytes that
// are not well-formed UTF-8 (\xNN). Characters of `key` other than letters,
// digits, '_', '.' and '-' become '_' (an empty key is '_').
//
//   spdlog::warn("source: poll failed {} {}", kv("source", name), kv("error", why));
std::string kv(std::string_view key, std::string_view value);

}  // namespace tactd
