// ggml block formats as GGUF stores them (ggml-common.h layouts; the GGUF spec names the type ids).
// A row of n values is n / block_elems consecutive blocks; every block is self-contained:
//   legacy (32 values):  Q8_0 {f16 d; i8 q[32]}            x = d*q
//                        Q4_0 {f16 d; u8 qs[16]}           x = d*(nibble-8), low nibbles = values 0..15
//                        Q4_1 {f16 d, m; u8 qs[16]}        x = d*nibble + m
//                        Q5_0 {f16 d; u32 qh; u8 qs[16]}   x = d*((nibble | bit<<4) - 16)
//                        Q5_1 {f16 d, m; u32 qh; u8 qs[16]} x = d*(nibble | bit<<4) + m
//   K-quants (256 values in 16 or 8 sub-blocks, 6/4/8-bit sub-block scales under one f16 super-scale):
//                        Q2_K {u8 scales[16]; u8 qs[64]; f16 d, dmin}             x = d*sc*q2 - dmin*m
//                        Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}     x = d*(sc-32)*(q3-4)
//                        Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}            x = d*sc*q4 - dmin*m
//                        Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]} x = d*sc*q5 - dmin*m
//                        Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}       x = d*sc*(q6-32)
//                        Q8_K {f32 d; i8 q[256]; i16 bsums[16]} (activation format; not stored in files)
// The quantizers here are tern's own reference (round-to-nearest with a small least-squares search
// for each sub-block's scale/min); any encoder's output decodes the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tern {

enum class GgufType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

struct GgufTypeTraits {
  GgufType type;
  const char* name;  // as llama.cpp prints it: "Q4_K", "F16"
  int block_elems;   // values per block
  int block_bytes;   // bytes per block
  bool weights;      // tern can load it as a weight tensor (Q8_1 / Q8_K are activation formats)
};

// nullptr for ids tern does not know (IQ*, TQ*, removed ids): callers report them by number.
const GgufTypeTraits* gguf_type_traits(uint32_t id);
inline const GgufTypeTraits& gguf_traits(GgufType t) { return *gguf_type_traits(uint32_t(t)); }
std::optional<GgufType> gguf_type_from_name(std::string_view name);  // case-insensitive

// Bytes of a row of n values (n must be a multiple of block_elems).
inline size_t gguf_row_bytes(GgufType t, int64_t n) {
  const GgufTypeTraits& tr = gguf_traits(t);
  return size_t(n / tr.block_elems) * size_t(tr.block_bytes);
}

// Reference (scalar) conversions of one row of n values, n a multiple of block_elems.
void gguf_dequantize_row(GgufType t, const void* src, float* dst, int64_t n);
void gguf_quantize_row(GgufType t, const float* src, void* dst, int64_t n);

// One block of each format (scalar): dst gets block_elems values. Shared by the row functions and
// by the kernels' fallback for formats without a SIMD decoder.
namespace gguf_ref {
void dequant_q8_0(const uint8_t* b, float* y);
void dequant_q4_0(const uint8_t* b, float* y);
void dequant_q4_1(const uint8_t* b, float* y);
void dequant_q5_0(const uint8_t* b, float* y);
void dequant_q5_1(const uint8_t* b, float* y);
void dequant_q2_k(const uint8_t* b, float* y);
void dequant_q3_k(const uint8_t* b, float* y);
void dequant_q4_k(const uint8_t* b, float* y);
void dequant_q5_k(const uint8_t* b, float* y);
void dequant_q6_k(const uint8_t* b, float* y);
void dequant_q8_k(const uint8_t* b, float* y);

// Q4_K / Q5_K 6-bit (scale, min) pair j (0..7) from the 12 packed bytes.
inline void k4_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
// Q3_K: the 16 signed 6-bit scales (already minus 32) from the 12 packed bytes.
void q3k_scales(const uint8_t* packed, int8_t out[16]);
}  // namespace gguf_ref

}  // namespace tern
