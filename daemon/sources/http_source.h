// The HTTP JSON polling source: a webshop's or carrier's API, read page by
// page through the non-blocking client of net/http_client.h. Each page is
// committed with the cursor it ends on, so a restart resumes where the last
// commit left off; the API sees conditional requests (ETag) and backs off on
// failure, honouring Retry-After.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "model/clock.h"
#include "net/http_client.h"
#include "sources/source.h"

namespace tactd {

class HttpSource {
 public:
  // `config` is a validated http source with at least one mapping. `client`,
  // `intake` and `clock` must outlive the source. Call only on the loop that
  // drives `client`.
  HttpSource(SourceConfig config, HttpClient& client, Intake& intake, const Clock& clock);

  struct Poll {
    int pages = 0;  // read and committed
    int observations = 0;
    int rejected = 0;        // records the mappings could not read; skipped, and said in `problems`
    bool unchanged = false;  // the API answered 304 Not Modified
    std::vector<std::string> problems;
    // Why the poll stopped early: the next poll retries after a backoff.
    std::optional<std::string> failure;
    // With a failure, what kind, for metrics: timeout, too_large, no_answer,
    // status, invalid_json, no_items, redirect, not_committed.
    std::string problem;
    std::optional<Duration> retry_after;  // what the API asked for
  };

  // Fetches page after page, from the committed cursor (or `cursor_start`)
  // until the API has nothing more, or kMaxPagesPerPoll pages. Secrets never
  // appear in `problems` or `failure`. Redirects and `Link: rel="next"` pages
  // are followed within the source's origin (scheme, host, port) only, so
  // its headers and credentials never reach another host; a redirect
  // elsewhere fails the poll, a link elsewhere ends it with a problem.
  boost::asio::awaitable<Poll> poll();

  // How long to wait after `last` before polling again: the interval plus
  // up to `jitter`; after failures a doubling backoff with jitter, at least
  // the Retry-After (up to max_backoff). `random01` is uniform in [0, 1).
  Duration next_delay(const Poll& last, double random01) const;

  static constexpr int kMaxPagesPerPoll = 100;
  static constexpr int kMaxRedirects = 5;              // per page, each within the source's origin
  static constexpr std::size_t kMaxProblemBody = 200;  // bytes of an error answer quoted in a problem

 private:
  HttpClientRequest request(const std::string& url) const;

  SourceConfig config_;
  HttpClient& client_;
  Intake& intake_;
  const Clock& clock_;
  int failures_ = 0;  // consecutive failed polls
  // The validator of the last single-page answer, and the URL it belongs to.
  std::string etag_;
  std::string etag_url_;
};

// The target of `rel="next"` in a Link header, resolved against `base`.
std::optional<std::string> next_link(const std::string& link_header, const std::string& base);

// `target` (absolute, absolute-path or relative) resolved against `base`.
std::string resolve(const std::string& target, const std::string& base);

// "scheme://host[:port]" of `url` in lower case, the default port left out;
// "" when `url` has no scheme. Two URLs may share credentials only when
// their origins are equal.
std::string origin(const std::string& url);

// `url` with `name=value` added to its query, percent-encoded.
std::string with_query_param(const std::string& url, const std::string& name, const std::string& value);

}  // namespace tactd
