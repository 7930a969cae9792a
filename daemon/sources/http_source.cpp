#include "sources/http_source.h"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>
#include <memory>
#include <sstream>

#include "model/json_text.h"
#include "sources/mapping.h"
#include "store/state_runner.h"

namespace tactd {
namespace asio = boost::asio;
namespace {

// Fetches on `client` as an awaitable. The answer is posted, so the
// coroutine never resumes inside the client's own callback.
asio::awaitable<HttpClientResponse> fetch(HttpClient& client, HttpClientRequest request) {
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(HttpClientResponse)>(
      [&client](auto handler, HttpClientRequest r) {
        auto executor = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        client.fetch(std::move(r), [shared, executor](HttpClientResponse response) {
          asio::post(executor,
                     [shared, response = std::move(response)]() mutable { std::move (*shared)(std::move(response)); });
        });
      },
      asio::use_awaitable, std::move(request));
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned value = 0;
  int bits = 0;
  for (unsigned char c : in) {
    value = (value << 8) | c;
    bits += 8;
    while (bits >= 6) out += kAlphabet[(value >> (bits -= 6)) & 63];
  }
  if (bits > 0) out += kAlphabet[(value << (6 - bits)) & 63];
  while (out.size() % 4) out += '=';
  return out;
}

// The URL without its query, which may carry what is not ours to log.
std::string loggable(const std::string& url) { return url.substr(0, url.find('?')); }

// What a cursor value reads as: a time is compared as a time, a number as
// a number, anything else as text.
enum class CursorKind { kTime, kNumber, kText };

std::optional<double> number_of(const std::string& cursor) {
  double number = 0;
  auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), number);
  if (ec != std::errc{} || end != cursor.data() + cursor.size()) return std::nullopt;
  return number;
}

CursorKind kind_of(const std::string& cursor) {
  if (parse_rfc3339(cursor)) return CursorKind::kTime;
  return number_of(cursor) ? CursorKind::kNumber : CursorKind::kText;
}

// Whether cursor `a` is past `b`. Values of the same kind compare as that
// kind. A time or number is always past text (a cursor that went wrong heals),
// and text never past a time or number: one unreadable value in a page (a
// bad `updated_at`) neither takes over the cursor nor freezes it.
bool cursor_after(const std::string& a, const std::string& b) {
  if (b.empty()) return !a.empty();
  const CursorKind ka = kind_of(a), kb = kind_of(b);
  if (ka != kb) return kb == CursorKind::kText;
  switch (ka) {
    case CursorKind::kTime:
      return *parse_rfc3339(a) > *parse_rfc3339(b);
    case CursorKind::kNumber:
      return *number_of(a) > *number_of(b);
    case CursorKind::kText:
      break;
  }
  return a > b;
}

// The start of `record` as JSON, to name it in a problem.
std::string excerpt(const nlohmann::json& record) { return record.dump().substr(0, HttpSource::kMaxProblemBody); }

std::optional<std::string> cursor_text(const nlohmann::json& value) {
  if (value.is_string() && !value.get<std::string>().empty()) return value.get<std::string>();
  if (value.is_number()) return value.dump();
  return std::nullopt;
}

const nlohmann::json* at_pointer(const nlohmann::json& document, const std::string& pointer) {
  if (pointer.empty()) return &document;
  try {
    const nlohmann::json::json_pointer p(pointer);
    return document.contains(p) ? &document.at(p) : nullptr;
  } catch (const nlohmann::json::exception&) {
    return nullptr;
  }
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

std::string origin(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "";
  std::string out = url.substr(0, url.find_first_of("/?#", scheme_end + 3));
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  if (out.starts_with("http://") && out.ends_with(":80")) out.resize(out.size() - 3);
  if (out.starts_with("https://") && out.ends_with(":443")) out.resize(out.size() - 4);
  return out;
}

std::string resolve(const std::string& target, const std::string& base) {
  if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) return target;
  if (!target.empty() && target[0] == '/') return base.substr(0, base.find('/', base.find("://") + 3)) + target;
  return loggable(base).substr(0, loggable(base).rfind('/') + 1) + target;
}

std::optional<std::string> next_link(const std::string& link_header, const std::string& base) {
  size_t at = 0;
  while ((at = link_header.find('<', at)) != std::string::npos) {
    const size_t close = link_header.find('>', at);
    if (close == std::string::npos) return std::nullopt;
    const std::string target = link_header.substr(at + 1, close - at - 1);
    const size_t end = std::min(link_header.find('<', close), link_header.size());
    std::string params = link_header.substr(close + 1, end - close - 1);
    std::transform(params.begin(), params.end(), params.begin(), [](unsigned char c) { return std::tolower(c); });
    const size_t rel = params.find("rel=");
    if (rel != std::string::npos) {
      std::string value = params.substr(rel + 4);
      value = value.substr(0, value.find_first_of(";,"));
      std::erase(value, '"');
      std::istringstream words(value);
      for (std::string word; words >> word;)
        if (word == "next") return resolve(target, base);
    }
    at = close;
  }
  return std::nullopt;
}

std::string with_query_param(const std::string& url, const std::string& name, const std::string& value) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + percent_encode(name) + "=" + percent_encode(value);
}

HttpSource::HttpSource(SourceConfig config, HttpClient& client, Intake& intake, const Clock& clock)
    : config_(std::move(config)), client_(client), intake_(intake), clock_(clock) {}

HttpClientRequest HttpSource::request(const std::string& url) const {
  HttpClientRequest request;
  request.url = url;
  request.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config_.timeout);
  request.max_body = config_.max_response;
  request.headers.emplace_back("Accept", "application/json");
  request.headers.emplace_back("User-Agent", "tactd");
  for (const auto& header : config_.headers) request.headers.push_back(header);
  const HttpAuth& auth = config_.auth;
  switch (auth.type) {
    case HttpAuth::Type::kNone:
      break;
    case HttpAuth::Type::kBearer:
      request.headers.emplace_back("Authorization", "Bearer " + auth.secret);
      break;
    case HttpAuth::Type::kBasic:
      request.headers.emplace_back("Authorization", "Basic " + base64(auth.username + ":" + auth.secret));
      break;
    case HttpAuth::Type::kHeader:
      request.headers.emplace_back(auth.header, auth.secret);
      break;
  }
  return request;
}

asio::awaitable<HttpSource::Poll> HttpSource::poll() {
  Poll poll;
  const StateRunner state(intake_.fibers());
  std::string cursor =
      (co_await state.run([&] { return intake_.cursor(config_.name); })).value_or(config_.cursor_start);
  auto page_url = [&] {
    return config_.cursor_param.empty() || cursor.empty() ? config_.url
                                                          : with_query_param(config_.url, config_.cursor_param, cursor);
  };
  std::string url = page_url();
  const std::string first_url = url;
  auto fail = [&](const char* problem, std::string why) {
    poll.problem = problem;
    poll.failure = "page " + std::to_string(poll.pages + 1) + " (" + loggable(url) + "): " + std::move(why);
    ++failures_;
  };

  while (poll.pages < kMaxPagesPerPoll) {
    HttpClientRequest req = request(url);
    const bool first = poll.pages == 0;
    if (first && url == etag_url_ && !etag_.empty()) req.headers.emplace_back("If-None-Match", etag_);
    HttpClientResponse response = co_await fetch(client_, std::move(req));
    // Redirects are followed within the source's origin only: its headers
    // and credentials go to no other host, and not from https to http.
    for (int hops = 0;
         response.error.empty() && response.status >= 300 && response.status < 400 && response.status != 304; ++hops) {
      const auto location = response.headers.find("location");
      if (location == response.headers.end()) break;  // a 3xx without a target: reported as an answer below
      const std::string target = resolve(location->second, url);
      if (origin(target) != origin(url)) {
        fail("redirect", "redirected to " + loggable(target) + ", another origin than " + origin(url) +
                             "; not followed (a source follows redirects within its own scheme, host and port only)");
        co_return poll;
      }
      if (hops == kMaxRedirects) {
        fail("redirect", "more than " + std::to_string(kMaxRedirects) + " redirects; not followed further");
        co_return poll;
      }
      url = target;
      response = co_await fetch(client_, request(url));
    }
    if (!response.error.empty()) {
      const bool too_large = response.error.starts_with("the response is larger than");
      const bool timeout = response.error.starts_with("Timeout was reached");
      fail(too_large ? "too_large"
           : timeout ? "timeout"
                     : "no_answer",
           too_large
               ? response.error + " (max_response); not read further: ask for smaller pages, or raise max_response"
           : timeout ? "no complete answer within " +
                           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(config_.timeout).count()) +
                           " s (timeout): " + response.error
                     : response.error);
      co_return poll;
    }
    if (response.status == 304) {
      poll.unchanged = true;
      break;
    }
    auto header = [&response](const char* name) {
      auto it = response.headers.find(name);
      return it == response.headers.end() ? std::string() : it->second;
    };
    if (response.status < 200 || response.status > 299) {
      fail("status", "answered " + std::to_string(response.status) + ": " + response.body.substr(0, kMaxProblemBody));
      if (response.status == 429 || response.status == 503)
        poll.retry_after = parse_retry_after(header("retry-after"), clock_.now());
      co_return poll;
    }
    std::string json_error;
    const std::optional<nlohmann::json> body = parse_json_text(response.body, json_error);
    if (!body) {
      fail("invalid_json", "the answer is not usable JSON: " + json_error);
      co_return poll;
    }
    const nlohmann::json* items = at_pointer(*body, config_.items);
    if (!items || !items->is_array()) {
      fail("no_items", "the answer has no array at '" + config_.items + "' (items)");
      co_return poll;
    }

    std::vector<Observation> observations;
    std::string next_cursor = cursor;
    const Timestamp now = clock_.now();
    for (const auto& item : *items) {
      std::string error;
      if (!map_records(config_.mappings, item, now, observations, error)) {
        ++poll.rejected;
        poll.problems.push_back("record " + excerpt(item) + ": " + error + "; skipped");
      }
      if (config_.cursor_field.empty()) continue;
      const nlohmann::json* value = at_pointer(item, config_.cursor_field);
      const auto text = value ? cursor_text(*value) : std::nullopt;
      if (text && cursor_after(*text, next_cursor)) {
        next_cursor = *text;
      } else if (text && kind_of(*text) == CursorKind::kText && kind_of(next_cursor) != CursorKind::kText) {
        poll.problems.push_back("record " + excerpt(item) + ": its cursor '" + *text + "' (" + config_.cursor_field +
                                ") is neither a time nor a number; not used as the cursor");
      }
    }
    if (!config_.next_cursor.empty()) {
      const nlohmann::json* value = at_pointer(*body, config_.next_cursor);
      if (auto text = value ? cursor_text(*value) : std::nullopt) next_cursor = *text;
    }
    const bool moved = next_cursor != cursor;
    const SourceCursor committed{config_.name, next_cursor};
    std::string error;
    if ((moved || !observations.empty()) &&
        !co_await state.run([&] { return intake_.commit(observations, moved ? &committed : nullptr, error); })) {
      fail("not_committed", "not committed, will retry from the last cursor: " + error);
      co_return poll;
    }
    ++poll.pages;
    poll.observations += static_cast<int>(observations.size());
    cursor = next_cursor;

    std::optional<std::string> link = config_.follow_links ? next_link(header("link"), url) : std::nullopt;
    if (link && origin(*link) != origin(url)) {
      poll.problems.push_back("the next page's link leads to " + loggable(*link) + ", another origin than " +
                              origin(url) + "; not followed (pages are read from the source's own origin only)");
      link.reset();
    }
    if (link) {
      url = *link;
    } else if (moved && !items->empty() && !config_.follow_links) {  // links, when followed, page
      url = page_url();
    } else {
      if (first) {  // a single-page answer: ask next time whether it changed
        etag_ = header("etag");
        etag_url_ = first_url;
      }
      break;
    }
    if (first) etag_.clear();
  }
  failures_ = 0;
  co_return poll;
}

Duration HttpSource::next_delay(const Poll& last, double random01) const {
  auto scaled = [random01](Duration d) { return Duration{static_cast<Duration::rep>(d.count() * random01)}; };
  if (!last.failure) return config_.interval + scaled(config_.jitter);
  Duration backoff = config_.interval;
  for (int i = 1; i < failures_ && backoff < config_.max_backoff; ++i) backoff *= 2;
  backoff = std::min(backoff, config_.max_backoff);
  const Duration wait = backoff / 2 + scaled(backoff / 2);
  return std::max(wait, std::min(last.retry_after.value_or(Duration{}), config_.max_backoff));
}

}  // namespace tactd
