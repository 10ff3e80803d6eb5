// Writes a quantized Hugging Face checkpoint: every decoder linear module the model lists
// (compress/linear_sites.h: attention, MLP, every expert; a fused tensor as one module, GPT-2's
// Conv1D [in, out] tensors transposed into linears [out, in] as AutoGPTQ stores them) in the layout of `layout` (AutoAWQ / AutoGPTQ / compressed-tensors, formats/quant/checkpoint_layouts.h),
// everything else (embeddings, norms, LM head) copied as stored, config.json with quantization_config,
// and the tokenizer / generation files copied.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "formats/quant/quant_config.h"
#include "compress/quantized_model.h"
#include "core/status.h"
#include "model/model.h"

namespace tern {

// The quantized form of one module; w: its dense weight [rows, cols] as f32.
using LinearQuantizer =
    std::function<Result<QuantizedLinear>(const std::string& module, const float* w, int64_t rows, int64_t cols)>;

struct CheckpointWriteOptions {
  std::string out_dir;
  size_t max_shard_bytes = size_t(5) << 30;
  // f32 replacements of 1-D tensors by full name (norm weights that absorbed smoothing factors).
  const std::map<std::string, std::vector<float>>* vectors = nullptr;
};

// The decoder linear modules of `model` that a quantized checkpoint stores quantized, in order.
struct QuantizableModule {
  std::string name;
  bool conv1d = false;  // stored dense as [in, out]
};
Result<std::vector<QuantizableModule>> quantizable_modules(const Model& model, const QuantConfig& layout);

// Copies the tokenizer and generation files (tokenizer.json, tokenizer_config.json, chat template, ...)
// that exist in `from` into `to` (also what `tern prune` writes beside its tensors).
Status copy_tokenizer_files(const std::string& from, const std::string& to);

Status write_quantized_checkpoint(const Model& model, const QuantConfig& layout, const LinearQuantizer& quantize,
                                  const CheckpointWriteOptions& options, const ProgressFn& progress = nullptr);

}  // namespace tern
