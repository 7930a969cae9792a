// One HTTP request from a test to a server on loopback, with libcurl's easy
// interface: blocking, from the test's thread while the server runs
// elsewhere (its own loop thread, or a daemon process). Tests that include
// this link CURL::libcurl.
#pragma once

#include <catch2/catch.hpp>

#include <curl/curl.h>

#include <cctype>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tactd::test {

struct Reply {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string error;                           // why no answer came (try_http()); empty when one did
};

namespace detail {

inline std::size_t collect_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

inline std::size_t collect_header(char* data, std::size_t size, std::size_t count, void* user) {
  std::string line(data, size * count);
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of("\r\n") + 1);
    (*static_cast<std::map<std::string, std::string>*>(user))[name] = value;
  }
  return size * count;
}

}  // namespace detail

// `method` (GET, HEAD, POST, ...) to `url`, with `body` when it is not
// empty and `headers` ("Name: value"); no answer within 10 s is an error.
// Uses no Catch macro, so that other threads than the test's may call it
// (Catch 2's assertions and INFO are not thread-safe): they look at
// `error` and `status`, and the test's thread checks what they found.
inline Reply try_http(const std::string& method, const std::string& url, const std::string& body = "",
                      const std::vector<std::string>& headers = {}) {
  Reply reply;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy(curl_easy_init(), &curl_easy_cleanup);
  if (!easy) {
    reply.error = "curl_easy_init failed";
    return reply;
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> list(nullptr, &curl_slist_free_all);
  for (const auto& h : headers) list.reset(curl_slist_append(list.release(), h.c_str()));
  curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
  if (method == "HEAD") {
    curl_easy_setopt(easy.get(), CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(easy.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (!body.empty()) {
    curl_easy_setopt(easy.get(), CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(easy.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(easy.get(), CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, detail::collect_body);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(easy.get(), CURLOPT_HEADERFUNCTION, detail::collect_header);
  curl_easy_setopt(easy.get(), CURLOPT_HEADERDATA, &reply.headers);
  curl_easy_setopt(easy.get(), CURLOPT_TIMEOUT_MS, 10'000L);
  const CURLcode result = curl_easy_perform(easy.get());
  if (result != CURLE_OK) {
    reply.error = method + " " + url + ": " + curl_easy_strerror(result);
    return reply;
  }
  curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

// try_http() from the test's thread: a request that gets no answer fails the test.
inline Reply http(const std::string& method, const std::string& url, const std::string& body = "",
                  const std::vector<std::string>& headers = {}) {
  Reply reply = try_http(method, url, body, headers);
  INFO(reply.error);
  REQUIRE(reply.error.empty());
  return reply;
}

}  // namespace tactd::test
