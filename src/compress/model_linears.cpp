#include "compress/model_linears.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "compress/mixed_precision.h"

namespace tern {

const char* linear_name(LinearKind k) {
  switch (k) {
    case LinearKind::kQ: return "self_attn.q_proj";
    case LinearKind::kK: return "self_attn.k_proj";
    case LinearKind::kV: return "self_attn.v_proj";
    case LinearKind::kO: return "self_attn.o_proj";
    case LinearKind::kGate: return "mlp.gate_proj";
    case LinearKind::kUp: return "mlp.up_proj";
    case LinearKind::kDown: return "mlp.down_proj";
  }
  return "?";
}

LinearInput linear_input(LinearKind k) {
  switch (k) {
    case LinearKind::kQ:
    case LinearKind::kK:
    case LinearKind::kV: return LinearInput::kAttnIn;
    case LinearKind::kO: return LinearInput::kAttnOut;
    case LinearKind::kGate:
    case LinearKind::kUp: return LinearInput::kMlpIn;
    case LinearKind::kDown: return LinearInput::kMlpDown;
  }
  return LinearInput::kAttnIn;
}

const WeightMatrix& linear_weight(const DecoderLayerWeights& l, LinearKind k) {
  switch (k) {
    case LinearKind::kQ: return l.attn.q;
    case LinearKind::kK: return l.attn.k;
    case LinearKind::kV: return l.attn.v;
    case LinearKind::kO: return l.attn.o;
    case LinearKind::kGate: return l.mlp.gate;
    case LinearKind::kUp: return l.mlp.up;
    case LinearKind::kDown: return l.mlp.down;
  }
  return l.attn.q;
}

std::string linear_module_name(int layer, LinearKind k) {
  return fmt::format("model.layers.{}.{}", layer, linear_name(k));
}

std::string norm_tensor_name(int layer, bool post_attention) {
  return fmt::format("model.layers.{}.{}.weight", layer, post_attention ? "post_attention_layernorm" : "input_layernorm");
}

Result<std::vector<float>> weight_to_f32(const WeightMatrix& w) {
  if (!w.dense()) return Status::error("weight is already quantized; quantize from a dense (f32/f16/bf16) checkpoint");
  std::vector<float> out(size_t(w.rows * w.cols));
  for (size_t i = 0; i < out.size(); ++i) out[i] = load_as_f32(w.data, w.dtype, i);
  return out;
}

void store_layer(QuantizedModel& qm, int layer, LayerResult&& r) {
  for (LinearKind k : kAllLinears) qm.linears[linear_module_name(layer, k)] = std::move(r.at(k));
  if (r.norms_changed) {
    qm.vectors[norm_tensor_name(layer, false)] = std::move(r.input_norm);
    qm.vectors[norm_tensor_name(layer, true)] = std::move(r.post_attn_norm);
  }
}

Status check_quantizable_architecture(const Model& model) {
  const ModelConfig& c = model.config();
  // A GGUF model has no Hugging Face architecture name and carries only Llama-family layers.
  if (model.gguf() && !c.moe.enabled()) return Status::ok();
  for (const char* ok : {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"}) {
    if (c.architecture == ok) return Status::ok();
  }
  return Status::error(fmt::format("{}: architecture {} is not supported by SmoothQuant (W8A8) yet (Llama, Qwen2, "
                                   "Qwen3, Mistral); rtn, awq and gptq support it",
                                   model.dir(), c.architecture));
}

Status store_sites(QuantizedModel& qm, const LayerLinears& ll, std::vector<QuantizedLinear>&& per_site) {
  for (size_t i = 0; i < ll.sites.size(); ++i) {
    const LinearSite& s = ll.sites[i];
    QuantizedLinear& dst = qm.linears[s.module];
    if (s.row0 == 0) dst = QuantizedLinear{};  // the first part (sites of a module come in row order)
    if (dst.rows != s.row0) return Status::error(fmt::format("{}: fused parts out of order", s.module));
    auto st = append_rows(dst, per_site[i]);
    if (!st.is_ok()) return st.with_context(s.module);
  }
  return Status::ok();
}

Result<QuantizedModel> quantize_model_rtn(const Model& model, const QuantSpec& spec) {
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model));
  QuantizedModel qm;
  for (const LayerLinears& ll : ml.layers) {
    std::vector<QuantizedLinear> out(ll.sites.size());
    for (size_t i = 0; i < ll.sites.size(); ++i) {
      const WeightMatrix& w = *ll.sites[i].w;
      TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(w));
      TERN_ASSIGN_OR_RETURN(out[i], quantize_rtn(f.data(), w.rows, w.cols, spec));
    }
    TERN_RETURN_IF_ERROR(store_sites(qm, ll, std::move(out)));
  }
  return qm;
}

Status apply_dequantized(Model& model, const QuantizedModel& qm) {
  TransformerWeights w = unshare_blocks(model.weights());
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model, w));
  auto storage = std::make_shared<std::vector<std::vector<float>>>();
  std::set<std::string> used;
  auto f32_matrix = [&](std::vector<float> v, int64_t rows, int64_t cols) {
    storage->push_back(std::move(v));
    WeightMatrix m{};
    m.data = storage->back().data(), m.dtype = DType::F32, m.rows = rows, m.cols = cols;
    return m;
  };
  for (const LayerLinears& ll : ml.layers) {
    for (const LinearSite& s : ll.sites) {
      auto it = qm.linears.find(s.module);
      if (it == qm.linears.end()) continue;
      used.insert(s.module);
      const QuantizedLinear& q = it->second;
      WeightMatrix& m = const_cast<WeightMatrix&>(*s.w);
      if (q.cols != m.cols || q.rows < s.row0 + m.rows) {
        return Status::error(fmt::format("{}: quantized shape [{}, {}] does not hold [{}, {}] at row {}", s.module, q.rows,
                                         q.cols, m.rows, m.cols, s.row0));
      }
      m = f32_matrix(dequantize(q.rows == m.rows ? q : slice_rows(q, s.row0, m.rows)), m.rows, m.cols);
    }
    for (const InputGroup& g : ll.groups) {
      auto replace_vec = [&](const std::string& name, const std::vector<float>* v, float offset) -> Status {
        auto it = name.empty() || !v ? qm.vectors.end() : qm.vectors.find(name);
        if (it == qm.vectors.end()) return Status::ok();
        used.insert(name);
        if (it->second.size() != v->size()) return Status::error(fmt::format("{}: size differs", name));
        auto& dst = const_cast<std::vector<float>&>(*v);
        for (size_t i = 0; i < dst.size(); ++i) dst[i] = it->second[i] + offset;
        return Status::ok();
      };
      TERN_RETURN_IF_ERROR(replace_vec(g.norm_weight_name, g.norm_weight, g.norm_offset));
      TERN_RETURN_IF_ERROR(replace_vec(g.norm_bias_name, g.norm_bias, 0.f));
      for (size_t i = 0; i < g.dense_scaled.size(); ++i) {
        auto it = qm.vectors.find(g.dense_scaled_names[i]);
        if (it == qm.vectors.end()) continue;
        used.insert(it->first);
        WeightMatrix& m = const_cast<WeightMatrix&>(*g.dense_scaled[i]);
        if (int64_t(it->second.size()) != m.rows * m.cols) return Status::error(fmt::format("{}: size differs", it->first));
        m = f32_matrix(it->second, m.rows, m.cols);
      }
    }
  }
  // The token embedding (and the LM head when it shares the embedding's storage).
  if (auto it = qm.linears.find(kEmbedModule); it != qm.linears.end()) {
    used.insert(it->first);
    const QuantizedLinear& q = it->second;
    if (q.rows != w.embed.rows || q.cols != w.embed.cols) return Status::error("model.embed_tokens: quantized shape differs");
    const bool tied = w.lm_head.data == w.embed.data;
    w.embed = f32_matrix(dequantize(q), q.rows, q.cols);
    if (tied) w.lm_head = w.embed;
  }
  if (used.size() != qm.linears.size() + qm.vectors.size()) {
    return Status::error("quantized model names tensors this model does not have");
  }
  model.replace_weights(std::move(w), std::move(storage));
  return Status::ok();
}

void fake_quantize_rows_int8(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    float amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(row[c]));
    if (amax == 0) continue;
    const float scale = amax / 127.0f;
    for (int64_t c = 0; c < cols; ++c) row[c] = std::clamp(std::nearbyint(row[c] / scale), -127.0f, 127.0f) * scale;
  }
}

namespace {
class ActivationFakeQuant : public ActivationObserver {
 public:
  void on_linear_input(int, LinearInput, const float*, int64_t, int64_t) override {}
  void rewrite_linear_input(int, LinearInput, float* x, int64_t rows, int64_t cols) override {
    fake_quantize_rows_int8(x, rows, cols);
  }
  void rewrite_expert_input(int, int, LinearInput, float* x, int64_t rows, int64_t cols) override {
    fake_quantize_rows_int8(x, rows, cols);
  }
};
}  // namespace

std::unique_ptr<ActivationObserver> activation_fake_quant() { return std::make_unique<ActivationFakeQuant>(); }

}  // namespace tern
