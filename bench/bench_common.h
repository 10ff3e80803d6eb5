// Shared by the benchmark programs: aligned buffers, a wall clock and argument parsing.
// The bandwidth probes themselves live in the library (kernels/cpu/read_bandwidth.h).
#pragma once

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/cpu/read_bandwidth.h"

namespace tern::bench {

// "--ids 1,2,3": a comma-separated list of token ids.
inline std::vector<int32_t> ids_from_list(const std::string& v) {
  std::vector<int32_t> ids;
  for (size_t p = 0; p < v.size();) {
    size_t q = v.find(',', p);
    if (q == std::string::npos) q = v.size();
    ids.push_back(int32_t(std::stol(v.substr(p, q - p))));
    p = q + 1;
  }
  return ids;
}

// "--reference-ids FILE": the first sequence's ids of a reference JSON ({"sequences": [{"ids": [...]}]}).
inline std::vector<int32_t> ids_from_reference(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f)["sequences"][0]["ids"].get<std::vector<int32_t>>();
}

// n token ids drawn uniformly from the first min(vocab, 32000) ids (seeded: the same prompt on every
// run and every engine), for prompts whose content does not matter to the figure.
inline std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(std::min<int64_t>(vocab, 32000) - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = d(rng);
  return ids;
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<char, FreeDeleter>;

// 2 MiB aligned (transparent huge pages when the kernel offers them) and touched, so page faults
// are not timed.
inline Buffer alloc_buffer(size_t bytes) {
  const size_t align = size_t(2) << 20;
  bytes = (bytes + align - 1) / align * align;
  Buffer b(static_cast<char*>(std::aligned_alloc(align, bytes)));
  if (!b) {
    std::fprintf(stderr, "cannot allocate %zu bytes\n", bytes);
    std::exit(1);
  }
  for (size_t i = 0; i < bytes; i += 4096) b.get()[i] = char(i >> 12);
  return b;
}

// CPU time of the calling thread: on a shared machine a 1-thread run timed with it is not charged
// for the time the thread spent descheduled.
inline double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// The CPU's model name (/proc/cpuinfo), printed beside every figure.
inline std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Minimal `--name value` parsing: returns the value after `name`, or `fallback`.
inline std::string arg_value(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}
inline bool has_flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return true;
  return false;
}

// A process's resident set in KiB (VmRSS of /proc/PID/status; pid 0: this process), -1 if unreadable.
inline int64_t rss_kib(int pid = 0) {
  std::ifstream f(pid ? "/proc/" + std::to_string(pid) + "/status" : std::string("/proc/self/status"));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// The matmul shapes of a Llama-3.2-1B layer and its LM head: y[n] = x[k] · W[n, k]ᵀ.
struct MatmulShape {
  const char* name;
  int64_t k, n;
};
inline constexpr MatmulShape kLlama1bShapes[] = {{"q/o 2048->2048", 2048, 2048},  {"k/v 2048->512", 2048, 512},
                                                 {"up 2048->8192", 2048, 8192},    {"down 8192->2048", 8192, 2048},
                                                 {"lm_head 2048->128256", 2048, 128256}};

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
inline std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    const size_t e = std::min(s.find(',', b), s.size());
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

}  // namespace tern::bench
