#include "compress/sparsegpt.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "compress/dense_math.h"

namespace tern {

namespace {

// U with H⁻¹ = UᵀU of the dampened H; dead[c] for columns no calibration token activated.
Status prepare(const std::vector<double>& h_in, int64_t n, double percdamp, ThreadPool* pool, std::vector<double>& u,
               std::vector<char>& dead) {
  if (int64_t(h_in.size()) != n * n) return Status::error("sparsegpt: Hessian size does not match the layer");
  std::vector<double> h = h_in;
  dead.assign(size_t(n), 0);
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (h[size_t(i * n + i)] == 0) dead[size_t(i)] = 1, h[size_t(i * n + i)] = 1;
    mean_diag += h[size_t(i * n + i)];
  }
  mean_diag /= double(n);
  // Retry with more dampening when H is numerically singular (as GPTQ does).
  double damp = percdamp * mean_diag;
  for (int attempt = 0; attempt < 6; ++attempt, damp *= 10) {
    std::vector<double> hd = h;
    for (int64_t i = 0; i < n; ++i) hd[size_t(i * n + i)] += damp;
    auto r = inverse_cholesky_upper(hd, n, pool);
    if (r.is_ok()) {
      u = std::move(r).value();
      return Status::ok();
    }
  }
  return Status::error("sparsegpt: the Hessian is not positive definite even after dampening");
}

// Zeros of one row in columns [i1, i2): the `k` lowest w² / d² (ties: lower column first).
void choose(const double* w, const double* u, int64_t n, int64_t i1, int64_t i2, int64_t k, std::vector<int64_t>& idx,
            std::vector<double>& score, char* mask) {
  const int64_t len = i2 - i1;
  if (k <= 0) return;
  idx.resize(size_t(len));
  score.resize(size_t(len));
  for (int64_t j = 0; j < len; ++j) {
    const double d = u[(i1 + j) * n + i1 + j];
    score[size_t(j)] = w[i1 + j] * w[i1 + j] / (d * d);
  }
  std::iota(idx.begin(), idx.end(), 0);
  auto lower = [&](int64_t a, int64_t b) { return score[size_t(a)] < score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a < b); };
  if (k < len) std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), lower);
  for (int64_t j = 0; j < std::min(k, len); ++j) mask[i1 + idx[size_t(j)]] = 1;
}

// One block [i1, i2) of the nt rows at wd (row stride n): fixes each column in turn, pushes its error
// onto the block's later columns, then the block's errors onto the columns past it (err: [nt, bs]
// scratch). Unstructured zeros are marked in mask beforehand; N:M ones are chosen here, as the sweep
// reaches each group, from the weights the earlier columns' errors have updated (as the reference).
void sweep_block(const double* u, int64_t n, int64_t bs, const PruneSpec& spec, double* wd, char* mask, int64_t nt,
                 int64_t i1, int64_t i2, double* err, std::vector<int64_t>& idx, std::vector<double>& score) {
  for (int64_t i = i1; i < i2; ++i) {
    const double* ui = u + i * n;
    for (int64_t t = 0; t < nt; ++t) {
      double* w = wd + t * n;
      if (spec.nm() && i % spec.m == 0) choose(w, u, n, i, i + spec.m, spec.m - spec.n, idx, score, mask + t * n);
      const double q = mask[t * n + i] ? 0.0 : w[i];
      const double e = (w[i] - q) / ui[i];
      w[i] = q;
      err[t * bs + i - i1] = e;
      for (int64_t j = i + 1; j < i2; ++j) w[j] -= e * ui[j];
    }
  }
  obs_lazy_block_update(wd, nt, n, u, err, bs, i1, i2);
}

// Rows [r0, r1) of wd ([rows, n], f64), each row choosing its own zeros, in tiles of kTile rows so that
// each row of U streamed per column serves the whole tile from cache (as gptq_rows).
void sparsegpt_rows(const std::vector<double>& uv, int64_t n, const PruneSpec& spec, int64_t bs, std::vector<double>& wd,
                    int64_t r0, int64_t r1) {
  constexpr int64_t kTile = 16;
  const double* u = uv.data();
  std::vector<double> err(size_t(kTile * bs));
  std::vector<char> mask(size_t(kTile * n));
  std::vector<int64_t> idx;
  std::vector<double> score;
  // Unstructured: a block's share of the row's zeros, so the row's total is exactly round(sparsity · n).
  auto zeros_before = [&](int64_t i) { return std::llround(spec.sparsity * double(i)); };
  for (int64_t t0 = r0; t0 < r1; t0 += kTile) {
    const int64_t nt = std::min(r1 - t0, kTile);
    std::fill(mask.begin(), mask.end(), 0);
    for (int64_t i1 = 0; i1 < n; i1 += bs) {
      const int64_t i2 = std::min(n, i1 + bs);
      if (!spec.nm()) {
        for (int64_t t = 0; t < nt; ++t)
          choose(wd.data() + (t0 + t) * n, u, n, i1, i2, zeros_before(i2) - zeros_before(i1), idx, score,
                 mask.data() + t * n);
      }
      sweep_block(u, n, bs, spec, wd.data() + t0 * n, mask.data(), nt, i1, i2, err.data(), idx, score);
    }
  }
}

// The reference implementation's mask (--group layer, unstructured): at the start of each block the
// block's share of the whole matrix's zeros goes to the lowest w² / d² of the [rows, block] tile, so rows
// lose different counts; the matrix's total is exactly round(sparsity · rows · n). Blocks run in order
// (each tile's scores need every row's weights as the earlier blocks left them), rows in parallel.
void sparsegpt_tile_masks(ExecContext& ctx, const std::vector<double>& uv, int64_t rows, int64_t n,
                          const PruneSpec& spec, int64_t bs, std::vector<double>& wd) {
  constexpr int64_t kTile = 16;
  const double* u = uv.data();
  std::vector<char> mask(size_t(rows * n), 0);
  std::vector<double> score;
  std::vector<int64_t> idx;
  auto zeros_before = [&](int64_t i) { return std::llround(spec.sparsity * double(rows) * double(i)); };
  for (int64_t i1 = 0; i1 < n; i1 += bs) {
    const int64_t i2 = std::min(n, i1 + bs), len = i2 - i1;
    score.resize(size_t(rows * len));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < len; ++j) {
        const double w = wd[size_t(r * n + i1 + j)], d = u[(i1 + j) * n + i1 + j];
        score[size_t(r * len + j)] = w * w / (d * d);
      }
    const int64_t k = std::min<int64_t>(zeros_before(i2) - zeros_before(i1), rows * len);
    if (k > 0) {
      idx.resize(size_t(rows * len));
      std::iota(idx.begin(), idx.end(), 0);
      auto lower = [&](int64_t a, int64_t b) {
        return score[size_t(a)] < score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a < b);
      };
      if (k < rows * len) std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), lower);
      for (int64_t z = 0; z < k; ++z) mask[size_t(idx[size_t(z)] / len * n + i1 + idx[size_t(z)] % len)] = 1;
    }
    ctx.pool().parallel_for((rows + kTile - 1) / kTile, 1, [&](int64_t b0, int64_t b1) {
      std::vector<double> err(size_t(kTile * bs)), unused_score;
      std::vector<int64_t> unused_idx;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t t0 = b * kTile, nt = std::min(rows - t0, kTile);
        sweep_block(u, n, bs, spec, wd.data() + t0 * n, mask.data() + t0 * n, nt, i1, i2, err.data(), unused_idx,
                    unused_score);
      }
    });
  }
}

}  // namespace

Status sparsegpt_prune(ExecContext& ctx, float* w, int64_t rows, int64_t cols, const std::vector<double>& h,
                       const PruneSpec& spec, const SparseGptOptions& options) {
  TERN_RETURN_IF_ERROR(validate_prune_spec(spec));
  TERN_RETURN_IF_ERROR(check_prune_cols(spec, cols, "the matrix"));
  std::vector<double> u;
  std::vector<char> dead;
  TERN_RETURN_IF_ERROR(prepare(h, cols, options.percdamp, &ctx.pool(), u, dead));
  int64_t bs = std::max(1, options.block_size);
  if (spec.nm()) bs = std::max<int64_t>(spec.m, bs / spec.m * spec.m);  // N:M groups never straddle blocks
  std::vector<double> wd(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) wd[size_t(r * cols + c)] = dead[size_t(c)] ? 0.0 : double(w[r * cols + c]);
  if (!spec.nm() && spec.group == PruneGroup::kLayer) {
    sparsegpt_tile_masks(ctx, u, rows, cols, spec, bs, wd);
  } else {
    ctx.pool().parallel_for(rows, 1, [&](int64_t r0, int64_t r1) { sparsegpt_rows(u, cols, spec, bs, wd, r0, r1); });
  }
  for (size_t i = 0; i < wd.size(); ++i) w[i] = float(wd[i]);
  return Status::ok();
}

}  // namespace tern
