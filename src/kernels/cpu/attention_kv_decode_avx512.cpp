// AVX-512 whole-item decode attention over a paged pool (KvDecodeJob, attention_kernels.h).
//
// Keys are taken in runs of up to 16 consecutive positions of one block; per run, each kv head of
// the item in turn: 16 K rows are widened once each and dotted with the head's rg query rows, the
// 16 scores of a row land in the lanes of one vector (lane L holds key kLaneKey[L], the order the
// reduction tree leaves them in), the online softmax runs on that vector, and the 16 V rows are
// widened once each into the rows' P·V accumulators. K/V of one run sit contiguously in the
// block ([16 slots][kv heads][D]), so an item streams its blocks front to back.
//
// Widening is exact and costs at most one or two operations per 16 values:
//   bf16 (D % 32 == 0): a 64-byte load holds 32 values as 16 (even, odd) pairs; `<< 16` gives the
//        even values as f32, `& 0xffff0000` the odd ones. q and o use the same (even, odd) order.
//   int8: sign-extend to 32 bits, convert.
//   fp8 e4m3: sign-extend to 16 bits, `<< 7`, clear bit 14: the f16 with the same sign, exponent
//        and mantissa bits, i.e. the e4m3 value · 2^-8 (subnormal codes included), then vcvtph2ps;
//        the 2^8 goes into the per-key factor.
// Scores are f32 FMAs of the widened rows, so they match the scalar reference up to the order of
// f32 additions. The softmax rescales the running sums only when a run raises a row's maximum.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

namespace {

constexpr int kRun = 16;  // keys per step: one vector of scores per row
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Into L2: a block ahead is as many bytes as the block being computed, which L1 cannot hold both of
// (T0 measured 1.7x slower at 16 sequences x 1,024 keys).
constexpr auto kPrefetchHint = _MM_HINT_T1;

// Lane L of a score vector holds key 4·(L % 4) + L / 4 of the run (and vice versa).
constexpr int lane_of(int j) { return 4 * (j % 4) + j / 4; }

template <KvDType T>
constexpr size_t kElemBytes = T == KvDType::F32 ? 4 : T == KvDType::BF16 ? 2 : 1;

// bf16 rows are read as (even, odd) pairs when whole 64-byte vectors cover them.
template <KvDType T, int NV>
constexpr bool kPairs = T == KvDType::BF16 && NV % 2 == 0;

// Value index of lane i of vector v in the kernel's order.
template <KvDType T, int NV>
constexpr int dim_of(int v, int i) {
  return kPairs<T, NV> ? 32 * (v / 2) + 2 * i + (v % 2) : 16 * v + i;
}

// Vectors [v0, v0 + N) of a stored row as f32 in the kernel's order (fp8: · 2^-8). v0 is even
// whenever pairs are read.
template <KvDType T, int NV, int N>
TERN_AVX512_TARGET inline void widen(const uint8_t* row, int v0, __m512* x) {
  if constexpr (T == KvDType::F32) {
#pragma GCC unroll 8
    for (int v = 0; v < N; ++v) x[v] = _mm512_loadu_ps(reinterpret_cast<const float*>(row) + 16 * (v0 + v));
  } else if constexpr (T == KvDType::BF16) {
    if constexpr (kPairs<T, NV>) {
      static_assert(N % 2 == 0);
      const __m512i hi_mask = _mm512_set1_epi32(int(0xffff0000u));
#pragma GCC unroll 8
      for (int u = 0; u < N / 2; ++u) {
        const __m512i w = _mm512_loadu_si512(row + 32 * size_t(v0 + 2 * u));
        x[2 * u] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
        x[2 * u + 1] = _mm512_castsi512_ps(_mm512_and_si512(w, hi_mask));
      }
    } else {
#pragma GCC unroll 8
      for (int v = 0; v < N; ++v) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * size_t(v0 + v)));
        x[v] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      }
    }
  } else if constexpr (T == KvDType::INT8) {
#pragma GCC unroll 8
    for (int v = 0; v < N; ++v)
      x[v] = _mm512_cvtepi32_ps(
          _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * size_t(v0 + v)))));
  } else {
    const __m512i keep = _mm512_set1_epi16(int16_t(0xbfff));
    int v = 0;
#pragma GCC unroll 8
    for (; v + 2 <= N; v += 2) {
      const __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16 * size_t(v0 + v))));
      const __m512i h = _mm512_and_si512(_mm512_slli_epi16(w, 7), keep);
      x[v] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
      x[v + 1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
    }
    if constexpr (N % 2 == 1) {
      const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * size_t(v0 + v))));
      x[v] = _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(w, 7), _mm512_castsi512_si256(keep)));
    }
  }
}

// The per-key factor the widened values need on top of the row scale.
template <KvDType T>
constexpr float kWidenFactor = T == KvDType::FP8 ? 256.f : 1.f;

// Four vectors a[0..3] → one whose 128-bit lane b holds four partial sums of a[b].
TERN_AVX512_TARGET inline __m512 reduce4(const __m512* a) {
  const __m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(a[0], a[1], 0x44), _mm512_shuffle_f32x4(a[0], a[1], 0xee));
  const __m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(a[2], a[3], 0x44), _mm512_shuffle_f32x4(a[2], a[3], 0xee));
  return _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, 0x88), _mm512_shuffle_f32x4(x01, x23, 0xdd));
}

// Four reduce4 results y[kg] (key group kg = keys 4kg .. 4kg + 3) → lane 4b + kg = Σ of key 4kg + b.
TERN_AVX512_TARGET inline __m512 reduce_lanes(const __m512* y) {
  const __m512 u01 = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xdd));
  const __m512 u23 = _mm512_add_ps(_mm512_shuffle_ps(y[2], y[3], 0x88), _mm512_shuffle_ps(y[2], y[3], 0xdd));
  return _mm512_add_ps(_mm512_shuffle_ps(u01, u23, 0x88), _mm512_shuffle_ps(u01, u23, 0xdd));
}

// Scores of RB rows (qk: [RB, 16·NV] in kernel order) against the 16 keys at base + off[j]:
// s[r] lane L = q_r · k_{key(L)} (unscaled).
template <KvDType T, int NV, int RB>
TERN_AVX512_TARGET inline void scores(const float* qk, const uint8_t* base, const size_t* off, __m512* s) {
  constexpr int D = 16 * NV;
  __m512 y[RB][4];
#pragma GCC unroll 1
  for (int kg = 0; kg < 4; ++kg) {
    __m512 acc[RB][4];
#pragma GCC unroll 4
    for (int b = 0; b < 4; ++b) {
      __m512 x[NV];
      widen<T, NV, NV>(base + off[4 * kg + b], 0, x);
#pragma GCC unroll 4
      for (int r = 0; r < RB; ++r) {
        __m512 a = _mm512_mul_ps(_mm512_load_ps(qk + r * D), x[0]);
#pragma GCC unroll 16
        for (int v = 1; v < NV; ++v) a = _mm512_fmadd_ps(_mm512_load_ps(qk + r * D + 16 * v), x[v], a);
        acc[r][b] = a;
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) y[r][kg] = reduce4(acc[r]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) s[r] = reduce_lanes(y[r]);
}

// o[r, vectors v0 .. v0 + N) of RB rows += Σ_j p[r][lane(j)] · v_j over keys [jlo, jhi) of the run.
template <KvDType T, int NV, int RB, int N>
TERN_AVX512_TARGET inline void pv_cols(const float (*p)[kRun], const uint8_t* base, const size_t* off, int jlo, int jhi,
                                     const float* alpha, bool rescale, float* o, int v0) {
  constexpr int D = 16 * NV;
  __m512 acc[RB][N];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < N; ++v) {
      acc[r][v] = _mm512_loadu_ps(o + r * D + 16 * (v0 + v));
      if (rescale) acc[r][v] = _mm512_mul_ps(acc[r][v], _mm512_set1_ps(alpha[r]));
    }
  for (int j = jlo; j < jhi; ++j) {
    __m512 x[N];
    widen<T, NV, N>(base + off[j], v0, x);
    const int L = lane_of(j);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m512 w = _mm512_set1_ps(p[r][L]);
#pragma GCC unroll 8
      for (int v = 0; v < N; ++v) acc[r][v] = _mm512_fmadd_ps(w, x[v], acc[r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < N; ++v) _mm512_storeu_ps(o + r * D + 16 * (v0 + v), acc[r][v]);
}

// Columns in blocks of 4 vectors (16 accumulators for 4 rows), then the rest.
template <KvDType T, int NV, int RB, int V0 = 0>
TERN_AVX512_TARGET inline void pv(const float (*p)[kRun], const uint8_t* base, const size_t* off, int jlo, int jhi,
                                const float* alpha, bool rescale, float* o) {
  if constexpr (V0 < NV) {
    constexpr int N = NV - V0 >= 4 ? 4 : NV - V0;
    pv_cols<T, NV, RB, N>(p, base, off, jlo, jhi, alpha, rescale, o, V0);
    pv<T, NV, RB, V0 + N>(p, base, off, jlo, jhi, alpha, rescale, o);
  }
}

// State and geometry of one run, shared by the heads of the item.
struct Run {
  size_t off[kRun];        // byte offset of key j's row (kv head 0) from the run's first row
  __m512i scale_idx;       // per lane: the key's (slot · n_kv_heads) among the run's row scales
  __mmask16 mask[16];      // per row of a head (rg <= 16): the lanes of the keys it sees
  int jlo, jhi;            // keys any row sees
};

template <KvDType T, int NV, int RB>
TERN_AVX512_TARGET void run_rows(const KvDecodeJob& job, const Run& run, const float* qk, const uint8_t* kbase,
                               const uint8_t* vbase, __m512 kfac, __m512 vfac, int row0, int r_in_head, float* lsum) {
  constexpr int D = 16 * NV;
  __m512 s[RB];
  scores<T, NV, RB>(qk, kbase, run.off, s);
  alignas(64) float p[RB][kRun];
  float alpha[RB];
  bool rescale = false;
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
    const int R = row0 + r;
    const __mmask16 mk = run.mask[r_in_head + r];
    alpha[r] = 1.f;
    if (mk == 0) {  // this row sees none of the run's keys
      _mm512_store_ps(p[r], _mm512_setzero_ps());
      continue;
    }
    __m512 x = _mm512_mul_ps(s[r], kfac);
    if (job.softcap > 0) {
      const __m512 cap = _mm512_set1_ps(job.softcap);
      x = _mm512_mul_ps(cap, tanh_avx512(_mm512_div_ps(x, cap)));
    }
    x = _mm512_mask_mov_ps(neg_inf, mk, x);
    float m = job.m[R];
    if (_mm512_cmp_ps_mask(x, _mm512_set1_ps(m), _CMP_GT_OQ) != 0) {
      const float mx = _mm512_reduce_max_ps(x);
      alpha[r] = std::exp(m - mx);  // 0 on the row's first key
      rescale = true;
      m = mx;
      job.m[R] = m;
    }
    const __m512 e = exp_avx512(_mm512_sub_ps(x, _mm512_set1_ps(m)));
    __m512 l = _mm512_load_ps(lsum + 16 * R);
    l = alpha[r] == 1.f ? _mm512_add_ps(l, e) : _mm512_fmadd_ps(l, _mm512_set1_ps(alpha[r]), e);
    _mm512_store_ps(lsum + 16 * R, l);
    _mm512_store_ps(p[r], _mm512_mul_ps(e, vfac));
  }
  pv<T, NV, RB>(p, vbase, run.off, run.jlo, run.jhi, alpha, rescale, job.o + int64_t(row0) * D);
}

template <KvDType T, int NV>
TERN_AVX512_TARGET void decode(const KvDecodeJob& job) {
  constexpr int D = 16 * NV;
  const PagedKvLayer& L = *job.kv;
  const int rows = (job.g1 - job.g0) * job.rg;
  const size_t row_bytes = size_t(D) * kElemBytes<T>;
  const size_t tok_bytes = size_t(job.n_kv_heads) * row_bytes;

  // q in the kernel's order, o zeroed in it; per-lane sums of p.
  float* qk = job.work;
  float* lsum = job.work + size_t(rows) * D;
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < NV; ++v)
      for (int i = 0; i < 16; ++i) qk[r * D + 16 * v + i] = job.q[r * D + dim_of<T, NV>(v, i)];
  std::fill(job.o, job.o + int64_t(rows) * D, 0.f);
  std::fill(job.m, job.m + rows, kNegInf);
  std::fill(lsum, lsum + size_t(rows) * 16, 0.f);

  __m512i lane_key;  // lane L → key 4·(L % 4) + L / 4
  {
    alignas(64) int32_t k[16];
    for (int lane = 0; lane < 16; ++lane) k[lane] = 4 * (lane % 4) + lane / 4;
    lane_key = _mm512_load_si512(k);
  }
  const float widen_factor = kWidenFactor<T>;
  Run run;
  for (int64_t t = job.t_lo; t < job.t_hi;) {
    const int64_t blk = t / L.block_size;
    const int slot = int(t % L.block_size);
    const int n = int(std::min<int64_t>({kRun, L.block_size - slot, job.t_hi - t}));
    const size_t boff = size_t(job.block_table[blk]) * L.block_stride + size_t(slot) * tok_bytes;
    // The same slots one block ahead are fetched while this run is computed, one kv head at a
    // time (below): the rows of one head are a token row apart, which the hardware prefetchers
    // follow poorly, and a whole block at once would overrun the L1 and the miss queues.
    const int n_ahead = int(std::clamp<int64_t>(job.t_hi - t - L.block_size, 0, n));
    const size_t ahead = n_ahead > 0 ? size_t(job.block_table[blk + 1]) * L.block_stride + size_t(slot) * tok_bytes : 0;
    if (n_ahead > 0 && L.codec.scaled) {
      const size_t sc = ahead - size_t(slot) * tok_bytes + L.scale_offset + size_t(slot) * size_t(job.n_kv_heads) * 4;
      for (size_t b = 0; b < size_t(n_ahead) * size_t(job.n_kv_heads) * 4; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(L.k + sc + b), kPrefetchHint);
        _mm_prefetch(reinterpret_cast<const char*>(L.v + sc + b), kPrefetchHint);
      }
    }
    for (int j = 0; j < kRun; ++j) run.off[j] = size_t(std::min(j, n - 1)) * tok_bytes;
    const __m512i key_clamped = _mm512_min_epi32(lane_key, _mm512_set1_epi32(n - 1));
    run.scale_idx = _mm512_mullo_epi32(key_clamped, _mm512_set1_epi32(job.n_kv_heads));
    run.jlo = kRun;
    run.jhi = 0;
    for (int r = 0; r < job.rg; ++r) {
      const int a = int(std::clamp<int64_t>(job.lo[r] - t, 0, n)), b = int(std::clamp<int64_t>(job.hi[r] - t, 0, n));
      run.mask[r] = a < b ? _mm512_cmp_epi32_mask(lane_key, _mm512_set1_epi32(a), _MM_CMPINT_NLT) &
                                _mm512_cmp_epi32_mask(lane_key, _mm512_set1_epi32(b), _MM_CMPINT_LT)
                          : __mmask16(0);
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
            _mm_prefetch(reinterpret_cast<const char*>(L.k + at), kPrefetchHint);
            _mm_prefetch(reinterpret_cast<const char*>(L.v + at), kPrefetchHint);
          }
        __m512 kfac = _mm512_set1_ps(job.scale * widen_factor), vfac = _mm512_set1_ps(widen_factor);
        if (L.codec.scaled) {
          const size_t soff = size_t(job.block_table[blk]) * L.block_stride + L.scale_offset +
                              (size_t(slot) * size_t(job.n_kv_heads) + size_t(g)) * sizeof(float);
          kfac = _mm512_mul_ps(kfac, _mm512_i32gather_ps(run.scale_idx, L.k + soff, 4));
          vfac = _mm512_mul_ps(vfac, _mm512_i32gather_ps(run.scale_idx, L.v + soff, 4));
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

  // o back into value order; l = the lanes' sums.
  float tmp[16 * 16];
  for (int r = 0; r < rows; ++r) {
    float* o = job.o + int64_t(r) * D;
    if constexpr (kPairs<T, NV>) {
      std::memcpy(tmp, o, sizeof(float) * D);
      for (int v = 0; v < NV; ++v)
        for (int i = 0; i < 16; ++i) o[dim_of<T, NV>(v, i)] = tmp[16 * v + i];
    }
    job.l[r] = _mm512_reduce_add_ps(_mm512_load_ps(lsum + 16 * r));
  }
}

template <KvDType T>
KvDecodeFn pick(int head_dim) {
  switch (head_dim) {
    case 16: return decode<T, 1>;
    case 32: return decode<T, 2>;
    case 48: return decode<T, 3>;
    case 64: return decode<T, 4>;
    case 80: return decode<T, 5>;
    case 96: return decode<T, 6>;
    case 112: return decode<T, 7>;
    case 128: return decode<T, 8>;
    case 192: return decode<T, 12>;
    case 256: return decode<T, 16>;
    default: return nullptr;
  }
}

}  // namespace

KvDecodeFn kv_decode_avx512(KvDType dtype, int head_dim) {
  switch (dtype) {
    case KvDType::F32: return pick<KvDType::F32>(head_dim);
    case KvDType::BF16: return pick<KvDType::BF16>(head_dim);
    case KvDType::INT8: return pick<KvDType::INT8>(head_dim);
    case KvDType::FP8: return pick<KvDType::FP8>(head_dim);
  }
  return nullptr;
}

}  // namespace tern::cpu
