// Host, Origin and key checks: see request_guard.h.
#include "api/request_guard.h"

#include <cctype>

namespace tern::api {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class HeaderExchange final : public HttpExchange {
 public:
  HeaderExchange(std::shared_ptr<HttpExchange> inner, HttpHeaders extra) : inner_(std::move(inner)), extra_(std::move(extra)) {}
  void respond(HttpResponse r) override {
    r.headers.insert(r.headers.end(), extra_.begin(), extra_.end());
    inner_->respond(std::move(r));
  }
  void start_stream(int status, std::string type, HttpHeaders h) override {
    h.insert(h.end(), extra_.begin(), extra_.end());
    inner_->start_stream(status, std::move(type), std::move(h));
  }
  void write(std::string chunk) override { inner_->write(std::move(chunk)); }
  void end() override { inner_->end(); }
  void on_abort(std::function<void()> fn) override { inner_->on_abort(std::move(fn)); }
  void post(std::function<void()> fn) override { inner_->post(std::move(fn)); }
  size_t pending_bytes() const override { return inner_->pending_bytes(); }

 private:
  std::shared_ptr<HttpExchange> inner_;
  HttpHeaders extra_;
};

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer string is visited; the comparison never stops early.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= unsigned(x ^ y);
  }
  return diff == 0;
}

bool is_loopback_name(std::string_view host) {
  const std::string h = lower(host);
  if (h == "localhost" || ends_with(h, ".localhost") || h == "::1" || h == "[::1]") return true;
  // 127.0.0.0/8 written as a dotted quad.
  if (h.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : h) {
    if (c == '.') {
      dots++;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

std::string host_name(std::string_view host_header) {
  std::string_view h = host_header;
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  if (!h.empty() && h.front() == '[') {
    const size_t close = h.find(']');
    return lower(close == std::string_view::npos ? h.substr(1) : h.substr(1, close - 1));
  }
  const size_t colon = h.rfind(':');
  if (colon != std::string_view::npos && h.find(':') == colon) h = h.substr(0, colon);  // one colon: a port
  if (!h.empty() && h.back() == '.') h.remove_suffix(1);  // "localhost." is localhost
  return lower(h);
}

bool host_allowed(std::string_view host_header, const std::string& bind_host, const std::vector<std::string>& extra) {
  if (!is_loopback_name(bind_host)) return true;
  const std::string name = host_name(host_header);
  // No Host at all (HTTP/1.0; the front refuses an HTTP/1.1 request without one) is no browser's.
  if (name.empty()) return true;
  if (is_loopback_name(name) || name == host_name(bind_host)) return true;
  for (const auto& e : extra) {
    if (name == host_name(e)) return true;
  }
  return false;
}

OriginVerdict check_origin(std::string_view origin, std::string_view host_header, const std::vector<std::string>& allowed) {
  if (origin.empty()) return OriginVerdict::kNoOrigin;
  const std::string o = lower(origin);
  const std::string host = lower(host_header);
  if (!host.empty() && (o == "http://" + host || o == "https://" + host)) return OriginVerdict::kSameOrigin;
  for (const auto& a : allowed) {
    if (a == "*" || lower(a) == o) return OriginVerdict::kAllowed;
  }
  return OriginVerdict::kRefused;
}

HttpHeaders cors_headers(const std::string& origin) { return {{"Access-Control-Allow-Origin", origin}, {"Vary", "Origin"}}; }

HttpResponse cors_preflight(const HttpHeaders& cors) {
  HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  r.headers = cors;
  r.headers.push_back({"Access-Control-Allow-Methods", "GET, POST, OPTIONS"});
  r.headers.push_back({"Access-Control-Allow-Headers", "Authorization, Content-Type, x-api-key, anthropic-version"});
  r.headers.push_back({"Access-Control-Max-Age", "600"});
  return r;
}

std::shared_ptr<HttpExchange> with_headers(std::shared_ptr<HttpExchange> inner, HttpHeaders extra) {
  return std::make_shared<HeaderExchange>(std::move(inner), std::move(extra));
}

}  // namespace tern::api
