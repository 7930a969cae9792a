#include "ops/service_notifier.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstring>
#include <ctime>

#include "ops/utf8.h"

namespace tactd {
namespace {

// One line of text: control characters become spaces, invalid UTF-8 bytes
// become '?', and the whole is cut at a character boundary to kMaxStatusBytes.
std::string one_line(std::string_view text) {
  std::string out;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = utf8::sequence_length(text, at);
    std::string_view piece = length == 0 ? std::string_view("?") : text.substr(at, length);
    if (length == 1 && (static_cast<unsigned char>(text[at]) < 0x20 || text[at] == 0x7f)) piece = " ";
    if (out.size() + piece.size() > ServiceNotifier::kMaxStatusBytes) break;
    out += piece;
    at += length == 0 ? 1 : length;
  }
  return out;
}

std::uint64_t monotonic_usec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000 + static_cast<std::uint64_t>(now.tv_nsec) / 1'000;
}

}  // namespace

void ServiceNotifier::ready(std::string_view status) { send("READY=1\nSTATUS=" + one_line(status)); }

void ServiceNotifier::reloading() { send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec())); }

void ServiceNotifier::stopping() { send("STOPPING=1"); }

void ServiceNotifier::status(std::string_view status) { send("STATUS=" + one_line(status)); }

void ServiceNotifier::watchdog() { send("WATCHDOG=1"); }

std::optional<std::chrono::microseconds> ServiceNotifier::watchdog_interval() const {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds{usec};
}

void ServiceNotifier::send(const std::string& message) {
  const int result = sd_notify(0, message.c_str());
  if (result >= 0) {
    if (failing_) spdlog::info("systemd: notifications get through again");
    failing_ = false;
    return;
  }
  if (!failing_) {
    spdlog::warn("systemd: cannot notify the service manager: {}; the service keeps running", std::strerror(-result));
    failing_ = true;
  }
}

}  // namespace tactd
