// AVX2 GEMV against GGUF blocks with integer dot products (decode, m <= 8).
// x is quantized once per call to int8 in groups of 32 (scale dx = max|x| / 127, as ggml's Q8
// activations), with the integer sum of each half-group of 16. Every weight format is read as
// groups of 32 unsigned codes with, per half-group h, w = a_h * code + b_h; then
//   Σ w·x = dx · (a_0 S_0 + a_1 S_1 + b_0 X_0 + b_1 X_1),   S_h = Σ code·xq (vpmaddubsw + vpmaddwd),
//                                                          X_h = Σ xq over the half-group.
// Codes stay below 64, so vpmaddubsw's pairwise i16 sums cannot saturate; Q8_0's signed bytes use the
// sign trick instead (|w| · sign(x, w)). Versus the f32 path (decode + FMA) this does ~3x less work.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/gguf_kernels.h"

#define TERN_DOT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace tern::cpu {

namespace {

// x rows quantized per 32: q [m][k], d [m][k/32], half sums [m][k/16].
struct QuantX {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> sums;
};

void quantize_x(const float* x, int64_t m, int64_t k, QuantX& out) {
  out.q.resize(size_t(m * k));
  out.d.resize(size_t(m * k / 32));
  out.sums.resize(size_t(m * k / 16));
  for (int64_t i = 0; i < m * k / 32; ++i) {
    const float* v = x + i * 32;
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
    out.d[size_t(i)] = d;
    int32_t s[2] = {0, 0};
    for (int j = 0; j < 32; ++j) {
      const int q = int(std::lrintf(v[j] * id));
      out.q[size_t(i * 32 + j)] = int8_t(q);
      s[j / 16] += q;
    }
    out.sums[size_t(2 * i)] = s[0], out.sums[size_t(2 * i + 1)] = s[1];
  }
}

TERN_DOT_AVX2 inline float half_to_f32(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// One block unpacked: `groups` groups of 32 codes, and a/b per half-group.
struct Unpacked {
  __m256i codes[8];
  float a[8][2], b[8][2];
};

TERN_DOT_AVX2 inline __m256i nibbles32(const uint8_t* qs16) {  // legacy: 16 bytes -> values 0..15 | 16..31
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs16));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

// The 32 bits of qh as 32 bytes of 0x10 / 0x00 (bit j -> byte j).
TERN_DOT_AVX2 inline __m256i bits_to_0x10(uint32_t qh) {
  const __m256i v = _mm256_set1_epi32(int(qh));
  const __m256i spread = _mm256_shuffle_epi8(
      v, _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ULL));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

template <GgufType T>
TERN_DOT_AVX2 inline int unpack(const uint8_t* b, Unpacked& u) {
  auto same = [&](int g, float a, float bb) { u.a[g][0] = u.a[g][1] = a, u.b[g][0] = u.b[g][1] = bb; };
  if constexpr (T == GgufType::Q4_0 || T == GgufType::Q4_1) {
    const float d = half_to_f32(b);
    u.codes[0] = nibbles32(b + (T == GgufType::Q4_0 ? 2 : 4));
    same(0, d, T == GgufType::Q4_0 ? -8.f * d : half_to_f32(b + 2));
    return 1;
  } else if constexpr (T == GgufType::Q5_0 || T == GgufType::Q5_1) {
    const float d = half_to_f32(b);
    const int off = T == GgufType::Q5_0 ? 2 : 4;
    uint32_t qh;
    std::memcpy(&qh, b + off, 4);
    u.codes[0] = _mm256_or_si256(nibbles32(b + off + 4), bits_to_0x10(qh));
    same(0, d, T == GgufType::Q5_0 ? -16.f * d : half_to_f32(b + 2));
    return 1;
  } else if constexpr (T == GgufType::Q4_K || T == GgufType::Q5_K) {
    const float d = half_to_f32(b), dmin = half_to_f32(b + 2);
    const uint8_t* qs = b + (T == GgufType::Q5_K ? 48 : 16);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    for (int p = 0; p < 4; ++p) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + p * 32));
      u.codes[2 * p] = _mm256_and_si256(q, m4);
      u.codes[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (T == GgufType::Q5_K) {
        const __m256i one = _mm256_set1_epi8(1);
        u.codes[2 * p] = _mm256_or_si256(
            u.codes[2 * p], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p), one), 4));
        u.codes[2 * p + 1] = _mm256_or_si256(
            u.codes[2 * p + 1], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p + 1), one), 4));
      }
    }
    for (int g = 0; g < 8; ++g) {
      uint8_t sc, mn;
      gguf_ref::k4_scale_min(g, b + 4, &sc, &mn);
      same(g, d * float(sc), -dmin * float(mn));
    }
    return 8;
  } else if constexpr (T == GgufType::Q6_K) {
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = half_to_f32(b + 208);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + h * 64));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + h * 64 + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + h * 32));
      const __m256i low[4] = {_mm256_and_si256(lo, m4), _mm256_and_si256(hi, m4),
                              _mm256_and_si256(_mm256_srli_epi16(lo, 4), m4),
                              _mm256_and_si256(_mm256_srli_epi16(hi, 4), m4)};
      for (int r = 0; r < 4; ++r) {
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), m2);
        const int g = h * 4 + r;
        u.codes[g] = _mm256_or_si256(low[r], _mm256_slli_epi16(high, 4));
        for (int s = 0; s < 2; ++s) {
          const float a = d * float(sc[h * 8 + 2 * r + s]);
          u.a[g][s] = a, u.b[g][s] = -32.f * a;
        }
      }
    }
    return 8;
  } else if constexpr (T == GgufType::Q2_K || T == GgufType::Q3_K) {
    const uint8_t* qs = b + (T == GgufType::Q2_K ? 16 : 32);
    const __m256i m2 = _mm256_set1_epi8(3);
    int8_t sc3[16];
    float d = 0, dmin = 0;
    if constexpr (T == GgufType::Q3_K) {
      gguf_ref::q3k_scales(b + 96, sc3);
      d = half_to_f32(b + 108);
    } else {
      d = half_to_f32(b + 80), dmin = half_to_f32(b + 82);
    }
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    for (int g = 0; g < 8; ++g) {
      const int h = g / 4, j = g % 4;
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + h * 32));
      u.codes[g] = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m2);
      if constexpr (T == GgufType::Q3_K) {  // high bit g of hmask[l] adds 4; w = d*s*(code - 4)
        const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, g), _mm256_set1_epi8(1));
        u.codes[g] = _mm256_or_si256(u.codes[g], _mm256_slli_epi16(hb, 2));
        for (int s = 0; s < 2; ++s) {
          const float a = d * float(sc3[2 * g + s]);
          u.a[g][s] = a, u.b[g][s] = -4.f * a;
        }
      } else {
        for (int s = 0; s < 2; ++s) {
          const uint8_t v = b[2 * g + s];
          u.a[g][s] = d * float(v & 0xF), u.b[g][s] = -dmin * float(v >> 4);
        }
      }
    }
    return 8;
  }
  return 0;
}

TERN_DOT_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <GgufType T, int M>
TERN_DOT_AVX2 void gemv_int(const MatmulArgs& a, const QuantX& qx, int64_t n0, int64_t n1) {
  const GgufTypeTraits& tr = gguf_traits(T);
  const int64_t k = a.w.cols, n = a.w.rows, nb = k / tr.block_elems, ng = k / 32;
  const size_t row_bytes = size_t(nb) * size_t(tr.block_bytes);
  const __m256i ones = _mm256_set1_epi16(1);
  Unpacked u;
  for (int64_t r = n0; r < n1; ++r) {
    const auto* row = static_cast<const uint8_t*>(a.w.data) + size_t(r) * row_bytes;
    __m256 acc[M];
    float bias[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps(), bias[i] = 0.f;
    for (int64_t blk = 0; blk < nb; ++blk) {
      const uint8_t* b = row + blk * tr.block_bytes;
      if constexpr (T == GgufType::Q8_0) {  // signed codes: |w| · sign(x, w)
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
        const __m256i aw = _mm256_sign_epi8(w, w);
        const float d = half_to_f32(b);
        for (int i = 0; i < M; ++i) {
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx.q.data() + i * k + blk * 32));
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xq, w)), ones);
          acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * qx.d[size_t(i * ng + blk)]), acc[i]);
        }
        continue;
      }
      const int groups = unpack<T>(b, u);
      for (int g = 0; g < groups; ++g) {
        const int64_t xg = blk * groups + g;  // x group index
        const __m256 av = _mm256_setr_m128(_mm_set1_ps(u.a[g][0]), _mm_set1_ps(u.a[g][1]));
        for (int i = 0; i < M; ++i) {
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx.q.data() + i * k + xg * 32));
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u.codes[g], xq), ones);
          const float dx = qx.d[size_t(i * ng + xg)];
          acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(av, _mm256_set1_ps(dx)), acc[i]);
          const int32_t* s = qx.sums.data() + 2 * (i * ng + xg);
          bias[i] += dx * (u.b[g][0] * float(s[0]) + u.b[g][1] * float(s[1]));
        }
      }
    }
    for (int i = 0; i < M; ++i) a.y[i * n + r] = hsum(acc[i]) + bias[i] + (a.bias ? a.bias[r] : 0.f);
  }
}

template <GgufType T>
void gemv_type(const MatmulArgs& a, const QuantX& qx, int64_t n0, int64_t n1) {
  switch (a.m) {
    case 1: return gemv_int<T, 1>(a, qx, n0, n1);
    case 2: return gemv_int<T, 2>(a, qx, n0, n1);
    case 3: return gemv_int<T, 3>(a, qx, n0, n1);
    case 4: return gemv_int<T, 4>(a, qx, n0, n1);
    default:  // 5..8 rows: two passes of up to 4 (keeps accumulators in registers)
      gemv_int<T, 4>(a, qx, n0, n1);
      {
        MatmulArgs rest = a;
        rest.m = a.m - 4;
        rest.x = a.x + 4 * a.w.cols;
        rest.y = a.y + 4 * a.w.rows;
        QuantX tail;
        const size_t k = size_t(a.w.cols);
        tail.q.assign(qx.q.begin() + long(4 * k), qx.q.end());
        tail.d.assign(qx.d.begin() + long(4 * k / 32), qx.d.end());
        tail.sums.assign(qx.sums.begin() + long(4 * k / 16), qx.sums.end());
        gemv_type<T>(rest, tail, n0, n1);
      }
  }
}

}  // namespace

bool gguf_gemv_int8_supported(GgufType t) {
  switch (t) {
    case GgufType::Q8_0: case GgufType::Q4_0: case GgufType::Q4_1: case GgufType::Q5_0: case GgufType::Q5_1:
    case GgufType::Q2_K: case GgufType::Q3_K: case GgufType::Q4_K: case GgufType::Q5_K: case GgufType::Q6_K:
      return true;
    default: return false;
  }
}

void gguf_gemv_int8_avx2(const MatmulArgs& a, int64_t n0, int64_t n1) {
  QuantX qx;
  quantize_x(a.x, a.m, a.w.cols, qx);
  switch (GgufType(a.w.gguf_type)) {
    case GgufType::Q8_0: return gemv_type<GgufType::Q8_0>(a, qx, n0, n1);
    case GgufType::Q4_0: return gemv_type<GgufType::Q4_0>(a, qx, n0, n1);
    case GgufType::Q4_1: return gemv_type<GgufType::Q4_1>(a, qx, n0, n1);
    case GgufType::Q5_0: return gemv_type<GgufType::Q5_0>(a, qx, n0, n1);
    case GgufType::Q5_1: return gemv_type<GgufType::Q5_1>(a, qx, n0, n1);
    case GgufType::Q2_K: return gemv_type<GgufType::Q2_K>(a, qx, n0, n1);
    case GgufType::Q3_K: return gemv_type<GgufType::Q3_K>(a, qx, n0, n1);
    case GgufType::Q4_K: return gemv_type<GgufType::Q4_K>(a, qx, n0, n1);
    case GgufType::Q5_K: return gemv_type<GgufType::Q5_K>(a, qx, n0, n1);
    case GgufType::Q6_K: return gemv_type<GgufType::Q6_K>(a, qx, n0, n1);
    default: return gguf_gemv_avx2(a, n0, n1);
  }
}

}  // namespace tern::cpu
