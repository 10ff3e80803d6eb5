// A one-line progress bar with ETA on stderr: "\r[tern] quantize  37% [#######.............] 41/112  ETA 0:12".
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tern::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), start_(std::chrono::steady_clock::now()) {}

  void update(int64_t done, int64_t total) {
    if (total <= 0) return;
    const double frac = double(done) / double(total);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int64_t eta = done > 0 ? int64_t(elapsed / double(done) * double(total - done) + 0.5) : 0;
    constexpr int kWidth = 30;
    const int filled = int(frac * kWidth + 0.5);
    fmt::print(stderr, "\r[tern] {} {:3d}% [{}{}] {}/{}  {} {}:{:02d}", label_, int(frac * 100 + 0.5),
               std::string(size_t(filled), '#'), std::string(size_t(kWidth - filled), '.'), done, total,
               done < total ? "ETA" : "took", (done < total ? eta : int64_t(elapsed)) / 60,
               (done < total ? eta : int64_t(elapsed)) % 60);
    if (done >= total) fmt::print(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::string label_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace tern::cli
