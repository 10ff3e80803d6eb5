// Row codecs of the paged KV cache: one row is the head_dim values of one (token, kv head).
// encode quantizes an f32 row when it is appended; decode widens it back to f32 when attention
// gathers a key tile. INT8 and FP8 (OCP e4m3fn, max 448) carry one f32 scale per row, chosen from
// the row's own max |x| at write time, so later tokens never force an earlier row to be requantized.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cpu_features.h"
#include "core/kv_dtype.h"

namespace tern::cpu {

struct KvRowCodec {
  KvDType dtype;
  size_t elem_bytes;  // bytes per value
  bool scaled;        // a per-row f32 scale follows the data
  // x: [d] f32 → dst: [d] elements; *scale written when `scaled`.
  void (*encode)(const float* x, int d, void* dst, float* scale);
  // src: [d] elements (scale ignored unless `scaled`) → out: [d] f32
  void (*decode)(const void* src, float scale, int d, float* out);
};

// The fastest codec the host runs for this dtype (AVX2 decode when available).
KvRowCodec kv_row_codec(KvDType dtype, const CpuFeatures& cpu);

// The AVX2 rows (kv_codec_avx2.cpp); call only when the host has AVX2 + FMA + F16C.
struct KvAvx2Rows {
  void (*decode_bf16)(const void*, float, int, float*);
  void (*decode_int8)(const void*, float, int, float*);
  void (*decode_fp8)(const void*, float, int, float*);
  void (*encode_int8)(const float*, int, void*, float*);
};
KvAvx2Rows kv_avx2_rows();

// Exact scalar e4m3fn conversions (round to nearest even, saturating at ±448; NaN never produced).
uint8_t f32_to_fp8_e4m3(float x);
float fp8_e4m3_to_f32(uint8_t v);

}  // namespace tern::cpu
