#include "compress/model_linears.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

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

Status check_quantizable(const Model& model) {
  const std::string& arch = model.config().architecture;
  for (const char* ok : {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"}) {
    if (arch == ok) return Status::ok();
  }
  // A GGUF model has no Hugging Face architecture name and carries only Llama-family layers.
  if (model.gguf()) return Status::ok();
  return Status::error(fmt::format("quantize: architecture {} is not supported yet (Llama, Qwen2, Qwen3, Mistral)", arch));
}

Result<QuantizedModel> quantize_model_rtn(const Model& model, const QuantSpec& spec) {
  TERN_RETURN_IF_ERROR(check_quantizable(model));
  QuantizedModel qm;
  const auto& layers = model.weights().layers;
  for (size_t l = 0; l < layers.size(); ++l) {
    for (LinearKind k : kAllLinears) {
      const WeightMatrix& w = linear_weight(layers[l], k);
      TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(w));
      TERN_ASSIGN_OR_RETURN(qm.linears[linear_module_name(int(l), k)], quantize_rtn(f.data(), w.rows, w.cols, spec));
    }
  }
  return qm;
}

Status apply_dequantized(Model& model, const QuantizedModel& qm) {
  const TransformerWeights& src = model.weights();
  auto storage = std::make_shared<std::vector<std::vector<float>>>();
  TransformerWeights w = src;
  size_t used = 0;
  for (size_t l = 0; l < src.layers.size(); ++l) {
    DecoderLayerWeights& lw = w.layers[l];
    for (LinearKind k : kAllLinears) {
      auto it = qm.linears.find(linear_module_name(int(l), k));
      if (it == qm.linears.end()) continue;
      ++used;
      const QuantizedLinear& q = it->second;
      WeightMatrix& m = linear_weight(lw, k);
      if (q.rows != m.rows || q.cols != m.cols) {
        return Status::error(fmt::format("{}: quantized shape [{}, {}] != [{}, {}]", it->first, q.rows, q.cols, m.rows,
                                         m.cols));
      }
      storage->push_back(dequantize(q));
      m = WeightMatrix{};
      m.data = storage->back().data();
      m.dtype = DType::F32;
      m.rows = q.rows, m.cols = q.cols;
    }
    for (bool post : {false, true}) {
      auto it = qm.vectors.find(norm_tensor_name(int(l), post));
      if (it == qm.vectors.end()) continue;
      ++used;
      std::vector<float>& norm = post ? lw.ffn_norm.weight : lw.attn_norm.weight;
      if (it->second.size() != norm.size()) return Status::error(fmt::format("{}: size differs", it->first));
      norm = it->second;
    }
  }
  // The token embedding (and the LM head when it shares the embedding's storage).
  if (auto it = qm.linears.find(kEmbedModule); it != qm.linears.end()) {
    ++used;
    const QuantizedLinear& q = it->second;
    if (q.rows != w.embed.rows || q.cols != w.embed.cols) return Status::error("model.embed_tokens: quantized shape differs");
    const bool tied = w.lm_head.data == w.embed.data;
    storage->push_back(dequantize(q));
    w.embed = WeightMatrix{};
    w.embed.data = storage->back().data(), w.embed.dtype = DType::F32, w.embed.rows = q.rows, w.embed.cols = q.cols;
    if (tied) w.lm_head = w.embed;
  }
  if (used != qm.linears.size() + qm.vectors.size()) {
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
};
}  // namespace

std::unique_ptr<ActivationObserver> activation_fake_quant() { return std::make_unique<ActivationFakeQuant>(); }

}  // namespace tern
