// The model's own list of the linears quantization rounds, per layer: each matrix with the Hugging
// Face module it is stored under (a fused checkpoint tensor — Phi-3 qkv_proj / gate_up_proj, GLM-4
// gate_up_proj, GPT-2's Conv1D c_attn — is one module holding several linears as row ranges), the
// calibration input that feeds it (calibration.h InputRef: a layer slot or one expert's own input),
// and, per input, where an input scale (AWQ, SmoothQuant: the linears read x / s, their columns are
// multiplied by s) folds back so the model still computes the same function: into the norm before
// it (RMSNorm weight, LayerNorm weight and bias, Gemma's stored w of 1 + w), into the rows of the
// linear before it (v for o, up for down), or nowhere (the input is then not scaled; `why_not` says
// why, for the log). Routers and Qwen2-MoE's shared_expert_gate stay dense (as AutoAWQ and vLLM keep
// them); when the input they read is scaled, their columns are multiplied by s (`dense_scaled`).
// Embeddings and the LM head are not listed (quantized only by the mixed-precision embedding path).
//
// MLA (DeepSeek-V3): q_a_proj / q_proj, kv_a_proj_with_mqa (read the input norm), q_b_proj (reads
// the normed q_a output; its scale folds into q_a_layernorm) and o_proj are listed. kv_b_proj is NOT:
// the decoder never multiplies by it — at bind it is absorbed into per-head f32 matrices (W_UK, W_UV,
// blocks/mla_attention.h), so rounding it would cost accuracy and save no run-time memory or reads,
// and the absorption would need it dequantized anyway. It stays dense in the checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/calibration.h"
#include "core/status.h"
#include "core/weight_matrix.h"
#include "model/blocks/moe.h"
#include "model/model.h"

namespace tern {

struct LinearSite {
  std::string module;     // stored module, "model.layers.0.self_attn.qkv_proj" (tensor "<module>.weight")
  std::string name;       // the linear itself, "model.layers.0.self_attn.v_proj" (== module unless fused)
  int64_t row0 = 0;       // first row of this linear inside the stored module
  const WeightMatrix* w = nullptr;  // as bound, [rows, cols]
  InputRef input;
  bool clip = true;       // AWQ's clipping search (AutoAWQ skips q and k)
};

// The linears reading one input, and where its scale folds.
struct InputGroup {
  enum class Fold { kNone, kNorm, kPrevRows };
  InputRef input;
  std::vector<int> sites;  // indices into LayerLinears::sites
  Fold fold = Fold::kNone;
  // kNorm: the bound norm (weight as applied, bias or null) and the stored tensors' names;
  // the checkpoint stores weight - offset (Gemma: 1 + w applied, w stored).
  const std::vector<float>* norm_weight = nullptr;
  const std::vector<float>* norm_bias = nullptr;
  std::string norm_weight_name, norm_bias_name;
  float norm_offset = 0.f;
  // kPrevRows: the site whose output rows are divided by s (o: v, with s tied across the query heads
  // that share a kv head when gqa_rep > 1; down: up).
  int prev_site = -1;
  int gqa_rep = 1, head_dim = 0;
  // Dense matrices reading the same input whose columns are multiplied by s (router, shared_expert_gate).
  std::vector<const WeightMatrix*> dense_scaled;
  std::vector<std::string> dense_scaled_names;  // their stored tensor names
  const MoeWeights* moe = nullptr;  // set: the input of a MoE block (AWQ's loss is the block output)
  std::string why_not;             // kNone: why this input is not scaled
};

struct LayerLinears {
  std::vector<LinearSite> sites;
  std::vector<InputGroup> groups;  // in forward order
};

struct ModelLinears {
  std::vector<LayerLinears> layers;
  // Stored modules in order, each once, with the total rows of the stored matrix; conv1d: the
  // checkpoint stores the dense weight [in, out] (GPT-2); quantized, it is written as a linear [out, in].
  struct Module {
    std::string name;
    int64_t rows = 0, cols = 0;
    bool conv1d = false;
  };
  std::vector<Module> modules;
  int64_t n_linears() const;
};

// The list for `w` (the model's weights or a copy of them: the pointers point into `w`). Error
// naming the architecture when its layout is not known here.
Result<ModelLinears> model_linears(const Model& model, const TransformerWeights& w);
inline Result<ModelLinears> model_linears(const Model& model) { return model_linears(model, model.weights()); }

// A copy of `w` whose MoE and MLA blocks are private (so their matrices may be replaced).
TransformerWeights unshare_blocks(const TransformerWeights& w);

// Row-concatenates `part` (same columns, bits, group, symmetry, g_idx) below `into` (empty: copied).
Status append_rows(QuantizedLinear& into, const QuantizedLinear& part);
// Rows [r0, r0 + n) of `ql`.
QuantizedLinear slice_rows(const QuantizedLinear& ql, int64_t r0, int64_t n);

}  // namespace tern
