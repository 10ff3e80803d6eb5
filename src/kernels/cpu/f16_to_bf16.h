// F16 -> BF16 rounding of stored weights (load time, --activations bf16): the bf16-dot GEMMs
// (vdpbf16ps, tdpbf16ps) multiply bf16 only, so an F16 checkpoint's layer matrices are rounded to
// bf16 once (round to nearest even, NaN stays NaN; f16 -> f32 is exact, so this equals
// f32_to_bf16(f16_to_f32(h)) for every one of the 65536 inputs).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cpu_features.h"

namespace tern::cpu {

// dst[i] = bf16(src[i]), i < n. dst and src may not overlap.
void f16_to_bf16_scalar(const uint16_t* src, uint16_t* dst, size_t n);
void f16_to_bf16_avx2(const uint16_t* src, uint16_t* dst, size_t n);  // F16C + AVX2
// The fastest of the above this CPU runs.
void f16_to_bf16(const CpuFeatures& cpu, const uint16_t* src, uint16_t* dst, size_t n);

}  // namespace tern::cpu
