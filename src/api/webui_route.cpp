// GET / (and /index.html): the web page (chat + dashboard, webui/). The page itself needs no key: every
// API call it makes carries the key the user types in, so it is safe to answer without one.
#include <cctype>
#include <string>
#include <string_view>

#include "api/server_impl.h"
#include "api/webui_asset.h"

namespace tern::api {
namespace {

// Whether Accept-Encoding allows gzip ("gzip", "x-gzip" or "*", any case, not with q=0).
bool accepts_gzip(std::string accept) {
  for (char& c : accept) c = char(std::tolower(static_cast<unsigned char>(c)));
  size_t at = 0;
  while (at <= accept.size()) {
    size_t end = accept.find(',', at);
    if (end == std::string_view::npos) end = accept.size();
    std::string_view item = std::string_view(accept).substr(at, end - at);
    at = end + 1;
    const size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.front() == ' ') coding.remove_prefix(1);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding != "gzip" && coding != "x-gzip" && coding != "*") continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = item.substr(semi + 1);
    const size_t q = params.find("q=");
    if (q == std::string_view::npos) return true;
    std::string_view v = params.substr(q + 2);
    for (char c : v) {
      if (c >= '1' && c <= '9') return true;  // any non-zero digit: q > 0
      if (c != '0' && c != '.') break;
    }
    return false;
  }
  return false;
}

}  // namespace

void ApiServer::Impl::handle_webui(const HttpRequest& req, const XPtr& x) {
  const WebUiAsset page = webui_asset();
  HttpResponse r;
  if (!page.built()) {
    r.status = 503;
    r.content_type = "text/plain; charset=utf-8";
    r.body =
        "The web UI was not built into this tern binary: its bundle needs node and npm.\n"
        "Build it with `npm ci --prefix webui` in the source tree (scripts/setup does), then rebuild tern\n"
        "(cmake --build build). The API itself is served as usual under /v1/.\n";
    return x->respond(std::move(r));
  }
  r.content_type = "text/html; charset=utf-8";
  r.headers = {{"Cache-Control", "no-cache"}, {"X-Content-Type-Options", "nosniff"},
               {"X-Frame-Options", "DENY"}, {"Referrer-Policy", "no-referrer"}, {"Vary", "Accept-Encoding"}};
  if (accepts_gzip(req.header("accept-encoding"))) {
    r.headers.push_back({"Content-Encoding", "gzip"});
    r.body.assign(reinterpret_cast<const char*>(page.gzip), page.gzip_size);
  } else {
    r.body.assign(reinterpret_cast<const char*>(page.html), page.html_size);
  }
  x->respond(std::move(r));
}

}  // namespace tern::api
