// AVX2 + FMA + F16C whole-item decode attention over a paged pool (KvDecodeJob,
// attention_kernels.h): attention_kv_decode_avx512.cpp with 8-lane vectors and runs of 8 keys.
// The 8 scores of a row come out of hsum8_avx2 in key order. Widening as there:
//   bf16 (D % 16 == 0): a 32-byte load holds 16 values as 8 (even, odd) pairs; `<< 16` gives the
//        even values as f32, `& 0xffff0000` the odd ones (q and o use this order).
//   int8: sign-extend, convert.   fp8 e4m3: sign-extend to 16 bits, `<< 7`, clear bit 14 → the
//        value · 2^-8 as f16 (exact, subnormals included), vcvtph2ps; 2^8 joins the per-key factor.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

namespace {

constexpr int kRun = 8;  // keys per step: one vector of scores per row
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <KvDType T>
constexpr size_t kElemBytes = T == KvDType::F32 ? 4 : T == KvDType::BF16 ? 2 : 1;

template <KvDType T, int NV>
constexpr bool kPairs = T == KvDType::BF16 && NV % 2 == 0;

// Value index of lane i of vector v in the kernel's order.
template <KvDType T, int NV>
constexpr int dim_of(int v, int i) {
  return kPairs<T, NV> ? 16 * (v / 2) + 2 * i + (v % 2) : 8 * v + i;
}

// Vectors [v0, v0 + N) of a stored row as f32 in the kernel's order (fp8: · 2^-8); v0 even when
// pairs are read.
template <KvDType T, int NV, int N>
TERN_AVX2_TARGET inline void widen(const uint8_t* row, int v0, __m256* x) {
  if constexpr (T == KvDType::F32) {
#pragma GCC unroll 16
    for (int v = 0; v < N; ++v) x[v] = _mm256_loadu_ps(reinterpret_cast<const float*>(row) + 8 * (v0 + v));
  } else if constexpr (T == KvDType::BF16) {
    if constexpr (kPairs<T, NV>) {
      static_assert(N % 2 == 0);
      const __m256i hi_mask = _mm256_set1_epi32(int(0xffff0000u));
#pragma GCC unroll 8
      for (int u = 0; u < N / 2; ++u) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16 * size_t(v0 + 2 * u)));
        x[2 * u] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
        x[2 * u + 1] = _mm256_castsi256_ps(_mm256_and_si256(w, hi_mask));
      }
    } else {
#pragma GCC unroll 16
      for (int v = 0; v < N; ++v) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * size_t(v0 + v)));
        x[v] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      }
    }
  } else if constexpr (T == KvDType::INT8) {
#pragma GCC unroll 16
    for (int v = 0; v < N; ++v)
      x[v] = _mm256_cvtepi32_ps(
          _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 8 * size_t(v0 + v)))));
  } else {
    const __m256i keep = _mm256_set1_epi16(int16_t(0xbfff));
    int v = 0;
#pragma GCC unroll 8
    for (; v + 2 <= N; v += 2) {
      const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 8 * size_t(v0 + v))));
      const __m256i h = _mm256_and_si256(_mm256_slli_epi16(w, 7), keep);
      x[v] = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
      x[v + 1] = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    }
    if constexpr (N % 2 == 1) {
      const __m128i w = _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 8 * size_t(v0 + v))));
      x[v] = _mm256_cvtph_ps(_mm_and_si128(_mm_slli_epi16(w, 7), _mm256_castsi256_si128(keep)));
    }
  }
}

template <KvDType T>
constexpr float kWidenFactor = T == KvDType::FP8 ? 256.f : 1.f;

// Scores of RB rows (qk: [RB, 8·NV] in kernel order) against the 8 keys at base + off[j]:
// s[r] lane j = q_r · k_j (unscaled).
template <KvDType T, int NV, int RB>
TERN_AVX2_TARGET inline void scores(const float* qk, const uint8_t* base, const size_t* off, __m256* s) {
  constexpr int D = 8 * NV;
  __m256 acc[RB][kRun];
#pragma GCC unroll 8
  for (int j = 0; j < kRun; ++j) {
    __m256 x[NV];
    widen<T, NV, NV>(base + off[j], 0, x);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      __m256 a = _mm256_mul_ps(_mm256_loadu_ps(qk + r * D), x[0]);
#pragma GCC unroll 32
      for (int v = 1; v < NV; ++v) a = _mm256_fmadd_ps(_mm256_loadu_ps(qk + r * D + 8 * v), x[v], a);
      acc[r][j] = a;
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
    s[r] = hsum8_avx2(acc[r][0], acc[r][1], acc[r][2], acc[r][3], acc[r][4], acc[r][5], acc[r][6], acc[r][7]);
}

// o[r, vectors v0 .. v0 + N) of RB rows += Σ_j p[r][j] · v_j over keys [jlo, jhi) of the run.
template <KvDType T, int NV, int RB, int N>
TERN_AVX2_TARGET inline void pv_cols(const float (*p)[kRun], const uint8_t* base, const size_t* off, int jlo, int jhi,
                                     const float* alpha, bool rescale, float* o, int v0) {
  constexpr int D = 8 * NV;
  __m256 acc[RB][N];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < N; ++v) {
      acc[r][v] = _mm256_loadu_ps(o + r * D + 8 * (v0 + v));
      if (rescale) acc[r][v] = _mm256_mul_ps(acc[r][v], _mm256_set1_ps(alpha[r]));
    }
  for (int j = jlo; j < jhi; ++j) {
    __m256 x[N];
    widen<T, NV, N>(base + off[j], v0, x);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m256 w = _mm256_set1_ps(p[r][j]);
#pragma GCC unroll 4
      for (int v = 0; v < N; ++v) acc[r][v] = _mm256_fmadd_ps(w, x[v], acc[r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < N; ++v) _mm256_storeu_ps(o + r * D + 8 * (v0 + v), acc[r][v]);
}

// Columns in blocks of 2 vectors (8 accumulators for 4 rows; 16 registers in all), then the rest.
template <KvDType T, int NV, int RB, int V0 = 0>
TERN_AVX2_TARGET inline void pv(const float (*p)[kRun], const uint8_t* base, const size_t* off, int jlo, int jhi,
                                const float* alpha, bool rescale, float* o) {
  if constexpr (V0 < NV) {
    constexpr int N = NV - V0 >= 2 ? 2 : 1;
    pv_cols<T, NV, RB, N>(p, base, off, jlo, jhi, alpha, rescale, o, V0);
    pv<T, NV, RB, V0 + N>(p, base, off, jlo, jhi, alpha, rescale, o);
  }
}

struct Run {
  size_t off[kRun];   // byte offset of key j's row (kv head 0) from the run's first row
  int scale_idx[kRun];  // key j's slot · n_kv_heads among the run's row scales
  __m256 mask[16];    // per row of a head (rg <= 16): all-ones lanes for the keys it sees
  bool any[16];
  int jlo, jhi;
};

template <KvDType T, int NV, int RB>
TERN_AVX2_TARGET void run_rows(const KvDecodeJob& job, const Run& run, const float* qk, const uint8_t* kbase,
                               const uint8_t* vbase, __m256 kfac, __m256 vfac, int row0, int r_in_head, float* lsum) {
  constexpr int D = 8 * NV;
  __m256 s[RB];
  scores<T, NV, RB>(qk, kbase, run.off, s);
  alignas(32) float p[RB][kRun];
  float alpha[RB];
  bool rescale = false;
  const __m256 neg_inf = _mm256_set1_ps(kNegInf);
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
    const int R = row0 + r;
    alpha[r] = 1.f;
    if (!run.any[r_in_head + r]) {
      _mm256_store_ps(p[r], _mm256_setzero_ps());
      continue;
    }
    __m256 x = _mm256_mul_ps(s[r], kfac);
    if (job.softcap > 0) {
      const __m256 cap = _mm256_set1_ps(job.softcap);
      x = _mm256_mul_ps(cap, tanh_avx2(_mm256_div_ps(x, cap)));
    }
    x = _mm256_blendv_ps(neg_inf, x, run.mask[r_in_head + r]);
    float m = job.m[R];
    if (_mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_set1_ps(m), _CMP_GT_OQ)) != 0) {
      const float mx = hmax_avx2(x);
      alpha[r] = std::exp(m - mx);  // 0 on the row's first key
      rescale = true;
      m = mx;
      job.m[R] = m;
    }
    const __m256 e = exp_avx2(_mm256_sub_ps(x, _mm256_set1_ps(m)));
    __m256 l = _mm256_load_ps(lsum + 8 * R);
    l = alpha[r] == 1.f ? _mm256_add_ps(l, e) : _mm256_fmadd_ps(l, _mm256_set1_ps(alpha[r]), e);
    _mm256_store_ps(lsum + 8 * R, l);
    _mm256_store_ps(p[r], _mm256_mul_ps(e, vfac));
  }
  pv<T, NV, RB>(p, vbase, run.off, run.jlo, run.jhi, alpha, rescale, job.o + int64_t(row0) * D);
}

template <KvDType T, int NV>
TERN_AVX2_TARGET void decode(const KvDecodeJob& job) {
  constexpr int D = 8 * NV;
  const PagedKvLayer& L = *job.kv;
  const int rows = (job.g1 - job.g0) * job.rg;
  const size_t row_bytes = size_t(D) * kElemBytes<T>;
  const size_t tok_bytes = size_t(job.n_kv_heads) * row_bytes;

  float* qk = job.work;
  float* lsum = job.work + size_t(rows) * D;  // [rows, 8] per-lane sums of p
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < NV; ++v)
      for (int i = 0; i < 8; ++i) qk[r * D + 8 * v + i] = job.q[r * D + dim_of<T, NV>(v, i)];
  std::fill(job.o, job.o + int64_t(rows) * D, 0.f);
  std::fill(job.m, job.m + rows, kNegInf);
  std::fill(lsum, lsum + size_t(rows) * 8, 0.f);

  const __m256i lane_key = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const float widen_factor = kWidenFactor<T>;
  Run run;
  for (int64_t t = job.t_lo; t < job.t_hi;) {
    const int64_t blk = t / L.block_size;
    const int slot = int(t % L.block_size);
    const int n = int(std::min<int64_t>({kRun, L.block_size - slot, job.t_hi - t}));
    const size_t boff = size_t(job.block_table[blk]) * L.block_stride + size_t(slot) * tok_bytes;
    // The same slots one block ahead, fetched into L2 one kv head at a time (below); see
    // attention_kv_decode_avx512.cpp.
    const int n_ahead = int(std::clamp<int64_t>(job.t_hi - t - L.block_size, 0, n));
    const size_t ahead = n_ahead > 0 ? size_t(job.block_table[blk + 1]) * L.block_stride + size_t(slot) * tok_bytes : 0;
    if (n_ahead > 0 && L.codec.scaled) {
      const size_t sc = ahead - size_t(slot) * tok_bytes + L.scale_offset + size_t(slot) * size_t(job.n_kv_heads) * 4;
      for (size_t b = 0; b < size_t(n_ahead) * size_t(job.n_kv_heads) * 4; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(L.k + sc + b), _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(L.v + sc + b), _MM_HINT_T1);
      }
    }
    for (int j = 0; j < kRun; ++j) {
      run.off[j] = size_t(std::min(j, n - 1)) * tok_bytes;
      run.scale_idx[j] = std::min(j, n - 1) * job.n_kv_heads;
    }
    run.jlo = kRun;
    run.jhi = 0;
    for (int r = 0; r < job.rg; ++r) {
      const int a = int(std::clamp<int64_t>(job.lo[r] - t, 0, n)), b = int(std::clamp<int64_t>(job.hi[r] - t, 0, n));
      run.any[r] = a < b;
      const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(a), lane_key),
                                             _mm256_cmpgt_epi32(_mm256_set1_epi32(b), lane_key));
      run.mask[r] = _mm256_castsi256_ps(in);
      if (a < b) {
        run.jlo = std::min(run.jlo, a);
        run.jhi = std::max(run.jhi, b);
      }
    }
    if (run.jlo < run.jhi) {
      for (int g = job.g0; g < job.g1; ++g) {
        const uint8_t* kb = L.k + boff + size_t(g) * row_bytes;
        const uint8_t* vb = L.v + boff + size_t(g) * row_bytes;
        for (int j = 0; j < n_ahead; ++j)
          for (size_t b = 0; b < row_bytes; b += 64) {
            const size_t at = ahead + size_t(j) * tok_bytes + size_t(g) * row_bytes + b;
            _mm_prefetch(reinterpret_cast<const char*>(L.k + at), _MM_HINT_T1);
            _mm_prefetch(reinterpret_cast<const char*>(L.v + at), _MM_HINT_T1);
          }
        __m256 kfac = _mm256_set1_ps(job.scale * widen_factor), vfac = _mm256_set1_ps(widen_factor);
        if (L.codec.scaled) {
          const size_t soff = size_t(job.block_table[blk]) * L.block_stride + L.scale_offset +
                              (size_t(slot) * size_t(job.n_kv_heads) + size_t(g)) * sizeof(float);
          alignas(32) float ks[kRun], vs[kRun];
          for (int j = 0; j < kRun; ++j) {
            std::memcpy(&ks[j], L.k + soff + sizeof(float) * size_t(run.scale_idx[j]), sizeof(float));
            std::memcpy(&vs[j], L.v + soff + sizeof(float) * size_t(run.scale_idx[j]), sizeof(float));
          }
          kfac = _mm256_mul_ps(kfac, _mm256_load_ps(ks));
          vfac = _mm256_mul_ps(vfac, _mm256_load_ps(vs));
        }
        const int row_g = (g - job.g0) * job.rg;
        for (int r = 0; r < job.rg;) {
          const int left = job.rg - r;
          const float* qr = qk + size_t(row_g + r) * D;
          if (left >= 4) {
            run_rows<T, NV, 4>(job, run, qr, kb, vb, kfac, vfac, row_g + r, r, lsum);
            r += 4;
          } else if (left == 3) {
            run_rows<T, NV, 3>(job, run, qr, kb, vb, kfac, vfac, row_g + r, r, lsum);
            r += 3;
          } else if (left == 2) {
            run_rows<T, NV, 2>(job, run, qr, kb, vb, kfac, vfac, row_g + r, r, lsum);
            r += 2;
          } else {
            run_rows<T, NV, 1>(job, run, qr, kb, vb, kfac, vfac, row_g + r, r, lsum);
            r += 1;
          }
        }
      }
    }
    t += n;
  }

  float tmp[256];
  for (int r = 0; r < rows; ++r) {
    float* o = job.o + int64_t(r) * D;
    if constexpr (kPairs<T, NV>) {
      std::memcpy(tmp, o, sizeof(float) * D);
      for (int v = 0; v < NV; ++v)
        for (int i = 0; i < 8; ++i) o[dim_of<T, NV>(v, i)] = tmp[8 * v + i];
    }
    job.l[r] = hsum_avx2(_mm256_load_ps(lsum + 8 * r));
  }
}

template <KvDType T>
KvDecodeFn pick(int head_dim) {
  switch (head_dim) {
    case 16: return decode<T, 2>;
    case 32: return decode<T, 4>;
    case 48: return decode<T, 6>;
    case 64: return decode<T, 8>;
    case 80: return decode<T, 10>;
    case 96: return decode<T, 12>;
    case 128: return decode<T, 16>;
    default: return nullptr;
  }
}

}  // namespace

KvDecodeFn kv_decode_avx2(KvDType dtype, int head_dim) {
  switch (dtype) {
    case KvDType::F32: return pick<KvDType::F32>(head_dim);
    case KvDType::BF16: return pick<KvDType::BF16>(head_dim);
    case KvDType::INT8: return pick<KvDType::INT8>(head_dim);
    case KvDType::FP8: return pick<KvDType::FP8>(head_dim);
  }
  return nullptr;
}

}  // namespace tern::cpu
