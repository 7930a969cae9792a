#include "net/http_client.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "net/curl_multi.h"

namespace tactd {
namespace {

// One request in flight.
class HttpTransfer final : public curl::Transfer {
 public:
  HttpTransfer(HttpClientRequest request, std::function<void(HttpClientResponse)> done)
      : body_(std::move(request.body)), max_body_(request.max_body), done_(std::move(done)) {
    CURL* easy = this->easy();
    if (!easy) return;
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (request.method == "HEAD") curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    if (!body_.empty() || request.method == "POST" || request.method == "PUT") {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body_.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
    }
    curl_slist* list = nullptr;
    for (const auto& [name, value] : request.headers) list = curl_slist_append(list, (name + ": " + value).c_str());
    // No "Expect: 100-continue" on a large body: waiting for the interim
    // answer costs a round trip, or a second when the server sends none.
    list = curl_slist_append(list, "Expect:");
    headers_.reset(list);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);  // a 3xx is the answer; callers decide (see the header)
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  // whatever curl can decode
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_body_));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
  }

  void finish(CURLcode result) override {
    if (result == CURLE_OK) {
      curl_easy_getinfo(easy(), CURLINFO_RESPONSE_CODE, &response_.status);
    } else {
      response_.status = 0;
      response_.error = too_large_ || result == CURLE_FILESIZE_EXCEEDED
                            ? "the response is larger than " + std::to_string(max_body_) + " bytes"
                            : std::string(curl_easy_strerror(result));
    }
    done_(std::move(response_));
  }

  void fail(const std::string& error) override {
    HttpClientResponse response;
    response.error = error;
    done_(std::move(response));
  }

 private:
  static size_t on_body(char* data, size_t size, size_t count, void* user) {
    auto* self = static_cast<HttpTransfer*>(user);
    if (self->response_.body.size() + size * count > self->max_body_) {
      self->too_large_ = true;
      return 0;  // aborts the transfer
    }
    self->response_.body.append(data, size * count);
    return size * count;
  }

  static size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* self = static_cast<HttpTransfer*>(user);
    const std::string_view line(data, size * count);
    if (line.rfind("HTTP/", 0) == 0) {
      self->response_.headers.clear();  // a new response (after a redirect or 100-continue)
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
      std::string name(line.substr(0, colon));
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
        value.remove_suffix(1);
      self->response_.headers[name] = std::string(value);
    }
    return size * count;
  }

  std::string body_;  // the request body; curl reads it from here
  std::size_t max_body_;
  std::unique_ptr<curl_slist, curl::ListDeleter> headers_;
  HttpClientResponse response_;
  std::function<void(HttpClientResponse)> done_;
  bool too_large_ = false;
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(boost::asio::io_context& io) : engine_(curl::Engine::create(io)) {}
  void fetch(HttpClientRequest request, std::function<void(HttpClientResponse)> done) override {
    engine_->start(std::make_unique<HttpTransfer>(std::move(request), std::move(done)));
  }

 private:
  std::unique_ptr<curl::Engine> engine_;
};

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view text,
                                                           std::chrono::sys_time<std::chrono::milliseconds> now) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    constexpr std::size_t kMaxDigits = 9;  // some 31 years; longer is as good as for ever
    long long seconds = 999'999'999;
    if (text.size() <= kMaxDigits) std::from_chars(text.data(), text.data() + text.size(), seconds);
    return std::chrono::seconds{seconds};
  }
  static constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // "Sun, 06 Nov 1994 08:49:37 GMT": fixed positions after the comma.
  const auto comma = text.find(", ");
  if (comma == std::string_view::npos) return std::nullopt;
  const std::string_view rest = text.substr(comma + 2);
  if (rest.size() != 24 || rest.substr(20) != " GMT" || rest[2] != ' ' || rest[6] != ' ' || rest[11] != ' ' ||
      rest[14] != ':' || rest[17] != ':')
    return std::nullopt;
  auto number = [&](std::size_t at, std::size_t length, int& value) {
    const char* first = rest.data() + at;
    auto [end, ec] = std::from_chars(first, first + length, value);
    return ec == std::errc{} && end == first + length;
  };
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (!number(0, 2, day) || !number(7, 4, year) || !number(12, 2, hour) || !number(15, 2, minute) ||
      !number(18, 2, second))
    return std::nullopt;
  const auto month = std::find(kMonths.begin(), kMonths.end(), rest.substr(3, 3));
  if (month == kMonths.end() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month - kMonths.begin() + 1)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  const auto at = std::chrono::sys_days{date} + std::chrono::hours{hour} + std::chrono::minutes{minute} +
                  std::chrono::seconds{second};
  return std::max<std::chrono::milliseconds>(at - now, std::chrono::milliseconds::zero());
}

std::unique_ptr<HttpClient> HttpClient::create(boost::asio::io_context& io) {
  return std::make_unique<CurlHttpClient>(io);
}

}  // namespace tactd
