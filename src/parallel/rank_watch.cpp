// RankWatch: see rank_watch.h.
#include "parallel/rank_watch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <sstream>

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline` (0 when past it), for poll().
int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? int(left) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int n = poll(&p, 1, ms_left(deadline));
    if (n > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
    if (n == 0 || errno != EINTR) return false;
  }
}

bool write_all(int fd, const void* data, size_t n, Clock::time_point deadline) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    if (!wait_for(fd, POLLOUT, deadline)) return false;
    const ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0) return false;
    p += k;
    n -= size_t(k);
  }
  return true;
}

bool read_all(int fd, void* data, size_t n, Clock::time_point deadline) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    if (!wait_for(fd, POLLIN, deadline)) return false;
    const ssize_t k = recv(fd, p, n, MSG_DONTWAIT);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0) return false;
    p += k;
    n -= size_t(k);
  }
  return true;
}

// Rank 0's IPv4 addresses, the other ranks' ways to reach it: interfaces that are up first (a rank on
// another machine or network namespace), loopback last.
std::vector<std::string> local_addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* a = list; a; a = a->ifa_next) {
      if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || !(a->ifa_flags & IFF_UP)) continue;
      if (a->ifa_flags & IFF_LOOPBACK) continue;
      char buf[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof(buf));
      out.push_back(buf);
    }
    freeifaddrs(list);
  }
  out.push_back("127.0.0.1");
  return out;
}

// A connected, verified socket to rank 0 at one of `addrs`, or -1.
int connect_to_root(const std::vector<std::string>& addrs, uint16_t port, uint64_t nonce, int32_t rank,
                    Clock::time_point deadline) {
  for (const std::string& addr : addrs) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) continue;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    // Each address gets at most a second of its own, so an unreachable one does not use up the rest.
    const auto until = std::min(deadline, Clock::now() + std::chrono::seconds(1));
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 || errno == EINPROGRESS;
    if (ok) ok = wait_for(fd, POLLOUT, until);
    int err = 0;
    socklen_t len = sizeof(err);
    if (ok) ok = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    char hello[12];
    std::memcpy(hello, &nonce, 8);
    std::memcpy(hello + 8, &rank, 4);
    uint64_t echo = 0;
    if (ok) ok = write_all(fd, hello, sizeof(hello), until) && read_all(fd, &echo, 8, until) && echo == nonce;
    if (ok) return fd;
    close(fd);
    if (Clock::now() >= deadline) break;
  }
  return -1;
}

}  // namespace

Result<std::unique_ptr<RankWatch>> RankWatch::start(Communicator& comm, double connect_timeout_s) {
  const int rank = comm.rank(), size = comm.size();
  if (size < 2) return Status::error("a rank watch needs two or more ranks");
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(connect_timeout_s));

  // Rank 0 listens; "nonce port addr addr ..." goes to every rank (an empty text: rank 0 could not listen).
  int listener = -1;
  std::string invite;
  if (rank == 0) {
    listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t len = sizeof(sa);
    if (listener >= 0 && bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 &&
        listen(listener, size + 16) == 0 && getsockname(listener, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
      std::ostringstream s;
      s << std::random_device{}() * 4294967296ull + std::random_device{}() << ' ' << ntohs(sa.sin_port);
      for (const std::string& a : local_addresses()) s << ' ' << a;
      invite = s.str();
    }
  }
  int64_t n = int64_t(invite.size());
  TERN_RETURN_IF_ERROR(comm.broadcast(&n, sizeof(n), 0));
  invite.resize(size_t(n));
  if (n > 0) TERN_RETURN_IF_ERROR(comm.broadcast(invite.data(), n, 0));
  uint64_t nonce = 0;
  unsigned port = 0;
  std::vector<std::string> addrs;
  {
    std::istringstream s(invite);
    s >> nonce >> port;
    for (std::string a; s >> a;) addrs.push_back(a);
  }

  std::vector<int> fds, fd_ranks;
  int32_t ok = 0;
  if (n > 0 && rank != 0) {
    const int fd = connect_to_root(addrs, uint16_t(port), nonce, int32_t(rank), deadline);
    if (fd >= 0) fds.push_back(fd);
    ok = fd >= 0;
  } else if (n > 0) {
    // Accept until every other rank said the nonce and its rank; strangers are closed.
    std::vector<bool> seen(size_t(size), false);
    while (int(fds.size()) < size - 1 && wait_for(listener, POLLIN, deadline)) {
      const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) continue;
      char hello[12];
      uint64_t got = 0;
      int32_t who = -1;
      const auto until = std::min(deadline, Clock::now() + std::chrono::seconds(1));
      bool good = read_all(fd, hello, sizeof(hello), until);
      if (good) {
        std::memcpy(&got, hello, 8);
        std::memcpy(&who, hello + 8, 4);
        good = got == nonce && who > 0 && who < size && !seen[size_t(who)] && write_all(fd, &nonce, 8, until);
      }
      if (!good) {
        close(fd);
        continue;
      }
      seen[size_t(who)] = true;
      fds.push_back(fd);
      fd_ranks.push_back(who);
    }
    ok = int(fds.size()) == size - 1;
  }
  if (listener >= 0) close(listener);

  std::vector<int32_t> all(size_t(size), 0);
  const Status gathered = comm.all_gather(&ok, sizeof(ok), all.data());
  int missing = -1;
  for (int r = 0; r < size && gathered.is_ok(); ++r) {
    if (!all[size_t(r)] && missing < 0) missing = r;
  }
  if (!gathered.is_ok() || missing >= 0 || n == 0) {
    for (int fd : fds) close(fd);
    if (!gathered.is_ok()) return gathered;
    if (n == 0) return Status::error("rank 0 could not open a listening TCP socket");
    return Status::error("rank " + std::to_string(missing) + " could not reach rank 0 over TCP (port " +
                         std::to_string(port) + ")");
  }
  return std::unique_ptr<RankWatch>(new RankWatch(rank, std::move(fds), std::move(fd_ranks)));
}

RankWatch::RankWatch(int rank, std::vector<int> fds, std::vector<int> fd_ranks)
    : rank_(rank), fds_(std::move(fds)), fd_ranks_(std::move(fd_ranks)) {
  if (rank_ != 0) return;
  if (pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
  thread_ = std::thread([this] { watch_loop(); });
}

RankWatch::~RankWatch() {
  disarm();
  if (thread_.joinable()) {
    const char c = 0;
    if (wake_[1] >= 0) (void)!write(wake_[1], &c, 1);
    thread_.join();
  }
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
  for (int fd : fds_) close(fd);
}

void RankWatch::arm(std::function<void(int rank)> on_lost) {
  std::lock_guard<std::mutex> lock(mu_);
  if (lost_ >= 0) return on_lost(lost_);
  on_lost_ = std::move(on_lost);
}

void RankWatch::disarm() {
  std::lock_guard<std::mutex> lock(mu_);  // waits for a callback that is running
  on_lost_ = nullptr;
}

void RankWatch::watch_loop() {
  // The other ranks never write after the handshake: readable means the connection ended (end of
  // stream, reset), i.e. that rank's process is gone.
  std::vector<pollfd> p;
  for (int fd : fds_) p.push_back({fd, POLLIN, 0});
  p.push_back({wake_[0], POLLIN, 0});
  for (;;) {
    const int n = poll(p.data(), nfds_t(p.size()), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (p.back().revents & POLLIN) || wake_[0] < 0) return;
    for (size_t i = 0; i + 1 < p.size(); ++i) {
      if (!p[i].revents) continue;
      char c;
      const ssize_t k = recv(p[i].fd, &c, 1, MSG_DONTWAIT);
      if (k > 0 || (k < 0 && (errno == EAGAIN || errno == EINTR))) continue;
      std::lock_guard<std::mutex> lock(mu_);
      if (on_lost_) {
        on_lost_(fd_ranks_[i]);
      } else {
        lost_ = fd_ranks_[i];
      }
      on_lost_ = nullptr;
      return;
    }
  }
}

}  // namespace tern
