// The HTTP/1.1 front of `tern serve`, independent of what it serves: one I/O thread owns every socket
// (Boost.Asio, Boost.Beast's request parser), so slow or idle clients cost a few KiB each and no thread;
// complete requests go to a handler on a small worker pool, which answers through an HttpExchange from
// any thread, at once or later (generation), whole or as a chunked stream.
//
// Every limit ends in a clean error and a closed connection, never a hang: a request head past its
// deadline or past the header size / count limits (408 / 431), a body past its deadline or size (408 /
// 413, chunked bodies counted the same), unknown transfer codings (501), a POST without a length (411),
// malformed framing (400). Pipelined requests are answered in order. Asio appears only in http_front.cpp
// and http_session*.cpp, Beast's parser only in http_session.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace boost::asio {
class io_context;
}

namespace tern::api {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent
  std::string path;    // percent-decoded, without the query
  std::string query;
  int version = 11;    // 10 or 11
  HttpHeaders headers; // names in lower case, in the order sent
  std::string body;    // de-chunked
  // The first value of a header (name in lower case), or "" (`present` tells the two apart).
  std::string header(std::string_view name, bool* present = nullptr) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  HttpHeaders headers;  // extra headers (Content-Length / Connection / framing are the front's)
  std::string body;
};

// One request's answer channel. Exactly one of respond() or start_stream() (then write()s and end()).
// Every method is thread-safe and a no-op once the connection is gone.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual void respond(HttpResponse response) = 0;
  virtual void start_stream(int status, std::string content_type, HttpHeaders headers) = 0;
  virtual void write(std::string chunk) = 0;
  virtual void end() = 0;
  // fn runs once if the client goes away (closes, resets, stops reading) before the answer is complete:
  // on the I/O thread (keep it short), or at once in this call if the client is already gone.
  virtual void on_abort(std::function<void()> fn) = 0;
  // Runs fn on the front's worker pool (not serialised: guard shared state); dropped once the front is gone.
  virtual void post(std::function<void()> fn) = 0;
  // Bytes queued for this client and not yet written (a reader too slow for a stream can be told apart).
  virtual size_t pending_bytes() const = 0;
};

using HttpHandler = std::function<void(HttpRequest&, std::shared_ptr<HttpExchange>)>;

struct HttpFrontOptions {
  size_t max_header_bytes = 32u << 10;  // request line + header fields; past it: 431
  int max_header_fields = 100;          // past it: 431
  size_t max_body_bytes = 4u << 20;     // Content-Length or de-chunked; past it: 413
  double header_timeout_s = 10;         // from the first byte of a request (or the connection) to its head's end: 408
  double body_timeout_s = 60;           // from the head's end to the body's end: 408
  double keep_alive_timeout_s = 5;      // idle between requests: closed quietly
  double write_timeout_s = 30;          // one write that makes no progress this long: the client is gone
  int max_connections = 10000;          // past it the longest-waiting connection without a request in work closes
  int worker_threads = 4;               // run the handlers
  // The handler never blocks (a proxy: it starts non-blocking I/O on io_context() and answers from its
  // completions): it runs on the I/O thread itself, which saves two thread hand-offs per request (a
  // worker's wake-up, then the I/O thread's for the answer). Heavy work it moves with post().
  bool handler_on_io_thread = false;
  size_t max_buffered_bytes = 256u << 20;  // request bodies held by all connections at once; past it: 503
  // The body of the front's own errors (408, 413, 431, ...); default: the message as text/plain.
  std::function<HttpResponse(int status, const std::string& message)> error_response;
};

class HttpFront {
 public:
  HttpFront(HttpFrontOptions options, HttpHandler handler);
  ~HttpFront();
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  // Binds and listens; returns the port (port 0: any free one).
  Result<int> bind(const std::string& host, int port);
  // Serves until stop(); returns once every connection has closed and the workers are idle.
  void run();
  // Thread-safe: stops accepting, closes connections that have no request in work, lets the answers in
  // progress finish writing (at most write_timeout_s), then run() returns.
  void stop();
  // Connections open now (any thread).
  int64_t connections() const;
  // The I/O thread's context: run() runs it. For a handler_on_io_thread handler's own sockets and timers,
  // which must be gone before the front is, and which keep run() from returning while they have work.
  boost::asio::io_context& io_context();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::api
