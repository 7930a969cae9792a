#include "ops/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "ops/utf8.h"

namespace tactd {
namespace {

// Custom pattern flags: %* the journal priority, %~ the escaped message.
constexpr char kPriorityFlag = '*';
constexpr char kMessageFlag = '~';
constexpr const char* kJournalPattern = "%*%~";
constexpr const char* kTerminalPattern = "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %~";

void append_hex(std::string& out, unsigned char byte) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  out += "\\x";
  out += kDigits[byte >> 4];
  out += kDigits[byte & 0xF];
}

// Appends `text` with control characters (C0, DEL, C1) and ill-formed UTF-8
// escaped; with `field`, backslash and quote too. Returns whether anything
// was escaped.
bool append_escaped(std::string& out, std::string_view text, bool field) {
  bool escaped = false;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = utf8::sequence_length(text, at);
    const auto byte = static_cast<unsigned char>(text[at]);
    if (length == 0) {
      append_hex(out, byte);
      escaped = true;
      ++at;
      continue;
    }
    if (length == 2 && byte == 0xC2 && static_cast<unsigned char>(text[at + 1]) < 0xA0) {  // C1: U+0080..U+009F
      append_hex(out, byte);
      append_hex(out, static_cast<unsigned char>(text[at + 1]));
      escaped = true;
      at += 2;
      continue;
    }
    if (length > 1) {
      out.append(text.substr(at, length));
      at += length;
      continue;
    }
    ++at;
    if (byte == '\n') {
      out += "\\n";
    } else if (byte == '\r') {
      out += "\\r";
    } else if (byte == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7F) {
      append_hex(out, byte);
    } else if (field && (byte == '\\' || byte == '"')) {
      out += '\\';
      out += static_cast<char>(byte);
    } else {
      out += static_cast<char>(byte);
      continue;
    }
    escaped = true;
  }
  return escaped;
}

// sd-daemon.h's SD_DEBUG .. SD_CRIT prefixes.
const char* priority_prefix(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return "<7>";
    case spdlog::level::info:
      return "<6>";
    case spdlog::level::warn:
      return "<4>";
    case spdlog::level::err:
      return "<3>";
    case spdlog::level::critical:
      return "<2>";
    default:
      return "<6>";
  }
}

class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&, spdlog::memory_buf_t& out) override {
    const std::string_view prefix = priority_prefix(message.level);
    out.append(prefix.data(), prefix.data() + prefix.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<PriorityFlag>(); }
};

class MessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&, spdlog::memory_buf_t& out) override {
    std::string escaped;
    append_escaped(escaped, std::string_view(message.payload.data(), message.payload.size()), false);
    out.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<MessageFlag>(); }
};

// The formatter for `journal` or a terminal.
std::unique_ptr<spdlog::formatter> log_formatter(bool journal) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<PriorityFlag>(kPriorityFlag);
  formatter->add_flag<MessageFlag>(kMessageFlag);
  formatter->set_pattern(journal ? kJournalPattern : kTerminalPattern);
  return formatter;
}

}  // namespace

bool is_journal_stream(int fd) {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat st {};
  if (fstat(fd, &st) != 0) return false;
  unsigned long long device = 0, inode = 0;
  char rest = 0;
  if (std::sscanf(stream, "%llu:%llu%c", &device, &inode, &rest) != 2) return false;
  return device == static_cast<unsigned long long>(st.st_dev) && inode == static_cast<unsigned long long>(st.st_ino);
}

void setup_logging(spdlog::level::level_enum level) {
  const bool journal = is_journal_stream(fileno(stderr));
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(journal ? spdlog::color_mode::never
                                                                            : spdlog::color_mode::automatic);
  auto logger = std::make_shared<spdlog::logger>("tactd", std::move(sink));
  logger->set_formatter(log_formatter(journal));
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "trace") return spdlog::level::trace;
  if (lower == "debug") return spdlog::level::debug;
  if (lower == "info") return spdlog::level::info;
  if (lower == "warn" || lower == "warning") return spdlog::level::warn;
  if (lower == "error") return spdlog::level::err;
  return std::nullopt;
}

std::string kv(std::string_view key, std::string_view value) {
  std::string out;
  out.reserve(key.size() + value.size() + 3);
  const auto plain = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  };
  for (char c : key) out += plain(c) ? c : '_';
  if (key.empty()) out += '_';
  out += '=';
  std::string escaped;
  const bool changed = append_escaped(escaped, value, true);
  const bool quote = changed || value.empty() || value.find_first_of(" =\"\\") != std::string_view::npos;
  if (quote) out += '"';
  out += escaped;
  if (quote) out += '"';
  return out;
}

}  // namespace tactd
