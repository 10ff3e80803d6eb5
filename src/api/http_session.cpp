// One connection of HttpFront, driven on the I/O thread. States:
//   idle   waiting for a request's first byte (keep-alive timeout; for a new connection the head deadline)
//   head   reading the request line and fields (deadline: header_timeout_s)
//   body   reading the body, Content-Length or chunked (deadline: body_timeout_s)
//   work   the handler answers; reads go on (a close is noticed; pipelined bytes wait in the buffer)
//   closing / linger   an error answer is written, then the client's leftovers are read and dropped
//                      briefly before the close, so the answer is not lost to a TCP reset
// Nothing waits in a thread: readiness of the socket, timers and exchange calls drive each step.
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <optional>

#include "api/http_exchange.h"
#include "api/http_front_impl.h"

namespace tern::api {

namespace http = boost::beast::http;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kReadChunk = 16u << 10;
constexpr size_t kWorkReadCap = 64u << 10;  // pipelined bytes held while an answer is in work
constexpr size_t kMaxPending = 16u << 20;   // unwritten answer bytes: past it the client counts as gone
constexpr auto kLingerQuiet = std::chrono::milliseconds(500);
constexpr auto kLingerMax = std::chrono::seconds(5);

Clock::duration secs(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::string lower_trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::pair<int, std::string> parse_error(const error_code& ec) {
  using E = http::error;
  if (ec == E::header_limit) return {431, "the request head is too large"};
  if (ec == E::body_limit) return {413, "the request body is too large"};
  if (ec == E::bad_content_length) return {400, "invalid Content-Length"};
  if (ec == E::bad_transfer_encoding) return {400, "invalid Transfer-Encoding"};
  if (ec == E::bad_method || ec == E::bad_target || ec == E::bad_version) return {400, "malformed request line"};
  if (ec == E::bad_field || ec == E::bad_value || ec == E::bad_line_ending || ec == E::bad_obs_fold) {
    return {400, "malformed header field"};
  }
  if (ec == E::bad_chunk || ec == E::bad_chunk_extension) return {400, "malformed chunked body"};
  return {400, "malformed request"};
}

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpFront::Impl& front, tcp::socket socket) : front_(front), opt_(front.opt), socket_(std::move(socket)), timer_(front.ioc) {}

  void start() {
    front_.sessions.push_back(this);
    pos_ = std::prev(front_.sessions.end());
    front_.open++;
    error_code ec;
    socket_.non_blocking(true, ec);
    socket_.set_option(tcp::no_delay(true), ec);
    new_parser();
    arm(secs(opt_.header_timeout_s));  // a new connection: its first head is due from the connect
    do_read();
  }

  bool in_work() const { return state_ == State::kWork; }

  void close() {
    if (state_ == State::kClosed) return;
    auto self = shared_from_this();
    state_ = State::kClosed;
    if (exchange_) std::exchange(exchange_, nullptr)->abort();
    release_buffered();
    error_code ec;
    timer_.cancel();
    socket_.close(ec);
    front_.sessions.erase(pos_);
    front_.open--;
    if (front_.stopping && front_.sessions.empty()) front_.stop_timer.cancel();
    keep_.reset();
  }

  void stop() {
    if (state_ == State::kWork) {
      keep_alive_ = false;  // answer, then close
    } else if (state_ != State::kClosing && state_ != State::kLinger) {
      close();
    }
  }

  // --- the exchange's calls (I/O thread) ---
  void respond(uint64_t seq, HttpResponse r) {
    if (!answering(seq) || started_) return;
    started_ = true;
    queue(head(r.status, r.content_type, r.headers, "Content-Length: " + std::to_string(r.body.size()) + "\r\n"));
    if (!head_only_) queue(std::move(r.body));
    done_ = true;
    do_write();
  }
  void start_stream(uint64_t seq, int status, const std::string& type, const HttpHeaders& headers) {
    if (!answering(seq) || started_) return;
    started_ = true;
    chunked_ = !http10_;
    if (http10_) keep_alive_ = false;  // HTTP/1.0 has no chunks: the close ends the body
    queue(head(status, type, headers, chunked_ ? "Transfer-Encoding: chunked\r\n" : ""));
    do_write();
  }
  void write_chunk(uint64_t seq, std::string chunk) {
    if (!answering(seq) || !started_ || done_ || chunk.empty() || head_only_) return;
    if (chunked_) {
      char size[24];
      std::snprintf(size, sizeof(size), "%zx\r\n", chunk.size());
      queue(size);
      chunk += "\r\n";
    }
    queue(std::move(chunk));
    if (pending_.load() > kMaxPending) return peer_gone();  // it does not read what it asked for
    do_write();
  }
  void end_stream(uint64_t seq) {
    if (!answering(seq) || !started_ || done_) return;
    if (chunked_ && !head_only_) queue("0\r\n\r\n");
    done_ = true;
    do_write();
  }

  std::atomic<size_t> pending_{0};  // queued answer bytes not written yet

 private:
  enum class State { kIdle, kHead, kBody, kWork, kClosing, kLinger, kClosed };

  bool answering(uint64_t seq) const { return seq == seq_ && state_ == State::kWork; }

  void new_parser() {
    parser_.emplace();
    parser_->header_limit(uint32_t(std::min<size_t>(opt_.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(uint64_t(opt_.max_body_bytes));
    parser_->eager(false);  // stop after the head: it is checked before the body is read
  }

  void arm(Clock::duration d) {
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->state_ == State::kClosed || self->timer_.expiry() > Clock::now()) return;  // re-armed
      self->on_deadline();
    });
  }
  void disarm() { timer_.expires_at(Clock::time_point::max()); }

  void on_deadline() {
    switch (state_) {
      case State::kIdle:
        return close();
      case State::kHead:
        return fail(408, "the request head did not arrive within " + fmt_s(opt_.header_timeout_s));
      case State::kBody:
        return fail(408, "the request body did not arrive within " + fmt_s(opt_.body_timeout_s));
      case State::kWork:
      case State::kClosing:
        return peer_gone();  // a write made no progress
      default:
        return close();
    }
  }
  static std::string fmt_s(double s) {
    char b[32];
    std::snprintf(b, sizeof(b), "%g s", s);
    return b;
  }

  // --- reading ---
  void do_read() {
    if (reading_ || state_ == State::kClosed || state_ == State::kClosing) return;
    if (state_ == State::kWork && buffer_.size() >= kWorkReadCap) return;
    reading_ = true;
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) { self->on_readable(ec); });
  }

  void on_readable(const error_code& wait_ec) {
    reading_ = false;
    if (state_ == State::kClosed) return;
    if (wait_ec) return peer_gone();
    error_code ec;
    // Sized by what is there: a thousand idle or trickling clients each hold a few bytes, not a chunk.
    const size_t ready = socket_.available(ec);
    const size_t n = socket_.read_some(buffer_.prepare(std::clamp<size_t>(ready, 512, kReadChunk)), ec);
    if (ec == net::error::would_block || ec == net::error::try_again) return do_read();
    if (ec) return peer_gone();  // EOF included: a client that closes is gone
    buffer_.commit(n);
    on_data();
    do_read();
  }

  void on_data() {
    switch (state_) {
      case State::kIdle:
        state_ = State::kHead;
        if (!first_) arm(secs(opt_.header_timeout_s));
        [[fallthrough]];
      case State::kHead:
      case State::kBody:
        return parse();
      case State::kLinger:
        buffer_.consume(buffer_.size());
        return arm(std::min<Clock::duration>(kLingerQuiet, std::max(Clock::duration(0), linger_until_ - Clock::now())));
      default:
        return;  // work: pipelined bytes wait
    }
  }

  void parse() {
    while (state_ == State::kHead || state_ == State::kBody) {
      if (buffer_.size() == 0) return;
      error_code ec;
      const size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      if (ec && ec != http::error::need_more) {
        auto [status, message] = parse_error(ec);
        return fail(status, message);
      }
      if (state_ == State::kHead && parser_->is_header_done() && !on_header()) return;
      if (state_ == State::kBody && !count_body()) return;
      if (parser_->is_done()) return dispatch();
      if (ec) {
        // Beast bounds the head; a chunk header or a trailer it still waits for is bounded here.
        if (buffer_.size() > opt_.max_header_bytes) return fail(431, "a chunk header or trailer is too large");
        return;
      }
      if (n == 0) return;
    }
  }

  // The head is complete: refuse what the body would not fix before reading it.
  bool on_header() {
    const auto& m = parser_->get();
    int fields = 0;
    for (auto it = m.begin(); it != m.end(); ++it) fields++;
    if (fields > opt_.max_header_fields) {
      return fail(431, "more than " + std::to_string(opt_.max_header_fields) + " header fields"), false;
    }
    const size_t hosts = m.count(http::field::host);
    if (hosts > 1 || (hosts == 0 && m.version() >= 11)) {
      return fail(400, "an HTTP/1.1 request needs exactly one Host header"), false;
    }
    const size_t te = m.count(http::field::transfer_encoding);
    if (te > 0) {
      const std::string v = lower_trim(sv(m[http::field::transfer_encoding]));
      if (te > 1 || v != "chunked") {
        return fail(501, "Transfer-Encoding '" + std::string(m[http::field::transfer_encoding]) +
                             "' is not supported (only chunked)"), false;
      }
      if (m.count(http::field::content_length)) return fail(400, "Content-Length and Transfer-Encoding together"), false;
    }
    const auto method = m.method();
    if (te == 0 && !m.count(http::field::content_length) &&
        (method == http::verb::post || method == http::verb::put || method == http::verb::patch)) {
      return fail(411, "a " + std::string(m.method_string()) + " needs a Content-Length or a chunked body"), false;
    }
    if (m.count(http::field::expect)) {
      if (lower_trim(sv(m[http::field::expect])) != "100-continue") return fail(417, "unsupported Expect header"), false;
      if (!parser_->is_done() && m.version() >= 11) queue("HTTP/1.1 100 Continue\r\n\r\n"), do_write();
    }
    state_ = State::kBody;
    arm(secs(opt_.body_timeout_s));
    parser_->eager(true);
    return true;
  }

  bool count_body() {
    const size_t now = parser_->get().body().size();
    if (now > counted_) {
      front_.buffered += now - counted_;
      counted_ = now;
    }
    if (front_.buffered > opt_.max_buffered_bytes) {
      return fail(503, "the server holds too many request bodies at once: retry later"), false;
    }
    return true;
  }
  void release_buffered() {
    front_.buffered -= counted_;
    counted_ = 0;
  }

  void dispatch();

  // --- writing ---
  std::string head(int status, const std::string& type, const HttpHeaders& headers, const std::string& framing) {
    if (front_.stopping) keep_alive_ = false;
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " +
                    std::string(http::obsolete_reason(http::int_to_status(unsigned(status)))) + "\r\n";
    if (!type.empty()) h += "Content-Type: " + type + "\r\n";
    for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
    h += framing;
    if (!keep_alive_) {
      h += "Connection: close\r\n";
    } else if (http10_) {
      h += "Connection: keep-alive\r\n";
    }
    return h + "\r\n";
  }

  void queue(std::string s) {
    pending_ += s.size();
    out_.push_back(std::move(s));
  }

  void do_write() {
    if (writing_ || out_.empty() || state_ == State::kClosed) return;
    writing_ = true;
    bufs_.clear();
    for (size_t i = 0; i < out_.size() && i < 64; ++i) bufs_.push_back(net::buffer(out_[i]));
    if (state_ == State::kWork || state_ == State::kClosing) arm(secs(opt_.write_timeout_s));
    net::async_write(socket_, bufs_, [self = shared_from_this(), n = bufs_.size()](const error_code& ec, size_t) {
      self->on_written(ec, n);
    });
  }

  void on_written(const error_code& ec, size_t n) {
    writing_ = false;
    if (state_ == State::kClosed) return;
    if (ec) return peer_gone();
    for (size_t i = 0; i < n; ++i) {
      pending_ -= out_.front().size();
      out_.pop_front();
    }
    if (!out_.empty()) return do_write();
    if (state_ == State::kWork) {
      disarm();
      if (done_) finish();
    } else if (state_ == State::kClosing) {
      linger();
    }
  }

  // The answer is out: the next request, or a graceful close.
  void finish() {
    auto self = shared_from_this();
    if (exchange_) std::exchange(exchange_, nullptr)->finished();
    release_buffered();
    keep_.reset();
    if (!keep_alive_ || front_.stopping) return linger();
    if (buffer_.size() == 0) buffer_.shrink_to_fit();  // an idle keep-alive connection holds no buffer
    state_ = State::kIdle;
    arm(secs(opt_.keep_alive_timeout_s));
    if (buffer_.size() > 0) on_data();  // a pipelined request
    do_read();
  }

  // Error answers: Connection: close, then linger.
  void fail(int status, const std::string& message) {
    if (state_ == State::kClosed || state_ == State::kClosing || state_ == State::kLinger) return;
    if (exchange_) std::exchange(exchange_, nullptr)->abort();
    release_buffered();
    state_ = State::kClosing;
    keep_alive_ = false;
    const HttpResponse r = opt_.error_response(status, message);
    queue(head(r.status, r.content_type, r.headers, "Content-Length: " + std::to_string(r.body.size()) + "\r\n") + r.body);
    if (writing_) {
      arm(secs(opt_.write_timeout_s));
    } else {
      do_write();
    }
  }

  void linger() {
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    state_ = State::kLinger;
    keep_.reset();
    buffer_.consume(buffer_.size());
    linger_until_ = Clock::now() + kLingerMax;
    arm(kLingerQuiet);
    do_read();
  }

  void peer_gone() {
    if (exchange_) std::exchange(exchange_, nullptr)->abort();
    close();
  }

  HttpFront::Impl& front_;
  const HttpFrontOptions& opt_;
  tcp::socket socket_;
  net::steady_timer timer_;
  std::list<Session*>::iterator pos_;
  State state_ = State::kIdle;
  bool first_ = true;  // no request answered yet on this connection
  bool reading_ = false, writing_ = false;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  size_t counted_ = 0;  // body bytes of this connection in front_.buffered
  std::deque<std::string> out_;
  std::vector<net::const_buffer> bufs_;
  Clock::time_point linger_until_;

  // The request in work.
  uint64_t seq_ = 0;
  std::shared_ptr<Exchange> exchange_;
  std::shared_ptr<Session> keep_;  // alive while answering, even with no socket operation pending
  bool keep_alive_ = true, http10_ = false, head_only_ = false;
  bool started_ = false, chunked_ = false, done_ = false;

  friend class Exchange;
};

void Session::dispatch() {
  disarm();
  auto msg = parser_->release();
  new_parser();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  split_target(req.target, req.path, req.query);
  req.version = int(msg.version());
  for (const auto& f : msg) req.headers.emplace_back(lower_trim(sv(f.name_string())), std::string(f.value()));
  req.body = std::move(msg.body());
  keep_alive_ = msg.keep_alive();
  http10_ = msg.version() < 11;
  head_only_ = msg.method() == http::verb::head;
  started_ = chunked_ = done_ = false;
  state_ = State::kWork;
  first_ = false;
  keep_ = shared_from_this();
  exchange_ = std::make_shared<Exchange>(weak_from_this(), ++seq_, front_.gate);
  front_.gate->to_work([&front = front_, req = std::move(req), x = exchange_]() mutable { run_handler(front, req, x); });
}

// --- Exchange: any thread -> the I/O thread ---
void Exchange::respond(HttpResponse r) {
  gate_->to_io([s = session_, q = seq_, r = std::move(r)]() mutable {
    if (auto p = s.lock()) p->respond(q, std::move(r));
  });
}
void Exchange::start_stream(int status, std::string type, HttpHeaders headers) {
  gate_->to_io([s = session_, q = seq_, status, type = std::move(type), h = std::move(headers)] {
    if (auto p = s.lock()) p->start_stream(q, status, type, h);
  });
}
void Exchange::write(std::string chunk) {
  gate_->to_io([s = session_, q = seq_, c = std::move(chunk)]() mutable {
    if (auto p = s.lock()) p->write_chunk(q, std::move(c));
  });
}
void Exchange::end() {
  gate_->to_io([s = session_, q = seq_] {
    if (auto p = s.lock()) p->end_stream(q);
  });
}
size_t Exchange::pending_bytes() const {
  auto p = session_.lock();
  return p ? p->pending_.load() : 0;
}

void start_session(HttpFront::Impl& front, tcp::socket socket) {
  std::make_shared<Session>(front, std::move(socket))->start();
}
bool session_in_work(const Session& s) { return s.in_work(); }
void close_session(Session& s) { s.close(); }
void stop_session(Session& s) { s.stop(); }

}  // namespace tern::api
