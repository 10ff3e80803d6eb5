// Binds checkpoint tensors to an architecture's weight slots, checking each tensor's shape, and
// remembers what was taken so that tensors no architecture asked for are reported, not silently
// ignored. All quirks (renames, tied embeddings) are resolved here at load time (DESIGN.md principle 5).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "formats/quant/quant_config.h"
#include "core/status.h"
#include "core/weight_arena.h"
#include "formats/safetensors.h"
#include "core/weight_matrix.h"
#include "model/packed_cache.h"

namespace tern {

class WeightBinder {
 public:
  explicit WeightBinder(const TensorSource& store) : store_(&store) {}
  // A quantized checkpoint (config.json quantization_config): matrices stored in cfg's layout
  // (AutoAWQ, AutoGPTQ, compressed-tensors) are unpacked and repacked for the kernels into `arena`.
  // Both must outlive the binder; the arena must outlive the bound weights.
  WeightBinder(const SafetensorsStore& store, const QuantConfig& cfg, WeightArena& arena)
      : store_(&store), safetensors_(&store), quant_(&cfg), arena_(&arena) {}

  bool has(const std::string& name) const { return store_->find(name) != nullptr; }

  // A 2-D weight [rows, cols] used in place from the mmap (dense, or a GGUF block type), or repacked
  // (quantized layer: `name` is "<module>.weight" and the checkpoint holds that module's quantized tensors).
  Result<WeightMatrix> matrix(const std::string& name, int64_t rows, int64_t cols);
  // A 1-D tensor [n] (norm weights, biases) converted to f32 (small, so copied).
  Result<std::vector<float>> vector_f32(const std::string& name, int64_t n);

  // A dense weight stored fused along its output dimension, [Σ rows, cols], returned as one matrix
  // per part (views into the mmap): Phi-3 qkv_proj (q, k, v rows), gate_up_proj (gate, up).
  // transposed: the checkpoint stores [cols, Σ rows] (GPT-2's Conv1D, [in, out]); the tensor is
  // copied transposed into the arena once, at load (used in place when its source already stores it
  // [Σ rows, cols]: TensorInfo::stored_transposed). A tensor of any other shape is an error naming it.
  // A quantized checkpoint may hold the module quantized (a linear [Σ rows, cols] whatever `transposed`
  // says): it is split by rows, each part repacked for the kernels.
  Result<std::vector<WeightMatrix>> matrix_parts(const std::string& name, const std::vector<int64_t>& rows,
                                                 int64_t cols, bool transposed = false);
  // The same for a fused 1-D tensor (a bias [Σ n]).
  Result<std::vector<std::vector<float>>> vector_parts(const std::string& name, const std::vector<int64_t>& n);

  // Tensors that carry no weights we need (e.g. legacy rotary_emb.inv_freq buffers).
  void ignore_if_present(const std::string& name);
  // Every tensor whose name starts with `prefix` (weights an architecture knowingly does not use, e.g.
  // DeepSeek-V3's multi-token-prediction layers); returns how many.
  int ignore_prefix(const std::string& prefix);

  // Quantized layers from `cache` (model/packed_cache.h) when it holds them at the asked shape, instead of
  // unpacking and repacking; every quantized layer bound (from the cache or repacked) goes to `record`
  // under its cache name. Either may be null; both must outlive the binder.
  void use_packed_cache(const PackedCache* cache, PackedCacheWriter* record) { cache_ = cache, record_ = record; }
  // Quantized layers repacked because the cache lacked them.
  int cache_misses() const { return cache_misses_; }

  // Error naming the first unknown tensors when the checkpoint holds tensors nothing took.
  Status check_all_used() const;

 private:
  Result<const TensorInfo*> take(const std::string& name, const std::vector<int64_t>& shape);
  Result<WeightMatrix> quantized_matrix(const std::string& module, int64_t rows, int64_t cols);
  // Whether `name` ("<module>.weight") is stored sparse (formats/sparse/sparse_linear.h); sets *module.
  bool sparse_module(const std::string& name, std::string* module) const;
  Result<WeightMatrix> sparse_matrix(const std::string& module, int64_t rows, int64_t cols);
  // Rows [row0, row0 + rows) of a tensor in a GGUF block type, in place.
  static WeightMatrix gguf_matrix(const TensorInfo& t, int64_t row0, int64_t rows, int64_t cols);
  Result<std::vector<WeightMatrix>> quantized_parts(const std::string& module, const std::vector<int64_t>& rows,
                                                    int64_t total, int64_t cols);
  const TensorSource* store_;
  const SafetensorsStore* safetensors_ = nullptr;  // the quantized-checkpoint path reads its tensors by layout
  const QuantConfig* quant_ = nullptr;
  WeightArena* arena_ = nullptr;
  const PackedCache* cache_ = nullptr;
  PackedCacheWriter* record_ = nullptr;
  int cache_misses_ = 0;
  std::set<std::string> used_;
};

}  // namespace tern
