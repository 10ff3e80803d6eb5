// The router's client side: one HTTP/1.1 exchange with a replica on the router's I/O thread (Boost.Beast
// over Asio), reusing keep-alive connections from a pool. A chunked answer (a stream) is reported piece
// by piece as it arrives; a Content-Length answer whole. Every step has a deadline; a connection cut or
// reset is an error the caller sees (a cut stream is told apart from one that ended: the chunked framing
// did not finish). Only src/router/*.cpp include this header (it brings Asio in).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/http_front.h"
#include "router/replica_set.h"

namespace tern::router {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

// Idle keep-alive connections per replica URL, and each replica's resolved endpoints (I/O thread only).
class ConnectionPool {
 public:
  // A connection still open (the peer has not closed it) and idle for less than the replica's
  // keep-alive window, or null.
  std::unique_ptr<beast::tcp_stream> take(const std::string& url);
  void give(const std::string& url, std::unique_ptr<beast::tcp_stream> s);
  void drop(const std::string& url);  // the replica went down: its idle connections go
  std::vector<tcp::endpoint>* endpoints(const std::string& url);
  void set_endpoints(const std::string& url, std::vector<tcp::endpoint> eps) { endpoints_[url] = std::move(eps); }

 private:
  struct Idle {
    std::unique_ptr<beast::tcp_stream> stream;
    std::chrono::steady_clock::time_point since;
  };
  std::unordered_map<std::string, std::vector<Idle>> idle_;
  std::unordered_map<std::string, std::vector<tcp::endpoint>> endpoints_;
};

struct UpstreamEnd {
  bool ok = false;     // the whole answer arrived
  std::string body;    // a Content-Length answer's body (chunked bodies went through on_data)
  std::string error;   // why not, for logs and error events
  bool cancelled = false;  // cancel() ended it, not the replica
  bool timed_out = false;  // the replica did not answer (connect, head or the next piece) in time
};

// What a call reports, on the I/O thread: on_head once, on_data for each piece of a chunked body, then
// on_end exactly once (also after a failure at any step, and after cancel()). on_bytes whenever bytes
// came from the replica (a head, any piece of a body, chunked or not): the replica is not hung.
class UpstreamSink {
 public:
  virtual ~UpstreamSink() = default;
  virtual void on_bytes() {}
  virtual void on_head(int status, api::HttpHeaders headers, bool chunked) = 0;
  virtual void on_data(std::string_view data) = 0;
  virtual void on_end(UpstreamEnd end) = 0;
};

struct CallTimeouts {
  double connect_s = 1;    // TCP connect
  double response_s = 600; // request written -> head, and between pieces of the body
};

struct UpstreamContext {
  net::io_context& io;
  ConnectionPool& pool;
};

class UpstreamCall;

// Starts one exchange: `request` is the whole request as bytes (head and body). I/O thread only.
std::shared_ptr<UpstreamCall> start_call(UpstreamContext ctx, const ReplicaAddress& to, std::string request,
                                         bool head_only, std::shared_ptr<UpstreamSink> sink, CallTimeouts t);
// Closes the call's connection; its sink then gets on_end with cancelled set. I/O thread only.
void cancel_call(UpstreamCall& call);

// The request bytes for a replica: `method target`, Host set to the replica, the given headers, and
// Content-Length for the body.
std::string build_request(const std::string& method, const std::string& target, const ReplicaAddress& to,
                          const api::HttpHeaders& headers, const std::string& body);

}  // namespace tern::router
