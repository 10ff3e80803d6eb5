// Small-m GGUF GEMV (batched decode, m = 2..kGgufSmallmMaxRows): the per-call activation prepare shared by the
// AVX2 and AVX-512 kernels, and the scalar reference they are tested against. The reference reads the
// same x codes and scales and forms every block's integer sum exactly (ggml block layouts, see
// gguf_blocks.h), accumulating in double, so a kernel may differ from it only by float summation order.
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/gguf_kernels.h"

namespace tern::cpu {

namespace {

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }
bool is_kquant(GgufType t) { return t == GgufType::Q4_K || t == GgufType::Q5_K || t == GgufType::Q6_K; }
bool has_mins(GgufType t) { return t == GgufType::Q4_K || t == GgufType::Q5_K; }
size_t row_region(GgufType t, int64_t k) { return align64(is_kquant(t) ? gguf_acts_k_bytes(k) : gguf_acts_bytes(k)); }
// Blocks of the dxq table: super-blocks of 256 (K-quants) or pairs of 32-blocks (Q4_0 / Q8_0).
int64_t dxq_blocks(GgufType t, int64_t k) { return is_kquant(t) ? k / 256 : k / 64; }

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Σ over one block of w·x as the kernels form it, in units of (weight scale) · (x scale).
double block_q4_0(const uint8_t* blk, const uint8_t* xu, float dx) {
  int s = 0;
  for (int v = 0; v < 32; ++v) {
    const int c = v < 16 ? blk[2 + v] & 15 : blk[2 + v - 16] >> 4;
    s += (c - 8) * (int(xu[v]) - 128);
  }
  return double(f16_at(blk)) * double(dx) * s;
}

// Q8_0 {f16 d; i8 qs[32]}, x as u8 code + 128 as for Q4_0.
double block_q8_0(const uint8_t* blk, const uint8_t* xu, float dx) {
  int s = 0;
  for (int v = 0; v < 32; ++v) s += int(int8_t(blk[2 + v])) * (int(xu[v]) - 128);
  return double(f16_at(blk)) * double(dx) * s;
}

// Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}; Q5_K (q5) has u8 qh[32] before qs: bit 2c / 2c + 1 of qh[l]
// is bit 4 of the low / high nibble code of chunk c.
double block_q4_k(const uint8_t* blk, const int8_t* xq, float dx, bool q5) {
  const uint8_t* qs = blk + (q5 ? 48 : 16);
  const uint8_t* qh = blk + 16;
  int64_t main = 0, mins = 0;
  for (int j = 0; j < 8; ++j) {  // sub-block j: chunk j / 2, low (j even) or high nibbles
    uint8_t sc, mn;
    gguf_ref::k4_scale_min(j, blk + 4, &sc, &mn);
    int s = 0, xs = 0;
    for (int l = 0; l < 32; ++l) {
      const uint8_t byte = qs[32 * (j / 2) + l];
      const int c = (j % 2 == 0 ? byte & 15 : byte >> 4) | (q5 ? ((qh[l] >> j) & 1) << 4 : 0);
      s += c * xq[32 * j + l], xs += xq[32 * j + l];
    }
    main += int64_t(sc) * s, mins += int64_t(mn) * xs;
  }
  return double(dx) * (double(f16_at(blk)) * double(main) - double(f16_at(blk + 2)) * double(mins));
}

double block_q6_k(const uint8_t* blk, const int8_t* xq, float dx) {
  const uint8_t *ql = blk, *qh = blk + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
  int64_t main = 0;
  for (int v = 0; v < 256; ++v) {  // half h, quarter r, position l (layout in gguf_gemv_m1_k_avx2.cpp)
    const int h = v / 128, r = (v % 128) / 32, l = v % 32;
    const uint8_t a = ql[h * 64 + (r & 1) * 32 + l];
    const int c = (r < 2 ? a & 15 : a >> 4) | (((qh[h * 32 + l] >> (2 * r)) & 3) << 4);
    main += int64_t(sc[v / 16]) * (c - 32) * xq[v];
  }
  return double(f16_at(blk + 208)) * double(dx) * double(main);
}

}  // namespace

bool gguf_gemv_smallm_supported(GgufType t, int64_t k) {
  if (is_kquant(t)) return k % 256 == 0;
  return (t == GgufType::Q4_0 || t == GgufType::Q8_0) && k % 64 == 0;
}

size_t gguf_smallm_acts_bytes(GgufType t, int64_t m, int64_t k) {
  const size_t nq = size_t((m + 3) / 4);
  return size_t(m) * row_region(t, k) + align64(size_t(dxq_blocks(t, k)) * nq * 16 * sizeof(float)) +
         (has_mins(t) ? align64(size_t(k / 256) * nq * 32 * sizeof(int16_t)) : 0);
}

GgufSmallmActs gguf_smallm_prepare(GgufType t, const float* x, int64_t m, int64_t k, void* scratch) {
  const bool kq = is_kquant(t);
  const size_t rb = row_region(t, k);
  auto* base = static_cast<char*>(scratch);
  GgufSmallmActs a;
  a.type = t, a.m = m, a.quads = (m + 3) / 4;
  const int64_t nq = a.quads;
  for (int64_t i = 0; i < m; ++i) {
    void* s = base + size_t(i) * rb;
    a.row[i] = kq ? gguf_acts_k_prepare_avx2(x + i * k, k, s) : gguf_acts_prepare_avx2(x + i * k, k, s);
    if (!kq) {  // signed codes -> u8 code + 128 (the kernels' u8 × s8 products take the sign from the weights;
                // Q8_0 on AVX2 flips them back for vpsignb)
      auto* q = reinterpret_cast<uint8_t*>(const_cast<int8_t*>(a.row[i].q));
      for (int64_t c = 0; c < k; ++c) q[c] ^= 0x80;
    }
  }
  auto* dxq = reinterpret_cast<float*>(base + size_t(m) * rb);
  const int64_t nblk = dxq_blocks(t, k);
  for (int64_t b = 0; b < nblk; ++b) {
    for (int64_t q = 0; q < nq; ++q) {
      for (int lane = 0; lane < 16; ++lane) {
        const int64_t i = 4 * q + lane % 4;
        const int L = lane / 4;
        float v = 0.f;
        if (i < m) v = kq ? a.row[i].d256[b] : a.row[i].d8[(2 * b + L / 2) * 8];
        dxq[(b * nq + q) * 16 + lane] = v;
      }
    }
  }
  a.dxq = dxq;
  if (has_mins(t)) {
    auto* mins = reinterpret_cast<int16_t*>(reinterpret_cast<char*>(dxq) + align64(size_t(nblk * nq) * 16 * sizeof(float)));
    for (int64_t b = 0; b < k / 256; ++b) {
      for (int64_t q = 0; q < nq; ++q) {
        for (int e = 0; e < 32; ++e) {  // int16 e of lane p = e / 2 = 4L + i: sub-block 2L + e % 2 of row 4q + i
          const int p = e / 2, L = p / 4;
          const int64_t i = 4 * q + p % 4;
          mins[(b * nq + q) * 32 + e] = i < m ? a.row[i].bsum32[b * 8 + 2 * L + e % 2] : int16_t(0);
        }
      }
    }
    a.mins = mins;
  }
  return a;
}

void gguf_gemv_smallm_ref(const GgufSmallmActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  const GgufType t = x.type;
  const int64_t k = a.w.cols, n = a.w.rows;
  const size_t rb = gguf_row_bytes(t, k);
  for (int64_t j = n0; j < n1; ++j) {
    const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(j) * rb;
    for (int64_t i = 0; i < x.m; ++i) {
      const GgufActs& xa = x.row[i];
      double acc = 0;
      if (t == GgufType::Q4_0) {
        for (int64_t b = 0; b < k / 32; ++b)
          acc += block_q4_0(row + b * 18, reinterpret_cast<const uint8_t*>(xa.q) + b * 32, xa.d8[b * 8]);
      } else if (t == GgufType::Q8_0) {
        for (int64_t b = 0; b < k / 32; ++b)
          acc += block_q8_0(row + b * 34, reinterpret_cast<const uint8_t*>(xa.q) + b * 32, xa.d8[b * 8]);
      } else if (t == GgufType::Q4_K || t == GgufType::Q5_K) {
        const bool q5 = t == GgufType::Q5_K;
        for (int64_t b = 0; b < k / 256; ++b)
          acc += block_q4_k(row + b * (q5 ? 176 : 144), xa.q + b * 256, xa.d256[b], q5);
      } else {
        for (int64_t b = 0; b < k / 256; ++b) acc += block_q6_k(row + b * 210, xa.q + b * 256, xa.d256[b]);
      }
      a.y[i * n + j] = float(acc + (a.bias ? double(a.bias[j]) : 0.0));
    }
  }
}

}  // namespace tern::cpu
