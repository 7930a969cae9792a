// The operators' console: server-rendered HTML pages under /console on the
// admin endpoint, for people with a browser and the admin token.
//
//   GET  /console/login            the login form (the admin token)
//   POST /console/login            token -> a session cookie, 303 to the outbox;
//                                  429 after 5 wrong admin tokens in a minute
//                                  (ops/token_throttle.h)
//   POST /console/logout           ends the session, 303 to the login form
//   GET  /console/outbox[?status=S] counts by status and the newest rows of S
//   POST /console/outbox/retry     id -> what `tactd outbox retry` does
//   POST /console/outbox/drop      id -> what `tactd outbox drop` does
//   GET  /console/customer[?q=X]   a customer's timeline by id, email or phone
//   GET  /console/rules            each rule's last 24 hours, a chart per hour
//   GET  /console/reloads          the last reloads and their problems
//   GET  /console/templates        every template rendered with example data
//   GET  /console/console.css      the style sheet (no session needed)
//
// Security (docs/console.md): every page but the login form and the style
// sheet answers 303 to the login form without a valid session; the session
// cookie is random, HttpOnly, SameSite=Strict, Path=/console and expires;
// sessions live in memory only and are dropped when the token changes. Every
// POST must come from a page of the console (its Origin, or without one its
// Referer, names the host the request was sent to), and every POST but the
// login must carry the session's CSRF token (compared in constant time):
// else 403 with what is missing. Every answer carries a strict
// Content-Security-Policy (no inline script), nosniff, Referrer-Policy
// same-origin and X-Frame-Options DENY. Tokens and cookies are never logged.
//
// A Console is used on the loop only; it is not thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/clock.h"
#include "model/time.h"
#include "net/http_server.h"
#include "ops/token_throttle.h"
#include "pipeline/snapshot.h"
#include "store/store.h"

namespace tactd {

// One reload of the configuration, as the console lists it.
struct ReloadRecord {
  Timestamp at;
  bool ok = false;                    // false: refused, the running configuration stayed
  std::vector<std::string> problems;  // Diagnostic::str() lines, "file:line:col: what"
};

// The last reloads, newest first, at most kMax: the daemon adds one per
// reload (SIGHUP), the console shows them.
class ReloadLog {
 public:
  static constexpr std::size_t kMax = 20;
  void add(ReloadRecord record);
  const std::deque<ReloadRecord>& records() const { return records_; }

 private:
  std::deque<ReloadRecord> records_;
};

// Compares two secrets without leaking where they first differ.
bool same_secret(std::string_view a, std::string_view b);

// A logged-in browser: `id` is the cookie's value, `csrf` the token every
// form of its pages carries. Both are 64 hex digits from the system's CSPRNG.
struct ConsoleSession {
  std::string id;
  std::string csrf;
  Timestamp expires;
};

// The sessions in memory. Lookups go through a hash of the id, so that the
// map's comparisons say nothing about the ids it holds.
class ConsoleSessions {
 public:
  static constexpr std::size_t kMax = 64;  // the oldest goes when a new one would exceed it
  static constexpr auto kLifetime = std::chrono::hours{8};

  // A new session, valid until now + kLifetime.
  ConsoleSession open(Timestamp now);
  // The session with cookie value `id`, unless unknown or expired at `now`
  // (an expired one is forgotten).
  std::optional<ConsoleSession> find(std::string_view id, Timestamp now);
  void close(std::string_view id);
  void clear();
  std::size_t size() const { return by_hash_.size(); }

 private:
  std::map<std::string, ConsoleSession> by_hash_;
};

// Why a POST is not from a console page, or empty when it is: its Origin
// header (or, without one, its Referer) must name http(s)://<Host>.
std::string cross_site_problem(const HttpRequest& request);

// The fields of an application/x-www-form-urlencoded body (or query
// string): later duplicates are ignored; broken escapes are kept as they are.
std::map<std::string, std::string> form_fields(std::string_view body);

// Renders console page `page` ("login", "outbox", "customer", "rules",
// "reloads", "templates", "problem"; the templates are embedded in the
// binary) inside the common layout with `data`: every value is HTML-escaped,
// and only the rendered page itself is put into the layout unescaped.
// Throws std::invalid_argument for an unknown page.
std::string render_console_page(std::string_view page, const nlohmann::json& data);

// The SVG chart of messages per hour by kind and its table: `hours` holds
// the start of each hour, `counts[kind][i]` the messages of hour i.
nlohmann::json hourly_chart(const std::vector<Timestamp>& hours,
                            const std::map<std::string, std::vector<std::size_t>>& counts, std::string_view zone);

// What the console shows and acts on. Everything referred to must outlive
// the Console.
struct ConsoleContext {
  Store* store = nullptr;
  const Clock* clock = nullptr;
  std::function<Snapshot()> snapshot;  // the running configuration
  const ReloadLog* reloads = nullptr;
  std::function<void()> outbox_changed;  // after a retry: wake the delivery
  // Wrong tokens counted with the admin endpoint's (the daemon's); null:
  // the console counts its own.
  TokenThrottle* throttle = nullptr;
};

class Console {
 public:
  static constexpr std::string_view kPrefix = "/console";
  static constexpr std::string_view kCookie = "tactd_console";
  static constexpr std::size_t kRowsPerStatus = 50;
  static constexpr std::size_t kActivityRows = 100000;  // bound of the 24-hour reads

  // `token` is the admin token; empty: nobody can log in.
  Console(ConsoleContext context, std::string token);
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Replaces the admin token (a reload); a different one ends every session.
  void set_token(std::string token);

  // Answers a request whose path is kPrefix or below it.
  HttpResponse handle(const HttpRequest& request);

  std::size_t sessions() const { return sessions_.size(); }

 private:
  HttpResponse login(const HttpRequest& request, std::string_view path);
  HttpResponse outbox_page(const std::map<std::string, std::string>& query, const ConsoleSession& session);
  HttpResponse outbox_action(std::string_view action, const std::map<std::string, std::string>& form);
  HttpResponse customer_page(const std::map<std::string, std::string>& query, const ConsoleSession& session);
  HttpResponse rules_page(const ConsoleSession& session);
  HttpResponse reloads_page(const ConsoleSession& session);
  HttpResponse templates_page(const ConsoleSession& session);
  HttpResponse page(int status, std::string_view name, nlohmann::json data, const ConsoleSession* session);
  std::string zone() const;

  ConsoleContext context_;
  std::string token_;  // never logged
  ConsoleSessions sessions_;
  TokenThrottle own_throttle_;
  TokenThrottle* throttle_;  // context_.throttle or own_throttle_
};

}  // namespace tactd
