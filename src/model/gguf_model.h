// Llama-family models from GGUF (general.architecture = llama, qwen2, qwen3): hyper-parameters from
// the `<arch>.*` keys, weights bound from llama.cpp's tensor names (token_embd, blk.N.attn_q, ...,
// output_norm, output) to the same TransformerWeights a safetensors checkpoint gives.
// Quirks resolved here, at load time (DESIGN.md principle 5):
//   - llama.cpp's converter interleaves the rope halves of q/k rows for arch "llama" (rows viewed as
//     [n_head, 2, hd/2] stored as [n_head, hd/2, 2]); those rows are put back in Hugging Face order
//     (a copy of q and k only; everything else stays in the mmap);
//   - llama3 rope scaling arrives as rope_freqs.weight (per-frequency divisors), applied to inv_freq.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "formats/gguf/gguf_file.h"
#include "formats/model_config.h"
#include "model/transformer_weights.h"

namespace tern {

// config.architecture is the Hugging Face name (LlamaForCausalLM, ...), model_type the GGUF arch.
Result<ModelConfig> gguf_model_config(const GgufFile& g);

struct GgufBinding {
  TransformerWeights weights;
  std::vector<std::unique_ptr<uint8_t[]>> owned;  // storage of rewritten matrices (un-permuted q/k)
  std::vector<float> rope_divisors;               // rope_freqs.weight, empty when absent
};
Result<GgufBinding> bind_gguf_weights(const GgufFile& g, const ModelConfig& cfg);

// HF row of the converter's interleaved row r within a head of `head_dim` rows: r = 2i + j -> j*hd/2 + i.
inline int64_t gguf_unpermute_row(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, w = r % head_dim;
  return h * head_dim + (w % 2) * (head_dim / 2) + w / 2;
}

}  // namespace tern
