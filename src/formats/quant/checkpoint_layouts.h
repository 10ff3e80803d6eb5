// QuantizedLinear <-> the tensors of one linear layer in a published quantized-checkpoint layout.
//   AutoAWQ "gemm" (4-bit): qweight int32 [in, out/8] and qzeros int32 [in/group, out/8], eight codes per
//     int32 packed along the OUTPUT dimension in the interleaved order 0 2 4 6 1 3 5 7 (nibble i holds
//     output column 8j + order[i]); scales f16 [in/group, out]. w = (q - zero) * scale.
//   AutoGPTQ (4 or 8-bit): qweight int32 [in / (32/bits), out] packed along the INPUT dimension in order
//     (nibble t of row i holds input 8i + t for 4-bit); qzeros int32 [groups, out / (32/bits)] packed along
//     the output dimension, stored minus one in checkpoint_format "gptq" (v1) and as is in "gptq_v2";
//     scales f16 [groups, out]; g_idx int32 [in] (the group of each input column; act-order permutes it).
//   compressed-tensors: pack-quantized: weight_packed int32 [out, in / (32/bits)] packed along the input
//     dimension in order, codes offset by 2^(bits-1) (signed value + 8 for int4); weight_scale [out, groups];
//     weight_shape int64 [2] = (out, in). int-quantized: weight int8 [out, in], weight_scale [out, 1].
//     float-quantized: weight float8_e4m3fn [out, in], weight_scale [out, 1].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/quant/quant_config.h"
#include "formats/quant/quantized_linear.h"
#include "core/dtype.h"
#include "core/status.h"
#include "formats/safetensors.h"

namespace tern {

struct OwnedTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// The tensors for module `prefix` (e.g. "model.layers.0.mlp.up_proj") in cfg's layout. Errors when the
// layer does not fit the layout (AWQ needs out % 8 == 0, packing needs in % (32/bits) == 0, ...).
Result<std::vector<OwnedTensor>> pack_checkpoint_linear(const QuantizedLinear& ql, const QuantConfig& cfg,
                                                        const std::string& prefix);

// Names of the tensors pack_checkpoint_linear writes for `prefix`, and whether `store` holds the
// quantized form of that module (its first tensor name is present).
std::vector<std::string> checkpoint_tensor_names(const QuantConfig& cfg, const std::string& prefix);
bool has_quantized_linear(const SafetensorsStore& store, const QuantConfig& cfg, const std::string& prefix);

// Reads module `prefix` back ([rows = out, cols = in] as the architecture expects), checking every
// tensor's dtype and shape. Codes, scales and zero points come out as pack_checkpoint_linear took them
// (scales rounded to the stored f16). All-8 zero points of 4-bit layers come back as symmetric.
Result<QuantizedLinear> unpack_checkpoint_linear(const SafetensorsStore& store, const QuantConfig& cfg,
                                                 const std::string& prefix, int64_t rows, int64_t cols);

}  // namespace tern
