// A GGUF file seen as the Hugging Face checkpoint it was converted from: every tensor under its
// Hugging Face name and shape (gguf_arch.h's table), so the architecture builders (model/archs/)
// bind GGUF files with the same code as safetensors checkpoints. Block types (Q8_0, Q4_K, ...)
// stay as they are (TensorInfo::gguf_type) and run on the GGUF kernels. The converter's changes
// are undone here, at load (DESIGN.md principle 5):
//   - experts stacked in one tensor [E, rows, cols] -> E views [rows, cols] (no copy);
//   - arch llama: q/k rows (and biases) interleaved per head -> Hugging Face order (a copy of q, k);
//   - gemma: norms stored as 1 + w -> w (small f32 copies);
//   - gpt2: Conv1D weights stored [out, in] -> marked stored_transposed (used in place);
//   - deepseek2: kv_b_proj stored split as attn_k_b / attn_v_b -> merged back in f32 (gguf_mla.h);
//   - llama3 rope scaling stored as rope_freqs.weight -> rope_divisors() (per-frequency divisors).
// A tensor the architecture's table does not know is an error naming it and the file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/gguf/gguf_arch.h"
#include "formats/gguf/gguf_file.h"
#include "formats/model_config.h"
#include "formats/tensor_source.h"

namespace tern {

class GgufHfView : public TensorSource {
 public:
  // `g` must outlive the view; cfg is gguf_model_config(g).
  static Result<std::unique_ptr<GgufHfView>> open(const GgufFile& g, const GgufArch& arch, const ModelConfig& cfg);

  const TensorInfo* find(const std::string& name) const override;
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const std::string& source() const override { return source_; }
  std::string stored_name(const std::string& name) const override;
  // rope_freqs.weight (llama3 scaling: inv_freq[i] /= divisor[i]); empty when absent.
  const std::vector<float>& rope_divisors() const { return rope_divisors_; }
  // Frees the view's rewritten copy whose data starts at `data` (an un-permuted q/k) once the model
  // holds a copy of its own (F16 layers rounded to bf16 at load: model/bf16_weights.h); the tensor's
  // entry then has null data. False when `data` is not such a copy (then nothing changes).
  bool release_copy(const void* data);

 private:
  // DeepSeek: attn_k_b + attn_v_b -> kv_b_proj (f32), layer by layer (gguf_mla.h).
  Status merge_kv_b(const GgufFile& g, const ModelConfig& cfg);
  const GgufArch* arch_ = nullptr;
  std::string source_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::vector<std::unique_ptr<uint8_t[]>> owned_;  // rewritten tensors (q/k rows, gemma norms)
  std::vector<float> rope_divisors_;
};

}  // namespace tern
