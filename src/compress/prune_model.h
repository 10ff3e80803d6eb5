// Unstructured / N:M pruning of a whole model: every decoder linear the quantization methods walk
// (compress/linear_sites.h: attention, MLP, experts; the embedding and the LM head stay dense, as
// Wanda and SparseGPT leave them), layer by layer. With calibration (wanda, sparsegpt) each layer's
// inputs are collected with every earlier layer already pruned, so a layer is pruned for the inputs the
// pruned model will feed it (both papers' sequential order); one calibration pass per layer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compress/calibration.h"
#include "compress/prune_criteria.h"
#include "compress/quantized_model.h"
#include "compress/sparsegpt.h"
#include "core/exec_context.h"
#include "model/model.h"

namespace tern {

struct PruneOptions {
  PruneMethod method = PruneMethod::kMagnitude;
  PruneSpec spec;
  SparseGptOptions sparsegpt;
  // OWL (wanda, ria, sparsegpt; unstructured): each layer's sparsity from its outlier ratio (prune_criteria.h
  // owl_layer_sparsity), measured on the unpruned model in one extra calibration pass over every layer.
  bool owl = false;
  double owl_m = 5.0, owl_lambda = 0.08;  // the OWL paper's LLaMA settings
  // Also prune the LM head (magnitude, the spec's group; a head tied to the embedding gets its own
  // pruned copy, module "lm_head", and the embedding stays dense): so that a sparse checkpoint
  // (tern sparsify --sparse-lm-head) reads the head's non-zeros only. Off by default, as the papers leave it.
  bool lm_head = false;
};

// The pruned linears by stored module (and "lm_head" with PruneOptions::lm_head) ("model.layers.0.self_attn.q_proj", tensor "<module>.weight"),
// each f32 [rows, cols] as the linear computes it (outputs by inputs; a GPT-2 Conv1D module is
// stored transposed, conv1d marks it). A fused module holds all its parts.
struct PrunedModule {
  int64_t rows = 0, cols = 0;
  bool conv1d = false;
  std::vector<float> w;
};
struct PrunedModel {
  std::map<std::string, PrunedModule> modules;
  int64_t zeros = 0, params = 0;   // over the pruned linears
  int64_t uncalibrated = 0;        // expert matrices no calibration row reached: pruned by magnitude
  std::vector<double> layer_sparsity;  // OWL: the sparsity each layer got
  double sparsity() const { return params ? double(zeros) / double(params) : 0.0; }
};

// Every pruned linear's input count must suit the spec (N:M: M divides it); checked up front so a
// bad pattern fails before any calibration runs. Errors name the module.
Status check_prunable(const Model& model, const PruneSpec& spec);

// windows: calibration token windows (wanda, sparsegpt; ignored for magnitude). progress(layers done,
// layers). `model` is not changed (a private copy runs the calibration passes).
Result<PrunedModel> prune_model(const Model& model, ExecContext& ctx, const std::vector<std::vector<int32_t>>& windows,
                                const PruneOptions& options, const ProgressFn& progress = nullptr);

// Evaluation in memory: `model`'s linears named in `pm` replaced by the pruned f32 ones.
Status apply_pruned(Model& model, const PrunedModel& pm);

}  // namespace tern
