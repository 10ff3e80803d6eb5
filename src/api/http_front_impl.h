// HttpFront's insides, shared by http_front.cpp (listener, connection table, stop) and http_session*.cpp
// (one connection). Only these files include Asio.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <list>
#include <mutex>

#include "api/http_front.h"

namespace tern::api {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class Session;

// What outlives the front: exchanges kept by handlers after the server ended post through it, and find
// it closed (posting into a destroyed io_context or pool would be undefined).
struct FrontGate {
  std::mutex mu;
  net::io_context* ioc = nullptr;
  net::thread_pool* pool = nullptr;

  template <typename F>
  void to_io(F&& f) {
    std::lock_guard<std::mutex> lock(mu);
    if (ioc) net::post(*ioc, std::forward<F>(f));
  }
  template <typename F>
  void to_work(F&& f) {
    std::lock_guard<std::mutex> lock(mu);
    if (pool) net::post(*pool, std::forward<F>(f));
  }
};

struct HttpFront::Impl {
  Impl(HttpFrontOptions o, HttpHandler h);

  HttpFrontOptions opt;
  HttpHandler handler;
  // Sessions point here and at the I/O context through the gate; both outlive every session (the
  // front's destructor closes the gate, then destroys the context with the sessions its handlers hold).
  std::shared_ptr<FrontGate> gate = std::make_shared<FrontGate>();
  net::thread_pool workers;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  net::steady_timer retry{ioc};       // accept again after running out of descriptors
  net::steady_timer stop_timer{ioc};  // stop(): the last answers get this long, then the loop ends

  // I/O thread only.
  std::list<Session*> sessions;  // oldest first
  bool stopping = false;
  size_t buffered = 0;           // request body bytes held by all sessions

  std::atomic<int64_t> open{0};

  void accept();
  void on_accept(const boost::system::error_code& ec, tcp::socket socket);
  // Frees one slot: closes the oldest connection that has no request in work. False if none can go.
  bool evict_one();
  void begin_stop();
};

// A connection (http_session.h): started on the I/O thread, it registers itself in front.sessions and
// removes itself when it closes.
void start_session(HttpFront::Impl& front, tcp::socket socket);
bool session_in_work(const Session& s);  // a request of it is being answered
void close_session(Session& s);          // at once, quietly
void stop_session(Session& s);           // front stopping: close now, or after the answer in work

}  // namespace tern::api
