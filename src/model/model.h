// A loaded model: its config, its mmapped checkpoint and the weights bound by its architecture.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/quant/quant_config.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "core/weight_arena.h"
#include "formats/gguf/gguf_file.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/packed_cache.h"
#include "model/transformer_weights.h"
#include "parallel/communicator.h"
#include "parallel/compressed_all_reduce.h"
#include "parallel/pp_layout.h"
#include "parallel/tp_layout.h"

namespace tern {

// How the LM head (logits = hidden · lm_headᵀ, often the tied embedding) is stored for decode. It is
// the largest single matrix of small models (Llama-3.2-1B: 128256 x 2048 bf16 = 525 MB, about half of
// an int4 token's weight bytes), so a quantized checkpoint gets an int8 head by default, as llama.cpp
// keeps its output matrix at Q6_K / Q8_0. The embedding lookup keeps reading the dense rows.
enum class LmHeadFormat : uint8_t {
  Auto,   // Int8 when the checkpoint is quantized (quantization_config), else Dense
  Dense,  // as stored
  Int8,   // RTN int8 per output channel at load time (W8A16)
  Int4,   // RTN int4, symmetric, group 128 (or the largest of 64 / 32 dividing hidden) at load time
};
// "auto", "dense", "int8", "int4".
Result<LmHeadFormat> parse_lm_head_format(const std::string& s);

// Pipeline-parallel time of one rank (idle share = 1 - busy / wall): busy is computing (layers,
// LM head), wall runs from the first decoder call to the end of the last one.
struct PpStats {
  std::atomic<int64_t> busy_ns{0}, first_ns{0}, last_ns{0}, calls{0};
};

// Whether a quantized safetensors checkpoint's derived weights (its layers repacked for the kernels,
// the LM head rounded to int8 / int4) are kept in DIR/tern-packed-weights.bin (model/packed_cache.h)
// between loads. Dense checkpoints and GGUF files are used in place and have no cache.
enum class WeightCacheMode : uint8_t {
  Auto,  // use the cache when it is valid for the checkpoint; else derive and write it (if DIR is writable)
  Off,   // derive at every load, read and write no file
};
// "auto", "off".
Result<WeightCacheMode> parse_weight_cache_mode(const std::string& s);

// Where a load spent its time (seconds) and what the packed-weight cache did; filled when asked for.
struct LoadReport {
  double open_s = 0;        // config, mmap and header parsing
  double cache_read_s = 0;  // packed-weight cache: key, map, hash verification
  double bind_s = 0;        // the architecture's builder: shape checks, repacking of quantized layers
  double derive_s = 0;      // the LM head quantized at load
  double cache_write_s = 0;
  std::string cache = "off";  // off | used | written | not written: WHY | miss: WHY (...)
  bool cache_hashed = false;  // "used": its payload was hashed (else its verification stamp matched)
};

struct ModelLoadOptions {
  LmHeadFormat lm_head = LmHeadFormat::Auto;
  // --activations bf16 on a CPU with bf16 dot products: the decoder layers' F16 / BF16 matrices are packed
  // at load into the bf16-dot GEMM's layout (model/bf16_weights.h; F16 rounded to bf16). Off: used as stored.
  bool bf16_dot_layers = false;
  // Off unless asked: a library caller (a test on shared read-only data) writes nothing beside the
  // checkpoint by default; the CLI asks for Auto (--weight-cache).
  WeightCacheMode weight_cache = WeightCacheMode::Off;
  // Threads for the work a load parallelizes (verifying the cache, rounding the LM head); not owned.
  // Null: a pool of default_thread_count() threads for the load only.
  ThreadPool* pool = nullptr;
  LoadReport* report = nullptr;  // not owned; null: not reported
  // Tensor parallelism (issue 17): with a communicator of size T > 1 this rank binds only its slices
  // (model/tp_shard.h) and config() describes them; decoders built on the model all-reduce through it.
  // Not owned; must outlive the model. Null or size 1: the whole model.
  Communicator* tp = nullptr;
  // Pipeline parallelism (issue 17): with pp_stages P > 1, `pp` is the whole job's communicator
  // (P × T ranks, `tp` then being this rank's stage of T ranks, or null for T = 1; with `ep` too,
  // P × T × E ranks, `ep` this rank's stage of T·E ranks: parallel/pp_layout.h): this rank binds
  // only its stage's layers (model/pp_shard.h). Not owned; must outlive the model.
  Communicator* pp = nullptr;
  int pp_stages = 1;
  std::vector<int> pp_layers;  // --pp-layers: each stage's layer count (empty: split by bytes)
  int pp_micro_batches = 1;  // groups of sequences a forward pipelines over the stages
  int pp_steps_in_flight = 0;  // engine steps rank 0 keeps in the pipeline (0: one per stage)
  PpStats* pp_stats = nullptr;  // where the stage's timings go (not owned; null: the model's own)
  // Expert parallelism: with a communicator of size E > 1 this rank binds only its routed experts
  // (model/ep_shard.h); decoders sum the MoE layers' routed outputs through it. With `tp` it holds
  // all T·E ranks of the expert groups; with `pp` those of this rank's stage only. Not owned.
  Communicator* ep = nullptr;
  // How the decoder's all-reduces travel (parallel/compressed_all_reduce.h): the activation dtype, or
  // int8 codes with one scale per row (--tp-comm int8).
  TpCommMode tp_comm = TpCommMode::Activation;
  // A GGUF file: the file at the load's path already opened (the caller reads its tokenizer from the
  // same parse, text/model_tokenizer.h), used instead of opening and parsing it again. Null: opened here.
  std::shared_ptr<const GgufFile> gguf;
};


class Model {
 public:
  // DIR holds config.json and model.safetensors or model.safetensors.index.json + shards;
  // or a .gguf file (formats/gguf/gguf_hf_view.h: the architectures of gguf_arch.h; of the options only
  // tensor parallelism applies: a GGUF file chose its output matrix type itself).
  static Result<std::unique_ptr<Model>> load(const std::string& dir, const ModelLoadOptions& options = {});

  const std::string& dir() const { return dir_; }
  // Under tensor parallelism: this rank's config (its heads, KV heads, intermediate columns).
  const ModelConfig& config() const { return config_; }
  // Tensor parallelism: the communicator (null for a whole model) and this rank's slices.
  Communicator* tp_comm() const { return tp_comm_; }
  const TpLayout& tp() const { return tp_; }
  // Pipeline parallelism: the job's communicator (null when P = 1), this rank's stage, its timings.
  Communicator* pp_comm() const { return pp_comm_; }
  const PpLayout& pp() const { return pp_; }
  // Expert parallelism: the communicator (null: every expert here) and the routed experts held here.
  Communicator* ep_comm() const { return ep_comm_; }
  TpRange ep_experts() const { return ep_experts_; }
  PpStats& pp_stats() const { return pp_stats_ext_ ? *pp_stats_ext_ : *pp_stats_; }
  TpCommMode tp_comm_mode() const { return tp_comm_mode_; }
  const TransformerWeights& weights() const { return weights_; }
  // config.json quantization_config (method None for a dense checkpoint).
  const QuantConfig& quant_config() const { return quant_; }
  // Weights repacked at load time (quantized layers), in bytes.
  size_t repacked_bytes() const { return arena_.bytes(); }
  const SafetensorsStore& store() const { return store_; }  // empty for a GGUF model
  const GgufFile* gguf() const { return gguf_.get(); }       // null unless loaded from GGUF
  const std::vector<float>& rope_inv_freq() const { return inv_freq_; }

  // Replaces the bound weights (quantization quality evaluation in memory, tests). The new matrices
  // may point into `storage`, which the model keeps alive; the checkpoint stays mapped.
  void replace_weights(TransformerWeights weights, std::shared_ptr<const void> storage) {
    weights_ = std::move(weights);
    storage_.push_back(std::move(storage));
  }

  // Parameters at their logical shapes (a packed int32 word of a 4-bit layer holds 8 of them; scales,
  // zero points and g_idx are not parameters), so a quantized checkpoint counts as its dense original.
  int64_t parameter_count() const;
  // The same, by how they are stored: "bf16", "int4 (awq, group 128)", "Q4_K", ... .
  std::map<std::string, int64_t> parameters_by_format() const;
  // Bytes of weights one decode step of one token streams: every matrix once (embedding rows are
  // gathered, so a separate embedding table does not count; a tied one counts once, as the LM head),
  // and of a MoE layer the router, top_k experts and the shared expert.
  int64_t weight_bytes_per_token() const;

 private:
  static Result<std::unique_ptr<Model>> load_gguf(const std::string& path, const ModelLoadOptions& options);
  // Tensor parallelism: cuts the bound weights to this rank's slices (model/tp_shard.h).
  Status shard(const ModelLoadOptions& options, const WeightArena* bind_arena);
  // Pipeline parallelism: keeps this stage's layers of the bound weights (model/pp_shard.h), before
  // any tensor-parallel cut; pp_drop_ends follows it.
  Status take_stage(const ModelLoadOptions& options);
  std::string dir_;
  ModelConfig config_;
  SafetensorsStore store_;
  QuantConfig quant_;
  WeightArena arena_;  // owns what quantized WeightMatrix entries in weights_ point to
  std::shared_ptr<const PackedCache> packed_cache_;  // or the mapped packed-weight cache does
  TransformerWeights weights_;
  std::vector<float> inv_freq_;
  Communicator* tp_comm_ = nullptr;
  TpLayout tp_;
  Communicator* pp_comm_ = nullptr;
  PpLayout pp_;
  std::unique_ptr<PpStats> pp_stats_ = std::make_unique<PpStats>();
  PpStats* pp_stats_ext_ = nullptr;
  Communicator* ep_comm_ = nullptr;
  TpRange ep_experts_;
  TpCommMode tp_comm_mode_ = TpCommMode::Activation;
  std::shared_ptr<const GgufFile> gguf_;
  std::shared_ptr<const TensorSource> gguf_view_;  // the GGUF file under Hugging Face names (owns rewritten tensors)
  std::vector<std::shared_ptr<const void>> storage_;  // owners of replaced weights
};

}  // namespace tern
