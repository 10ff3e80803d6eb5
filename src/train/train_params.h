// The trainable parameters of a Llama-family model as one flat f32 array (the master weights; the
// gradients and AdamW moments use the same layout), named as Hugging Face names them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"

namespace tern::train {

struct LlamaShape {
  int64_t vocab = 0, hidden = 0, inter = 0;
  int layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  double eps = 1e-5;
  bool tied = false;
  std::vector<float> inv_freq;  // [head_dim / 2]
};

// The shape of a config tern can train; errors name the config field that is outside the Llama family
// training supports (architecture, biases, activation, rope type, sliding window, MoE, MLA, ...).
Result<LlamaShape> llama_shape(const ModelConfig& c, const std::string& source);

struct ParamTensor {
  std::string name;             // e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;
  int64_t offset = 0, numel = 0;
  bool decay = false;           // AdamW weight decay: matrices and embeddings yes, norms no
};

// Views of one layer's tensors inside a flat array (parameters or gradients).
struct LayerView {
  float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *wg, *wu, *wd;
};

class ParamLayout {
 public:
  explicit ParamLayout(const LlamaShape& s);
  const LlamaShape& shape() const { return s_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  int64_t total() const { return total_; }

  float* embed(float* base) const { return base; }
  LayerView layer(float* base, int l) const;
  float* final_norm(float* base) const { return base + final_norm_; }
  float* lm_head(float* base) const { return s_.tied ? base : base + lm_head_; }  // [vocab, hidden]
  const float* embed(const float* b) const { return embed(const_cast<float*>(b)); }
  LayerView layer(const float* b, int l) const { return layer(const_cast<float*>(b), l); }
  const float* final_norm(const float* b) const { return final_norm(const_cast<float*>(b)); }
  const float* lm_head(const float* b) const { return lm_head(const_cast<float*>(b)); }

 private:
  LlamaShape s_;
  std::vector<ParamTensor> tensors_;
  std::vector<int64_t> layer_base_;
  int64_t layer_size_ = 0, final_norm_ = 0, lm_head_ = 0, total_ = 0;
};

// Reads every tensor of the layout from a checkpoint (bf16, f16 or f32), checking its shape.
Status load_params(const ParamLayout& layout, const TensorSource& store, float* params);
// Normal(0, std) matrices and embeddings, ones for the norms (Hugging Face's Llama initialisation).
void init_params_random(const ParamLayout& layout, uint64_t seed, double std, float* params);

// Writes DIR/model.safetensors (f32), DIR/config.json (config_json with its dtype set to float32) and
// copies the tokenizer / generation files found in tokenizer_dir. Written to temporary names and
// renamed, so an interrupted write never leaves a half checkpoint under the final names.
Status save_checkpoint(const ParamLayout& layout, const float* params, const std::string& dir,
                       const std::string& config_json, const std::string& tokenizer_dir);

}  // namespace tern::train
