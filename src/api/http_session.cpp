// HttpFront's connections, the reading side: socket readiness, Beast's parser, the checks on a complete
// head, deadlines, and the hand-off of a complete request to a worker (the class: http_session.h).
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cstdio>

#include "api/http_session.h"

namespace tern::api {

namespace http = boost::beast::http;

struct RequestParser : http::request_parser<http::string_body> {};

namespace {

constexpr size_t kReadChunk = 16u << 10;
constexpr size_t kWorkReadCap = 64u << 10;  // pipelined bytes held while an answer is in work
constexpr auto kLingerQuiet = std::chrono::milliseconds(500);

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::string lower_trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::pair<int, std::string> parse_error(const boost::system::error_code& ec) {
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

std::string fmt_s(double s) {
  char b[32];
  std::snprintf(b, sizeof(b), "%g s", s);
  return b;
}

}  // namespace

// Here, where the parser's type is complete.
Session::Session(HttpFront::Impl& front, tcp::socket socket)
    : front_(front), opt_(front.opt), socket_(std::move(socket)), timer_(front.ioc) {}

Session::~Session() = default;

void Session::new_parser() {
  parser_ = std::make_unique<RequestParser>();
  parser_->header_limit(uint32_t(std::min<size_t>(opt_.max_header_bytes, UINT32_MAX)));
  parser_->body_limit(uint64_t(opt_.max_body_bytes));
  parser_->eager(false);  // stop after the head: it is checked before the body is read
}

void Session::on_deadline() {
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

void Session::do_read() {
  if (reading_ || state_ == State::kClosed || state_ == State::kClosing) return;
  if (state_ == State::kWork && buffer_.size() >= kWorkReadCap) return;
  reading_ = true;
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) { self->on_readable(ec); });
}

void Session::on_readable(const error_code& wait_ec) {
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

void Session::on_data() {
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

void Session::parse() {
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
bool Session::on_header() {
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

bool Session::count_body() {
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
  if (opt_.handler_on_io_thread) return run_handler(front_, req, exchange_);
  front_.gate->to_work([&front = front_, req = std::move(req), x = exchange_]() mutable { run_handler(front, req, x); });
}

}  // namespace tern::api
