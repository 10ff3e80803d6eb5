#include "eval/kl_divergence.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>

namespace tern {

namespace {

constexpr char kMagic[8] = {'T', 'E', 'R', 'N', 'L', 'O', 'G', 'P'};
constexpr uint32_t kVersion = 1;

// max and Σ exp(l - max) of one logits row, in double.
void exp_sum(const float* l, int64_t vocab, double& mx, double& sum) {
  mx = l[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, double(l[i]));
  sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(l[i]) - mx);
}

template <typename T>
void put(std::ofstream& f, const T& v) {
  f.write(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
bool get(std::ifstream& f, T& v) {
  return bool(f.read(reinterpret_cast<char*>(&v), sizeof(T)));
}

}  // namespace

double BaseLogits::base_ppl() const { return positions() ? std::exp(base_nll_sum / double(positions())) : 0; }

uint64_t hash_tokens(const std::vector<int32_t>& tokens) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : tokens) {
    uint32_t u = uint32_t(t);
    for (int b = 0; b < 4; ++b) h = (h ^ ((u >> (8 * b)) & 0xff)) * 1099511628211ull;
  }
  return h;
}

Status save_base_logits(const BaseLogits& b, const std::string& path) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return Status::error(fmt::format("{}: cannot open for writing", path));
  f.write(kMagic, 8);
  put(f, kVersion), put(f, b.k), put(f, b.vocab), put(f, b.protocol);
  put(f, b.ctx), put(f, b.windows), put(f, uint64_t(b.positions())), put(f, b.tokens_hash), put(f, b.base_nll_sum);
  f.write(reinterpret_cast<const char*>(b.ids.data()), std::streamsize(b.ids.size() * sizeof(int32_t)));
  f.write(reinterpret_cast<const char*>(b.logp.data()), std::streamsize(b.logp.size() * sizeof(float)));
  f.write(reinterpret_cast<const char*>(b.rest_logp.data()), std::streamsize(b.rest_logp.size() * sizeof(float)));
  if (!f) return Status::error(fmt::format("{}: write failed", path));
  return Status::ok();
}

Result<BaseLogits> load_base_logits(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::error(fmt::format("{}: cannot open", path));
  char magic[8];
  BaseLogits b;
  uint32_t version = 0;
  uint64_t positions = 0;
  if (!f.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) {
    return Status::error(fmt::format("{}: not a tern base-logits file", path));
  }
  if (!get(f, version) || version != kVersion) {
    return Status::error(fmt::format("{}: unsupported base-logits version {}", path, version));
  }
  if (!get(f, b.k) || !get(f, b.vocab) || !get(f, b.protocol) || !get(f, b.ctx) || !get(f, b.windows) ||
      !get(f, positions) || !get(f, b.tokens_hash) || !get(f, b.base_nll_sum)) {
    return Status::error(fmt::format("{}: truncated header", path));
  }
  if (b.k == 0 || b.k > b.vocab || b.protocol > 1) return Status::error(fmt::format("{}: inconsistent header", path));
  // Refuse sizes the file cannot hold before allocating anything.
  f.seekg(0, std::ios::end);
  const uint64_t file_size = uint64_t(f.tellg());
  const uint64_t header = 8 + 4 * 4 + 8 * 5;
  const uint64_t need = positions * (uint64_t(b.k) * 8 + 4);
  if (positions > (uint64_t(1) << 40) || file_size != header + need) {
    return Status::error(fmt::format("{}: size {} does not match its header ({} positions, k {})", path, file_size,
                                     positions, b.k));
  }
  f.seekg(std::streamoff(header));
  b.ids.resize(size_t(positions * b.k));
  b.logp.resize(size_t(positions * b.k));
  b.rest_logp.resize(size_t(positions));
  f.read(reinterpret_cast<char*>(b.ids.data()), std::streamsize(b.ids.size() * sizeof(int32_t)));
  f.read(reinterpret_cast<char*>(b.logp.data()), std::streamsize(b.logp.size() * sizeof(float)));
  f.read(reinterpret_cast<char*>(b.rest_logp.data()), std::streamsize(b.rest_logp.size() * sizeof(float)));
  if (!f) return Status::error(fmt::format("{}: truncated data", path));
  for (int32_t id : b.ids) {
    if (id < 0 || uint32_t(id) >= b.vocab) return Status::error(fmt::format("{}: token id {} out of range", path, id));
  }
  return b;
}

BaseLogitsRecorder::BaseLogitsRecorder(BaseLogits& out, int64_t vocab, int k) : b_(&out), vocab_(vocab) {
  b_->vocab = uint32_t(vocab);
  b_->k = uint32_t(std::clamp<int64_t>(k, 1, vocab));
  order_.resize(size_t(vocab));
}

void BaseLogitsRecorder::add(const float* logits, int64_t rows, const int32_t* targets) {
  const int64_t k = b_->k;
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits + r * vocab_;
    double mx, sum;
    exp_sum(l, vocab_, mx, sum);
    const double lse = mx + std::log(sum);
    b_->base_nll_sum += lse - double(l[targets[r]]);
    std::iota(order_.begin(), order_.end(), 0);
    std::partial_sort(order_.begin(), order_.begin() + k, order_.end(),
                      [&](int32_t a, int32_t c) { return l[a] > l[c] || (l[a] == l[c] && a < c); });
    double top = 0;
    for (int64_t i = 0; i < k; ++i) {
      const int32_t id = order_[size_t(i)];
      b_->ids.push_back(id);
      b_->logp.push_back(float(double(l[id]) - lse));
      top += std::exp(double(l[id]) - mx);
    }
    const double rest = (sum - top) / sum;
    b_->rest_logp.push_back(rest > 1e-30 ? float(std::log(rest)) : -INFINITY);
  }
}

Status KlAccumulator::add(const float* logits, int64_t rows, int64_t vocab) {
  const BaseLogits& b = *base_;
  if (vocab != int64_t(b.vocab)) {
    return Status::error(fmt::format("vocabulary size {} differs from the base's {}", vocab, b.vocab));
  }
  if (next_ + rows > b.positions()) return Status::error("more scored positions than the base logits hold");
  const int64_t k = b.k;
  for (int64_t r = 0; r < rows; ++r, ++next_) {
    const float* l = logits + r * vocab;
    double mx, sum;
    exp_sum(l, vocab, mx, sum);
    const double lse = mx + std::log(sum);
    const int32_t* ids = b.ids.data() + next_ * k;
    const float* lp = b.logp.data() + next_ * k;
    double kl = 0, top_q = 0;
    for (int64_t i = 0; i < k; ++i) {
      const double lq = double(l[ids[i]]) - lse;
      kl += std::exp(double(lp[i])) * (double(lp[i]) - lq);
      top_q += std::exp(double(l[ids[i]]) - mx);
    }
    const float rest_p = b.rest_logp[size_t(next_)];
    if (std::isfinite(rest_p)) {
      const double rest_q = std::max((sum - top_q) / sum, 1e-30);
      kl += std::exp(double(rest_p)) * (double(rest_p) - std::log(rest_q));
    }
    kl_.push_back(kl);
    const int64_t argmax = std::max_element(l, l + vocab) - l;
    agree_ += (argmax == ids[0]) || (l[argmax] == l[ids[0]]);
  }
  return Status::ok();
}

Result<KlResult> KlAccumulator::finish() const {
  if (next_ != base_->positions()) {
    return Status::error(fmt::format("scored {} positions, the base logits hold {}", next_, base_->positions()));
  }
  KlResult r;
  r.positions = next_;
  if (kl_.empty()) return r;
  std::vector<double> v = kl_;
  std::sort(v.begin(), v.end());
  r.kl_mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  r.kl_median = v[v.size() / 2];
  r.kl_p99 = v[size_t(0.99 * double(v.size() - 1))];
  r.kl_max = v.back();
  r.top1 = double(agree_) / double(next_);
  return r;
}

}  // namespace tern
