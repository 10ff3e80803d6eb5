// HttpFront's connections, the writing side: answers (whole or chunked), error answers, lingering
// closes, the exchange's calls from other threads (the class: http_session.h).
#include <boost/asio/write.hpp>

#include <cstdio>

#include "api/http_session.h"

namespace tern::api {

namespace {

constexpr size_t kMaxPending = 16u << 20;  // unwritten answer bytes: past it the client counts as gone
constexpr auto kLingerQuiet = std::chrono::milliseconds(500);
constexpr auto kLingerMax = std::chrono::seconds(5);

const char* reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
  }
}

}  // namespace

void Session::start() {
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

void Session::close() {
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

void Session::stop() {
  if (state_ == State::kWork) {
    keep_alive_ = false;  // answer, then close
  } else if (state_ != State::kClosing && state_ != State::kLinger) {
    close();
  }
}

void Session::respond(uint64_t seq, HttpResponse r) {
  if (!answering(seq) || started_) return;
  started_ = true;
  queue(head(r.status, r.content_type, r.headers, "Content-Length: " + std::to_string(r.body.size()) + "\r\n"));
  if (!head_only_) queue(std::move(r.body));
  done_ = true;
  do_write();
}

void Session::start_stream(uint64_t seq, int status, const std::string& type, const HttpHeaders& headers) {
  if (!answering(seq) || started_) return;
  started_ = true;
  chunked_ = !http10_;
  if (http10_) keep_alive_ = false;  // HTTP/1.0 has no chunks: the close ends the body
  queue(head(status, type, headers, chunked_ ? "Transfer-Encoding: chunked\r\n" : ""));
  do_write();
}

void Session::write_chunk(uint64_t seq, std::string chunk) {
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

void Session::end_stream(uint64_t seq) {
  if (!answering(seq) || !started_ || done_) return;
  if (chunked_ && !head_only_) queue("0\r\n\r\n");
  done_ = true;
  if (writing_ || !out_.empty()) return do_write();
  finish();  // HTTP/1.0 or HEAD: nothing left to write, the close (or the next request) ends it
}

void Session::arm(Clock::duration d) {
  timer_.expires_after(d);
  timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->state_ == State::kClosed || self->timer_.expiry() > Clock::now()) return;  // re-armed
    self->on_deadline();
  });
}

void Session::release_buffered() {
  front_.buffered -= counted_;
  counted_ = 0;
}

std::string Session::head(int status, const std::string& type, const HttpHeaders& headers, const std::string& framing) {
  if (front_.stopping) keep_alive_ = false;
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " +
                  reason(status) + "\r\n";
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

void Session::queue(std::string s) {
  pending_ += s.size();
  out_.push_back(std::move(s));
}

void Session::do_write() {
  if (writing_ || out_.empty() || state_ == State::kClosed) return;
  writing_ = true;
  bufs_.clear();
  for (size_t i = 0; i < out_.size() && i < 64; ++i) bufs_.push_back(net::buffer(out_[i]));
  if (state_ == State::kWork || state_ == State::kClosing) arm(secs(opt_.write_timeout_s));
  net::async_write(socket_, bufs_, [self = shared_from_this(), n = bufs_.size()](const error_code& ec, size_t) {
    self->on_written(ec, n);
  });
}

void Session::on_written(const error_code& ec, size_t n) {
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
void Session::finish() {
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
void Session::fail(int status, const std::string& message) {
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

void Session::linger() {
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  state_ = State::kLinger;
  keep_.reset();
  buffer_.consume(buffer_.size());
  linger_until_ = Clock::now() + kLingerMax;
  arm(kLingerQuiet);
  do_read();
}

void Session::peer_gone() {
  if (exchange_) std::exchange(exchange_, nullptr)->abort();
  close();
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
