// Structured pruning: a smaller dense model, by activation-based importance measured on calibration text.
//   heads     whole KV groups with the query heads that share them (so the GQA ratio stays, as the
//             config needs), the same count in every layer; a group's importance is the output energy
//             its heads add through o_proj: Σ_j E[a_j²] · ‖W_o[:, j]‖² over its heads' channels a_j
//             (the attention output, o_proj's input) — Minitron's activation norm weighted by the
//             weights that carry it, as FLAP weighs its fluctuation metric;
//   channels  feed-forward channels, the same count in every layer, by E[a_j²] · ‖W_down[:, j]‖² of the
//             intermediate activation a_j (down_proj's input); the kept count is a multiple of 32
//             (so the smaller model still takes int4 group-32 quantization);
//   layers    whole decoder layers with the least block influence (ShortGPT): BI_l = 1 − E_t[cos(h_l, h_{l+1})],
//             h_l the residual stream entering layer l.
// One calibration pass over the unpruned model scores everything (as Minitron and ShortGPT do).
// Llama-family layouts only (separate q/k/v/o and gate/up/down tensors: Llama, Mistral, Qwen2, Qwen3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/quantized_model.h"
#include "core/exec_context.h"
#include "core/status.h"
#include "model/model.h"

namespace tern {

enum StructuredTarget : unsigned { kPruneHeads = 1, kPruneChannels = 2, kPruneLayers = 4 };

struct StructuredOptions {
  unsigned targets = 0;  // StructuredTarget bits
  double ratio = 0.0;    // fraction removed, in (0, 1)
};

// "heads", "channels", "heads,channels" (either order) or "layers" (alone).
Result<unsigned> parse_structured_targets(const std::string& s);
Status validate_structured(const StructuredOptions& o);

struct StructuredPlan {
  StructuredOptions options;
  int kv_remove = 0;             // KV groups removed per layer (with their rep = heads / kv query heads)
  int64_t channels_keep = 0;     // feed-forward channels kept per layer (0: not pruned)
  int layers_remove = 0;
  // From score_structured: importance per unit (higher = keep), and what is kept, ascending.
  std::vector<std::vector<double>> kv_scores, channel_scores;  // [layer][group], [layer][channel]
  std::vector<double> layer_scores;                           // [layer] block influence
  std::vector<std::vector<int>> kv_kept;                      // [layer] KV groups kept
  std::vector<std::vector<int64_t>> channels_kept;            // [layer] channels kept
  std::vector<int> layers_kept;
};

// The counts the ratio gives for this model; errors (naming the field) when the architecture is not
// a supported layout or the ratio removes nothing or everything.
Result<StructuredPlan> plan_structured_shape(const Model& model, const StructuredOptions& options);

// One calibration pass; fills the scores and the kept lists. progress(windows done, windows).
Status score_structured(const Model& model, ExecContext& ctx, const std::vector<std::vector<int32_t>>& windows,
                        StructuredPlan& plan, const ProgressFn& progress = nullptr);

// "heads: 8 -> 6 (KV groups 4 -> 3), layers removed: 3, 5 (BI 0.041, 0.046)" for the log.
std::string describe_plan(const Model& model, const StructuredPlan& plan);

// The smaller checkpoint: sliced / renumbered tensors in their stored dtype, config.json with
// num_attention_heads, num_key_value_heads, head_dim (explicit), intermediate_size, num_hidden_layers
// (and layer_types, when present) to match, tokenizer files copied.
Status write_structured_checkpoint(const Model& model, const StructuredPlan& plan, const std::string& out_dir);

}  // namespace tern
