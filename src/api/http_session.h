// One connection of HttpFront, driven on the I/O thread (declared here, defined in http_session.cpp:
// reading and parsing, and http_session_write.cpp: answers, errors, closing). States:
//   idle   waiting for a request's first byte (keep-alive timeout; for a new connection the head deadline)
//   head   reading the request line and fields (deadline: header_timeout_s)
//   body   reading the body, Content-Length or chunked (deadline: body_timeout_s)
//   work   the handler answers; reads go on (a close is noticed; pipelined bytes wait in the buffer)
//   closing / linger   an error answer is written, then the client's leftovers are read and dropped
//                      briefly before the close, so the answer is not lost to a TCP reset
// Nothing waits in a thread: readiness of the socket, timers and exchange calls drive each step.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <deque>

#include "api/http_exchange.h"

namespace tern::api {

struct RequestParser;  // Beast's request parser (http_session.cpp)

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;
  using error_code = boost::system::error_code;

  Session(HttpFront::Impl& front, tcp::socket socket);
  ~Session();

  void start();
  bool in_work() const { return state_ == State::kWork; }
  void close();  // at once, quietly
  void stop();   // the front stops: close now, or after the answer in work

  // The exchange's calls (I/O thread); `seq` tells a late call for an earlier request apart.
  void respond(uint64_t seq, HttpResponse r);
  void start_stream(uint64_t seq, int status, const std::string& type, const HttpHeaders& headers);
  void write_chunk(uint64_t seq, std::string chunk);
  void end_stream(uint64_t seq);

  std::atomic<size_t> pending_{0};  // queued answer bytes not written yet

 private:
  enum class State { kIdle, kHead, kBody, kWork, kClosing, kLinger, kClosed };

  bool answering(uint64_t seq) const { return seq == seq_ && state_ == State::kWork; }

  // http_session.cpp
  void new_parser();
  void on_deadline();
  void do_read();
  void on_readable(const error_code& wait_ec);
  void on_data();
  void parse();
  bool on_header();  // the head is complete: false when it was refused
  bool count_body();
  void dispatch();

  // http_session_write.cpp
  void arm(Clock::duration d);
  void disarm() { timer_.expires_at(Clock::time_point::max()); }
  void release_buffered();
  std::string head(int status, const std::string& type, const HttpHeaders& headers, const std::string& framing);
  void queue(std::string s);
  void do_write();
  void on_written(const error_code& ec, size_t n);
  void finish();                                    // the answer is out: the next request, or a close
  void fail(int status, const std::string& message);  // an error answer, Connection: close, then linger
  void linger();
  void peer_gone();

  HttpFront::Impl& front_;
  const HttpFrontOptions& opt_;
  tcp::socket socket_;
  net::steady_timer timer_;
  std::list<Session*>::iterator pos_;
  State state_ = State::kIdle;
  bool first_ = true;  // no request answered yet on this connection
  bool reading_ = false, writing_ = false;
  boost::beast::flat_buffer buffer_;
  std::unique_ptr<RequestParser> parser_;
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
};

inline Session::Clock::duration secs(double s) {
  return std::chrono::duration_cast<Session::Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace tern::api
