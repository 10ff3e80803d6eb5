// A loaded model: its config, its mmapped checkpoint and the weights bound by its architecture.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compress/quant_config.h"
#include "core/status.h"
#include "core/weight_arena.h"
#include "model/gguf/gguf_file.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/transformer_weights.h"

namespace tern {

class Model {
 public:
  // DIR holds config.json and model.safetensors or model.safetensors.index.json + shards;
  // or a .gguf file (llama, qwen2, qwen3; see model/gguf/gguf_model.h).
  static Result<std::unique_ptr<Model>> load(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const TransformerWeights& weights() const { return weights_; }
  // config.json quantization_config (method None for a dense checkpoint).
  const QuantConfig& quant_config() const { return quant_; }
  // Weights repacked at load time (quantized layers), in bytes.
  size_t repacked_bytes() const { return arena_.bytes(); }
  const SafetensorsStore& store() const { return store_; }  // empty for a GGUF model
  const GgufFile* gguf() const { return gguf_.get(); }       // null unless loaded from GGUF
  const std::vector<float>& rope_inv_freq() const { return inv_freq_; }

  int64_t parameter_count() const;
  // Bytes of weights one decode step streams: every matrix once (embedding rows are gathered,
  // so a separate embedding table does not count; a tied one counts once, as the LM head).
  int64_t weight_bytes_per_token() const;

 private:
  static Result<std::unique_ptr<Model>> load_gguf(const std::string& path);
  std::string dir_;
  ModelConfig config_;
  SafetensorsStore store_;
  QuantConfig quant_;
  WeightArena arena_;  // owns what quantized WeightMatrix entries in weights_ point to
  TransformerWeights weights_;
  std::vector<float> inv_freq_;
  std::shared_ptr<const GgufFile> gguf_;
  std::vector<std::unique_ptr<uint8_t[]>> owned_;  // weights rewritten at load (GGUF q/k rows)
};

}  // namespace tern
