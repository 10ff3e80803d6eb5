// HttpFront: the listener, the connection table (oldest first, for eviction past max_connections), the
// worker pool, and stop. Connections themselves live in http_session*.cpp.
#include <cerrno>
#include <cstdio>

#include "api/http_exchange.h"

namespace tern::api {

using error_code = boost::system::error_code;

std::string HttpRequest::header(std::string_view name, bool* present) const {
  for (const auto& [k, v] : headers) {
    if (k == name) {
      if (present) *present = true;
      return v;
    }
  }
  if (present) *present = false;
  return "";
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out += char(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool out_of_descriptors(const error_code& ec) {
  const int v = ec.value();
  return ec.category() == boost::system::system_category() &&
         (v == EMFILE || v == ENFILE || v == ENOBUFS || v == ENOMEM);
}

}  // namespace

void split_target(const std::string& target, std::string& path, std::string& query) {
  std::string_view t = target;
  if (t.rfind("http://", 0) == 0 || t.rfind("https://", 0) == 0) {  // absolute form
    const size_t slash = t.find('/', t.find("//") + 2);
    t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
  }
  const size_t q = t.find('?');
  path = percent_decode(t.substr(0, q));
  query = q == std::string_view::npos ? "" : std::string(t.substr(q + 1));
}

void run_handler(HttpFront::Impl& front, HttpRequest& req, const std::shared_ptr<Exchange>& x) {
  std::string what;
  try {
    front.handler(req, x);
    return;
  } catch (const std::bad_alloc&) {
    what = "out of memory";
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "unknown exception";
  }
  // The text may hold library internals: it goes to the log, the client gets a plain 500.
  std::fprintf(stderr, "[tern] internal error answering %s %s: %s\n", req.method.c_str(), req.path.c_str(), what.c_str());
  x->respond(front.opt.error_response(500, "internal server error"));
}

HttpFront::Impl::Impl(HttpFrontOptions o, HttpHandler h)
    : opt(std::move(o)), handler(std::move(h)), workers(size_t(std::max(1, opt.worker_threads))) {
  gate->ioc = &ioc;
  gate->pool = &workers;
  if (!opt.error_response) {
    opt.error_response = [](int status, const std::string& message) {
      HttpResponse r;
      r.status = status;
      r.content_type = "text/plain; charset=utf-8";
      r.body = message + "\n";
      return r;
    };
  }
}

void HttpFront::Impl::accept() {
  acceptor.async_accept([this](const error_code& ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void HttpFront::Impl::on_accept(const error_code& ec, tcp::socket socket) {
  if (stopping || !acceptor.is_open()) return;
  if (ec) {
    if (ec == net::error::operation_aborted) return;
    if (out_of_descriptors(ec)) {
      // Free a descriptor, and do not spin while the kernel has none.
      evict_one();
      retry.expires_after(std::chrono::milliseconds(50));
      retry.async_wait([this](const error_code& e) {
        if (!e) accept();
      });
      return;
    }
    return accept();
  }
  if (int64_t(sessions.size()) >= opt.max_connections && !evict_one()) {
    error_code ignored;
    socket.close(ignored);  // every connection has a request in work: this one waits its turn elsewhere
  } else {
    start_session(*this, std::move(socket));
  }
  accept();
}

bool HttpFront::Impl::evict_one() {
  for (Session* s : sessions) {
    if (!session_in_work(*s)) {
      close_session(*s);
      return true;
    }
  }
  return false;
}

void HttpFront::Impl::begin_stop() {
  if (stopping) return;
  stopping = true;
  error_code ignored;
  acceptor.close(ignored);
  retry.cancel();
  const std::vector<Session*> all(sessions.begin(), sessions.end());
  for (Session* s : all) stop_session(*s);
  if (sessions.empty()) return;
  // Answers still being written get their write timeout; a handler that never answers cannot hold the
  // process forever.
  stop_timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(opt.write_timeout_s + 5)));
  stop_timer.async_wait([this](const error_code& e) {
    if (!e) ioc.stop();
  });
}

HttpFront::HttpFront(HttpFrontOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpFront::~HttpFront() {
  {
    std::lock_guard<std::mutex> lock(impl_->gate->mu);
    impl_->gate->ioc = nullptr;
    impl_->gate->pool = nullptr;
  }
  impl_->workers.stop();
  impl_->workers.join();
  impl_->ioc.stop();
}

Result<int> HttpFront::bind(const std::string& host, int port) {
  Impl& s = *impl_;
  error_code ec;
  tcp::resolver resolver(s.ioc);
  auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || found.empty()) return Status::error("cannot resolve the bind address " + host + ": " + ec.message());
  const tcp::endpoint ep = found.begin()->endpoint();
  s.acceptor.open(ep.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(4096, ec);  // the kernel caps it at somaxconn
  if (ec) {
    return Status::error("cannot bind " + host + ":" + std::to_string(port) + " (" + ec.message() +
                         "; in use, or not an address of this machine?)");
  }
  return int(s.acceptor.local_endpoint().port());
}

void HttpFront::run() {
  Impl& s = *impl_;
  net::post(s.ioc, [&s] {
    if (!s.stopping) s.accept();
  });
  for (;;) {
    // A handler that throws (out of memory while buffering, say) loses its connection, not the server.
    try {
      s.ioc.run();
      return;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[tern] HTTP I/O error: %s\n", e.what());
    }
  }
}

void HttpFront::stop() {
  Impl& s = *impl_;
  net::post(s.ioc, [&s] { s.begin_stop(); });
}

int64_t HttpFront::connections() const { return impl_->open.load(); }

boost::asio::io_context& HttpFront::io_context() { return impl_->ioc; }

}  // namespace tern::api
