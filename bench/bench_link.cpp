// The link between two ranks as tern's communicator sees it (issue 17 item 5): a ping-pong of
// send/recv (one-way time = round trip / 2) and f32 all-reduces, for message sizes from 8 bytes to
// 4 MiB. Run under `mpirun -np 2` (e.g. scripts/netns mpirun: one rank per network namespace over
// the shaped veth). The smallest message's one-way time is the per-message latency the planner takes
// (tern plan --link-latency-us); the largest gives the bandwidth actually reached.
// Usage: mpirun -np 2 bench_link [--reps N]
// Output (rank 0): one JSON line per size, then a summary line {"latency_us", "bandwidth_gbps"}.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/median.h"
#include "parallel/mpi_communicator.h"

using namespace tern;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One-way seconds of a ping-pong of `bytes` between ranks 0 and 1 (median of `reps` round trips / 2).
Result<double> ping_pong(Communicator& c, std::vector<char>& buf, int64_t bytes, int reps) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    if (c.rank() == 0) {
      TERN_RETURN_IF_ERROR(c.send(buf.data(), bytes, 1, 7));
      TERN_RETURN_IF_ERROR(c.recv(buf.data(), bytes, 1, 7));
    } else if (c.rank() == 1) {
      TERN_RETURN_IF_ERROR(c.recv(buf.data(), bytes, 0, 7));
      TERN_RETURN_IF_ERROR(c.send(buf.data(), bytes, 0, 7));
    }
    t.push_back(seconds_since(t0) / 2);
  }
  return median(t);
}

// Seconds of one all-reduce of `bytes` of f32 (median over reps; a barrier lines the ranks up first).
Result<double> all_reduce(Communicator& c, std::vector<float>& buf, int64_t bytes, int reps) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    TERN_RETURN_IF_ERROR(c.barrier());
    const auto t0 = Clock::now();
    TERN_RETURN_IF_ERROR(c.all_reduce_sum(buf.data(), bytes / 4));
    t.push_back(seconds_since(t0));
  }
  return median(t);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--reps" && i + 1 < argc) reps = std::max(3, std::stoi(argv[++i]));
    else {
      fmt::print(stderr, "usage: mpirun -np 2 bench_link [--reps N]\n");
      return 2;
    }
  }
  auto opened = open_mpi_communicator();
  if (!opened.is_ok()) {
    fmt::print(stderr, "bench_link: {}\n", opened.status().message());
    return 1;
  }
  Communicator& c = **opened;
  if (c.size() != 2) {
    if (c.rank() == 0) fmt::print(stderr, "bench_link: run it with mpirun -np 2 (this job has {})\n", c.size());
    return 2;
  }
  const std::vector<int64_t> sizes = {8, 1024, 8192, 65536, 1 << 20, 4 << 20};
  std::vector<char> pbuf(size_t(sizes.back()));
  std::vector<float> abuf(size_t(sizes.back() / 4), 1.0f);
  double latency = 0, bandwidth = 0;
  for (int64_t bytes : sizes) {
    const int n = bytes >= (1 << 20) ? std::max(3, reps / 20) : reps;
    auto pp = ping_pong(c, pbuf, bytes, n);
    auto ar = all_reduce(c, abuf, std::max<int64_t>(bytes, 4), n);
    if (!pp.is_ok() || !ar.is_ok()) {
      fmt::print(stderr, "bench_link: rank {}: {}\n", c.rank(), (pp.is_ok() ? ar.status() : pp.status()).message());
      return 1;
    }
    if (bytes == sizes.front()) latency = *pp;
    if (bytes == sizes.back()) bandwidth = double(bytes) * 8 / (*pp - latency) / 1e9;
    if (c.rank() == 0) {
      nlohmann::ordered_json j;
      j["bytes"] = bytes;
      j["one_way_us"] = *pp * 1e6;
      j["all_reduce_us"] = *ar * 1e6;
      j["reps"] = n;
      fmt::print("{}\n", j.dump());
    }
  }
  if (c.rank() == 0) {
    nlohmann::ordered_json j;
    j["latency_us"] = latency * 1e6;
    j["bandwidth_gbps"] = bandwidth;  // 4 MiB one-way, less the latency
    fmt::print("{}\n", j.dump());
  }
  return 0;
}
