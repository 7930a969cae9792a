// An HTTP request from a fuzz input, for the targets of the endpoints
// (push, inbound):
//
//   POST /v1/observations          method and target
//   name: value                    headers, until a blank line
//
//   body                           the rest
#pragma once

#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "net/http_server.h"

namespace tactd::fuzz {

inline HttpRequest request_of(std::string_view text) {
  auto [head, body] = split(text, "\n\n");
  HttpRequest request;
  auto [start, headers] = split(head, "\n");
  auto [method, target] = split(start, " ");
  request.method = method;
  request.target = target;
  while (!headers.empty()) {
    auto [line, after] = split(headers, "\n");
    headers = after;
    auto [name, value] = split(line, ": ");
    request.headers[std::string(name)] = value;
  }
  request.body = body;
  return request;
}

}  // namespace tactd::fuzz
