// Who may use the server, checked before any route: the Host a request names (a page that rebinds its
// own DNS name to 127.0.0.1 reaches a loopback server with its own name as Host), the Origin a browser
// attaches to cross-site requests (refused unless --cors-origin allows it), and the API key (compared in
// time independent of where the first difference is).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_front.h"

namespace tern::api {

// true when both are equal; the time taken depends only on the lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

// 127.0.0.0/8, ::1, localhost (and names under .localhost).
bool is_loopback_name(std::string_view host);

// The name of a Host header ("example.com:8080" -> "example.com", "[::1]:80" -> "::1"), lower case.
std::string host_name(std::string_view host_header);

// A request's Host on a server bound to bind_host: any Host when the bind is not loopback (the API key
// guards those); on a loopback bind only loopback names, the bound address, and `extra` names (and no Host
// at all: HTTP/1.0 clients, never a browser).
bool host_allowed(std::string_view host_header, const std::string& bind_host, const std::vector<std::string>& extra);

enum class OriginVerdict {
  kNoOrigin,    // not a browser's cross-site request (no Origin header)
  kSameOrigin,  // the page came from this server (Origin = http(s)://<Host>)
  kAllowed,     // listed in --cors-origin (or "*" is)
  kRefused,
};
OriginVerdict check_origin(std::string_view origin, std::string_view host_header, const std::vector<std::string>& allowed);

// An allowed cross-site request: the headers every answer to it carries, and the answer to its preflight
// (OPTIONS). Shared by `tern serve` and `tern router`.
HttpHeaders cors_headers(const std::string& origin);
HttpResponse cors_preflight(const HttpHeaders& cors);
// An exchange that adds `extra` headers to the answer of `inner`, whole or streamed.
std::shared_ptr<HttpExchange> with_headers(std::shared_ptr<HttpExchange> inner, HttpHeaders extra);

}  // namespace tern::api
