// Where a batch-1 decode token's time goes (bench_moe / bench_generate --profile): the thread pool's
// regions (the GEMVs, attention) against the sequential work between them (norms, RoPE, routing,
// residual adds, argmax), and inside the regions each thread's own work against its waits for the
// other — start late (woken, or its vCPU not running) and waiting at the region's end for the last
// one to finish. Minor page faults per token beside it (a weight page first touched in the mapping).
// Without --profile no profile is attached and the pool pays one pointer test per region.
#pragma once

#include <sys/resource.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "core/exec_context.h"
#include "core/thread_pool.h"

namespace tern::bench {

// --split static|dynamic|alternate (default dynamic): how decode GEMV regions share their rows
// (core/exec_context.h); alternate switches every token (even tokens static, odd dynamic), so on a host
// whose bandwidth swings minute to minute the two are compared over the same seconds.
struct SplitChoice {
  ColumnSplit split = ColumnSplit::kDynamic;
  bool alternate = false;
  // The split of decode token i (0-based).
  ColumnSplit for_token(int i) const { return alternate ? (i % 2 ? ColumnSplit::kDynamic : ColumnSplit::kStatic) : split; }
};
inline bool parse_split(const std::string& s, SplitChoice* out) {
  if (s == "dynamic") return out->split = ColumnSplit::kDynamic, true;
  if (s == "static") return out->split = ColumnSplit::kStatic, true;
  if (s == "alternate") return out->alternate = true, true;
  return false;
}

class DecodeProfile {
 public:
  explicit DecodeProfile(bool on) : on_(on) {}
  // Around each token (forward + logits + argmax).
  void token_begin(ThreadPool& pool) {
    if (on_ && !attached_) pool.set_profile(&pool_), attached_ = true;
    t0_ = std::chrono::steady_clock::now();
    if (on_) flt0_ = minflt();
  }
  // split: what this token ran with (per-split medians for --split alternate).
  void token_end(ColumnSplit split = ColumnSplit::kDynamic) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    token_s_.push_back(s);
    (split == ColumnSplit::kStatic ? static_s_ : dynamic_s_).push_back(s);
    if (on_) faults_ += minflt() - flt0_;
  }
  // Tokens run with `split`: median and mean seconds (0 if none).
  double median_s(ColumnSplit split) const { return median(split == ColumnSplit::kStatic ? static_s_ : dynamic_s_); }
  double mean_s(ColumnSplit split) const {
    const std::vector<double>& v = split == ColumnSplit::kStatic ? static_s_ : dynamic_s_;
    double t = 0;
    for (double x : v) t += x;
    return v.empty() ? 0 : t / double(v.size());
  }
  void detach(ThreadPool& pool) {
    if (attached_) pool.set_profile(nullptr), attached_ = false;
  }
  double total_s() const {
    double t = 0;
    for (double s : token_s_) t += s;
    return t;
  }
  double median_s() const { return median(token_s_); }
  // --split alternate: one line, each split's median and mean token against `bytes` per token and the
  // read bandwidth `gbs`.
  std::string alternate_summary(double bytes, double gbs) const {
    auto pct = [&](double s) { return s > 0 ? 100 * bytes / s / (gbs * 1e9) : 0.0; };
    const double ms = median_s(ColumnSplit::kStatic), md = median_s(ColumnSplit::kDynamic);
    const double as = mean_s(ColumnSplit::kStatic), ad = mean_s(ColumnSplit::kDynamic);
    return fmt::format("alternate tokens: static median {:.2f} ms ({:.1f}%), mean {:.2f} ms ({:.1f}%) | dynamic median "
                       "{:.2f} ms ({:.1f}%), mean {:.2f} ms ({:.1f}%) | dynamic/static speed: median {:.3f}, mean {:.3f}",
                       ms * 1e3, pct(ms), as * 1e3, pct(as), md * 1e3, pct(md), ad * 1e3, pct(ad), md > 0 ? ms / md : 0,
                       ad > 0 ? as / ad : 0);
  }
  // One line, ms per token (mean over the tokens).
  std::string summary() const {
    const double n = double(std::max<size_t>(1, token_s_.size()));
    const double ms = 1e3 / n;
    std::string line = fmt::format("profile, per token over {} tokens: {:.2f} ms (median {:.2f}) = {:.2f} ms in {:.1f} "
                                   "regions + {:.2f} ms between them",
                                   token_s_.size(), total_s() * ms, median_s() * 1e3, pool_.wall_s * ms,
                                   double(pool_.regions) / n, (total_s() - pool_.wall_s) * ms);
    for (size_t t = 0; t < pool_.busy_s.size(); ++t) {
      line += fmt::format(" | thread {}: work {:.2f}, start late {:.2f}, end wait {:.2f}", t, pool_.busy_s[t] * ms,
                          pool_.start_late_s[t] * ms, pool_.end_wait_s[t] * ms);
    }
    line += fmt::format(" | {:.0f} minor faults", double(faults_) / n);
    return line;
  }

 private:
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  }
  static long minflt() {
    rusage u;
    std::memset(&u, 0, sizeof(u));
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
  }
  bool on_, attached_ = false;
  PoolProfile pool_;
  std::vector<double> token_s_, static_s_, dynamic_s_;
  std::chrono::steady_clock::time_point t0_;
  long flt0_ = 0, faults_ = 0;
};

}  // namespace tern::bench
