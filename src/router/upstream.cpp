// One HTTP exchange with a replica, and the keep-alive pool (upstream.h).
#include "router/upstream.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstdio>
#include <functional>
#include <optional>

namespace tern::router {

namespace http = beast::http;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// `tern serve` closes a connection idle for 5 s; one idle for less than this is still worth reusing.
constexpr auto kIdleReuse = std::chrono::seconds(3);
// A connection idle for less than this is reused without looking whether the replica closed it (a
// syscall per request, a tenth of the router's): a replica closes idle connections only after seconds,
// and one that died meanwhile fails the request before any byte came back, which is retried on a fresh
// connection (UpstreamCall::retry_fresh_or_fail) and then elsewhere.
constexpr auto kIdleUnchecked = std::chrono::milliseconds(250);
constexpr size_t kIdlePerReplica = 256;
constexpr uint64_t kMaxBody = uint64_t(64) << 20;

Clock::duration secs(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// The peer closed (or reset) an idle connection: a non-blocking peek reads 0 bytes or fails.
bool peer_closed(beast::tcp_stream& s) {
  char c;
  const ssize_t n = ::recv(s.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  return true;  // bytes nobody asked for: not a clean connection either
}

std::string seconds_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g s", s);
  return b;
}

bool hop_by_hop(const std::string& lower) {
  return lower == "connection" || lower == "keep-alive" || lower == "transfer-encoding" || lower == "te" ||
         lower == "trailer" || lower == "upgrade" || lower == "content-length" || lower == "host" ||
         lower == "expect" || lower.rfind("proxy-", 0) == 0;
}

}  // namespace

std::unique_ptr<beast::tcp_stream> ConnectionPool::take(const std::string& url) {
  auto it = idle_.find(url);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  while (!list.empty()) {
    Idle i = std::move(list.back());
    list.pop_back();
    const auto idle = Clock::now() - i.since;
    if (idle < kIdleUnchecked || (idle < kIdleReuse && !peer_closed(*i.stream))) return std::move(i.stream);
  }
  return nullptr;
}

void ConnectionPool::give(const std::string& url, std::unique_ptr<beast::tcp_stream> s) {
  auto& list = idle_[url];
  if (list.size() >= kIdlePerReplica) list.erase(list.begin());
  list.push_back({std::move(s), Clock::now()});
}

void ConnectionPool::drop(const std::string& url) {
  idle_.erase(url);
  endpoints_.erase(url);  // a replica restarted elsewhere (a new name lookup) is found again
}

std::vector<tcp::endpoint>* ConnectionPool::endpoints(const std::string& url) {
  auto it = endpoints_.find(url);
  return it == endpoints_.end() ? nullptr : &it->second;
}

std::string build_request(const std::string& method, const std::string& target, const ReplicaAddress& to,
                          const api::HttpHeaders& headers, const std::string& body) {
  const bool v6 = to.host.find(':') != std::string::npos;
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: " + (v6 ? "[" + to.host + "]" : to.host) + ":" + to.port +
                  "\r\n";
  for (const auto& [k, v] : headers) {
    if (!hop_by_hop(k)) r += k + ": " + v + "\r\n";
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

class UpstreamCall : public std::enable_shared_from_this<UpstreamCall> {
 public:
  UpstreamCall(UpstreamContext ctx, ReplicaAddress to, std::string request, bool head_only,
               std::shared_ptr<UpstreamSink> sink, CallTimeouts t)
      : ctx_(ctx), to_(std::move(to)), request_(std::move(request)), head_only_(head_only), sink_(std::move(sink)), t_(t) {
    chunk_cb_ = [this](uint64_t, beast::string_view body, error_code&) -> size_t {
      if (sink_ && !body.empty()) sink_->on_data(std::string_view(body.data(), body.size()));
      return body.size();
    };
  }

  void start() {
    stream_ = ctx_.pool.take(to_.url);
    reused_ = stream_ != nullptr;
    if (stream_) return send();
    connect();
  }

  void cancel() {
    if (!sink_) return;
    cancelled_ = true;
    if (stream_) {
      error_code ec;
      stream_->socket().close(ec);  // pending operations end with operation_aborted
    } else if (!connecting_) {
      end_with("cancelled");
    }
  }

 private:
  void connect() {
    connecting_ = true;
    auto self = shared_from_this();
    if (std::vector<tcp::endpoint>* eps = ctx_.pool.endpoints(to_.url)) return connect_to(*eps);
    resolver_ = std::make_unique<tcp::resolver>(ctx_.io);
    resolver_->async_resolve(to_.host, to_.port, [self](const error_code& ec, tcp::resolver::results_type r) {
      if (ec || r.empty()) return self->fail("cannot resolve " + self->to_.host + ": " + ec.message());
      std::vector<tcp::endpoint> eps;
      for (const auto& e : r) eps.push_back(e.endpoint());
      self->ctx_.pool.set_endpoints(self->to_.url, eps);
      self->connect_to(*self->ctx_.pool.endpoints(self->to_.url));
    });
  }

  void connect_to(const std::vector<tcp::endpoint>& eps) {
    if (cancelled_) return end_with("cancelled");
    stream_ = std::make_unique<beast::tcp_stream>(ctx_.io);
    stream_->expires_after(secs(t_.connect_s));
    stream_->async_connect(eps, [self = shared_from_this()](const error_code& ec, const tcp::endpoint&) {
      self->connecting_ = false;
      if (ec == beast::error::timeout) return self->fail("connect timed out", true);
      if (ec) return self->fail("connect: " + ec.message());
      error_code ignored;
      self->stream_->socket().set_option(tcp::no_delay(true), ignored);
      self->send();
    });
  }

  void send() {
    if (cancelled_) return end_with("cancelled");
    parser_.emplace();
    parser_->header_limit(64u << 10);
    parser_->body_limit(kMaxBody);
    parser_->on_chunk_body(chunk_cb_);
    if (head_only_) parser_->skip(true);
    buffer_.clear();
    stream_->expires_after(secs(t_.response_s));
    net::async_write(*stream_, net::buffer(request_), [self = shared_from_this()](const error_code& ec, size_t) {
      if (ec) return self->retry_fresh_or_fail("send: " + ec.message());
      http::async_read_header(*self->stream_, self->buffer_, *self->parser_,
                              [self](const error_code& e, size_t) { self->on_header(e); });
    });
  }

  // A reused connection the replica closed just before our request: once more on a fresh one (the
  // replica cannot have started the request: it read nothing of it).
  void retry_fresh_or_fail(const std::string& why) {
    if (reused_ && !got_bytes_ && !cancelled_) {
      reused_ = false;
      error_code ignored;
      stream_->socket().close(ignored);
      stream_.reset();
      return connect();
    }
    fail(why);
  }

  void on_header(const error_code& ec) {
    if (ec) {
      if (ec == beast::error::timeout) return fail("no answer within " + seconds_text(t_.response_s), true);
      return retry_fresh_or_fail(ec == http::error::end_of_stream ? "the replica closed the connection" : ec.message());
    }
    got_bytes_ = true;
    if (sink_) sink_->on_bytes();
    const auto& m = parser_->get();
    api::HttpHeaders headers;
    for (const auto& f : m) {
      std::string name(f.name_string());
      for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      if (!hop_by_hop(name)) headers.emplace_back(std::move(name), std::string(f.value()));
    }
    if (sink_) sink_->on_head(int(m.result_int()), std::move(headers), parser_->chunked());
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return done();
    stream_->expires_after(secs(t_.response_s));
    http::async_read_some(*stream_, buffer_, *parser_, [self = shared_from_this()](const error_code& ec, size_t n) {
      if (ec) {
        if (ec == beast::error::timeout) return self->fail("the answer stalled for " + seconds_text(self->t_.response_s), true);
        return self->fail(ec == http::error::partial_message || ec == http::error::end_of_stream
                              ? std::string("the replica cut the answer short")
                              : ec.message());
      }
      if (n > 0 && self->sink_) self->sink_->on_bytes();
      self->read_body();
    });
  }

  void done() {
    stream_->expires_never();
    UpstreamEnd end;
    end.ok = true;
    end.body = std::move(parser_->get().body());
    if (parser_->get().keep_alive() && buffer_.size() == 0 && !cancelled_) {
      ctx_.pool.give(to_.url, std::move(stream_));
    } else {
      error_code ignored;
      stream_->socket().close(ignored);
    }
    finish(std::move(end));
  }

  void fail(const std::string& why, bool timed_out = false) {
    if (stream_) {
      error_code ignored;
      stream_->socket().close(ignored);
    }
    end_with(why, timed_out);
  }

  void end_with(const std::string& why, bool timed_out = false) {
    UpstreamEnd end;
    end.cancelled = cancelled_;
    end.timed_out = timed_out && !cancelled_;
    end.error = cancelled_ ? "cancelled" : why;
    finish(std::move(end));
  }

  void finish(UpstreamEnd end) {
    auto sink = std::move(sink_);  // once; and the sink no longer holds the call through us
    if (sink) sink->on_end(std::move(end));
  }

  UpstreamContext ctx_;
  ReplicaAddress to_;
  std::string request_;
  bool head_only_;
  std::shared_ptr<UpstreamSink> sink_;
  CallTimeouts t_;
  std::unique_ptr<tcp::resolver> resolver_;
  std::unique_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::function<size_t(uint64_t, beast::string_view, error_code&)> chunk_cb_;
  bool reused_ = false, got_bytes_ = false, cancelled_ = false, connecting_ = false;
};

std::shared_ptr<UpstreamCall> start_call(UpstreamContext ctx, const ReplicaAddress& to, std::string request,
                                         bool head_only, std::shared_ptr<UpstreamSink> sink, CallTimeouts t) {
  auto call = std::make_shared<UpstreamCall>(ctx, to, std::move(request), head_only, std::move(sink), t);
  call->start();
  return call;
}

void cancel_call(UpstreamCall& call) { call.cancel(); }

}  // namespace tern::router
