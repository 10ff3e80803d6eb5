#include "compress/linear_sites.h"

#include <fmt/format.h>

#include <memory>

#include "model/archs/architectures.h"
#include "model/blocks/mla_attention.h"

namespace tern {

namespace {

// Builds one layer's list; names come from the checkpoint (fused or not, which MoE module).
class LayerBuilder {
 public:
  LayerBuilder(LayerLinears& out, ModelLinears& all, int layer) : out_(out), all_(all), layer_(layer) {}

  // Adds a linear stored as `module` (rows row0.. of it when fused; `name` is the linear itself).
  int site(const std::string& module, const std::string& name, int64_t row0, const WeightMatrix& w, InputRef in,
           bool clip = true, bool conv1d = false) {
    LinearSite s;
    s.module = module, s.name = name, s.row0 = row0, s.w = &w, s.input = in, s.clip = clip;
    out_.sites.push_back(s);
    if (all_.modules.empty() || all_.modules.back().name != module) {
      all_.modules.push_back({module, 0, w.cols, conv1d});
    }
    all_.modules.back().rows += w.rows;
    return int(out_.sites.size()) - 1;
  }
  InputGroup& group(LinearInput slot, std::vector<int> sites, int expert = -1) {
    InputGroup g;
    g.input = InputRef{layer_, slot, expert};
    g.sites = std::move(sites);
    out_.groups.push_back(std::move(g));
    return out_.groups.back();
  }
  static void fold_norm(InputGroup& g, const NormWeights& n, const std::string& weight_name,
                        const std::string& bias_name) {
    g.fold = InputGroup::Fold::kNorm;
    g.norm_weight = &n.weight;
    g.norm_bias = n.bias.empty() ? nullptr : &n.bias;
    g.norm_weight_name = weight_name;
    g.norm_bias_name = n.bias.empty() ? "" : bias_name;
    g.norm_offset = n.stored_offset;
  }
  InputRef in(LinearInput slot, int expert = -1) const { return InputRef{layer_, slot, expert}; }

 private:
  LayerLinears& out_;
  ModelLinears& all_;
  int layer_;
};

struct Names {
  bool gpt2 = false;
  std::string root;  // gpt2: "transformer." or ""
  bool fused_qkv = false, fused_gate_up = false;
  std::string ffn_norm = "post_attention_layernorm";
  std::string moe_module = "mlp";
  std::string e_gate = "gate_proj", e_up = "up_proj", e_down = "down_proj", shared = "shared_expert";
};

void add_attention(LayerBuilder& b, const ModelConfig& cfg, const Names& nm, const std::string& p,
                   const DecoderLayerWeights& l) {
  const AttentionWeights& a = l.attn;
  const std::string at = nm.gpt2 ? p + "attn." : p + "self_attn.";
  int q, k, v, o;
  if (nm.gpt2 || nm.fused_qkv) {
    const std::string m = nm.gpt2 ? at + "c_attn" : at + "qkv_proj";
    q = b.site(m, at + "q_proj", 0, a.q, b.in(LinearInput::kAttnIn), false, nm.gpt2);
    k = b.site(m, at + "k_proj", a.q.rows, a.k, b.in(LinearInput::kAttnIn), false, nm.gpt2);
    v = b.site(m, at + "v_proj", a.q.rows + a.k.rows, a.v, b.in(LinearInput::kAttnIn), true, nm.gpt2);
  } else {
    q = b.site(at + "q_proj", at + "q_proj", 0, a.q, b.in(LinearInput::kAttnIn), false);
    k = b.site(at + "k_proj", at + "k_proj", 0, a.k, b.in(LinearInput::kAttnIn), false);
    v = b.site(at + "v_proj", at + "v_proj", 0, a.v, b.in(LinearInput::kAttnIn));
  }
  const std::string o_name = nm.gpt2 ? at + "c_proj" : at + "o_proj";
  o = b.site(o_name, o_name, 0, a.o, b.in(LinearInput::kAttnOut), true, nm.gpt2);
  InputGroup& gi = b.group(LinearInput::kAttnIn, {q, k, v});
  LayerBuilder::fold_norm(gi, l.attn_norm, p + (nm.gpt2 ? "ln_1.weight" : "input_layernorm.weight"), p + "ln_1.bias");
  InputGroup& go = b.group(LinearInput::kAttnOut, {o});
  if (!a.v_bias.empty()) {
    go.why_not = "v_proj has a bias";
  } else {
    go.fold = InputGroup::Fold::kPrevRows;
    go.prev_site = v;
    go.gqa_rep = cfg.n_heads / cfg.n_kv_heads;
    go.head_dim = cfg.head_dim;
  }
}

void add_mla(LayerBuilder& b, const std::string& p, const DecoderLayerWeights& l) {
  const MlaWeights& m = *l.mla;
  const std::string at = p + "self_attn.";
  std::vector<int> in_sites;
  int qb = -1;
  if (m.q_a.rows > 0) {
    in_sites.push_back(b.site(at + "q_a_proj", at + "q_a_proj", 0, m.q_a, b.in(LinearInput::kAttnIn), false));
    qb = b.site(at + "q_b_proj", at + "q_b_proj", 0, m.q_b, b.in(LinearInput::kQLatent), false);
  } else {
    in_sites.push_back(b.site(at + "q_proj", at + "q_proj", 0, m.q, b.in(LinearInput::kAttnIn), false));
  }
  in_sites.push_back(
      b.site(at + "kv_a_proj_with_mqa", at + "kv_a_proj_with_mqa", 0, m.kv_a, b.in(LinearInput::kAttnIn), false));
  const int o = b.site(at + "o_proj", at + "o_proj", 0, m.o, b.in(LinearInput::kAttnOut));
  LayerBuilder::fold_norm(b.group(LinearInput::kAttnIn, in_sites), l.attn_norm, p + "input_layernorm.weight", "");
  if (qb >= 0) {
    InputGroup& g = b.group(LinearInput::kQLatent, {qb});
    g.fold = InputGroup::Fold::kNorm;
    g.norm_weight = &m.q_a_norm;
    g.norm_weight_name = at + "q_a_layernorm.weight";
  }
  b.group(LinearInput::kAttnOut, {o}).why_not = "MLA o_proj reads the values of the absorbed kv_b_proj (kept dense)";
}

void add_mlp(LayerBuilder& b, const Names& nm, const std::string& p, const DecoderLayerWeights& l) {
  const FeedForwardWeights& m = l.mlp;
  const std::string mp = p + "mlp.";
  std::vector<int> in_sites;
  int up;
  if (nm.gpt2) {
    up = b.site(mp + "c_fc", mp + "c_fc", 0, m.up, b.in(LinearInput::kMlpIn), true, true);
    in_sites = {up};
  } else if (nm.fused_gate_up) {
    in_sites.push_back(b.site(mp + "gate_up_proj", mp + "gate_proj", 0, m.gate, b.in(LinearInput::kMlpIn)));
    up = b.site(mp + "gate_up_proj", mp + "up_proj", m.gate.rows, m.up, b.in(LinearInput::kMlpIn));
    in_sites.push_back(up);
  } else {
    if (m.gated) in_sites.push_back(b.site(mp + "gate_proj", mp + "gate_proj", 0, m.gate, b.in(LinearInput::kMlpIn)));
    up = b.site(mp + "up_proj", mp + "up_proj", 0, m.up, b.in(LinearInput::kMlpIn));
    in_sites.push_back(up);
  }
  const std::string down_name = nm.gpt2 ? mp + "c_proj" : mp + "down_proj";
  const int down = b.site(down_name, down_name, 0, m.down, b.in(LinearInput::kMlpDown), true, nm.gpt2);
  LayerBuilder::fold_norm(b.group(LinearInput::kMlpIn, in_sites), l.ffn_norm,
                          p + (nm.gpt2 ? "ln_2.weight" : nm.ffn_norm + ".weight"), p + "ln_2.bias");
  InputGroup& g = b.group(LinearInput::kMlpDown, {down});
  if (!m.gated) {
    g.why_not = "the plain MLP's activation (GELU) does not commute with a scale";
  } else if (!m.up_bias.empty()) {
    g.why_not = "up_proj has a bias";
  } else {
    g.fold = InputGroup::Fold::kPrevRows, g.prev_site = up;
  }
}

void add_moe(LayerBuilder& b, const ModelConfig& cfg, const Names& nm, const std::string& p,
             const DecoderLayerWeights& l) {
  const MoeWeights& m = *l.moe;
  const std::string mp = p + nm.moe_module + ".";
  const int E = int(m.experts.size());
  std::vector<int> in_sites;
  std::vector<std::pair<int, int>> up_down;  // per expert (E: shared): up site, down site
  auto expert = [&](const ExpertMlp& e, const std::string& ep, int idx) {
    const InputRef in = idx < E ? b.in(LinearInput::kMlpIn, idx) : b.in(LinearInput::kMlpIn);
    in_sites.push_back(b.site(ep + nm.e_gate, ep + nm.e_gate, 0, e.gate, in));
    const int up = b.site(ep + nm.e_up, ep + nm.e_up, 0, e.up, in);
    in_sites.push_back(up);
    up_down.emplace_back(up, b.site(ep + nm.e_down, ep + nm.e_down, 0, e.down, b.in(LinearInput::kMlpDown, idx)));
  };
  for (int e = 0; e < E; ++e) expert(m.experts[size_t(e)], fmt::format("{}experts.{}.", mp, e), e);
  if (m.shared.present()) expert(m.shared, mp + nm.shared + ".", E);
  InputGroup& g = b.group(LinearInput::kMlpIn, in_sites);
  LayerBuilder::fold_norm(g, l.ffn_norm, p + nm.ffn_norm + ".weight", "");
  g.moe = &m;
  g.dense_scaled.push_back(&m.router);
  g.dense_scaled_names.push_back(mp + "gate.weight");
  if (m.shared_gate.rows > 0) {
    g.dense_scaled.push_back(&m.shared_gate);
    g.dense_scaled_names.push_back(mp + "shared_expert_gate.weight");
  }
  for (size_t i = 0; i < up_down.size(); ++i) {
    InputGroup& d = b.group(LinearInput::kMlpDown, {up_down[i].second}, int(i));
    d.fold = InputGroup::Fold::kPrevRows, d.prev_site = up_down[i].first;
  }
  (void)cfg;
}

}  // namespace

int64_t ModelLinears::n_linears() const {
  int64_t n = 0;
  for (const auto& l : layers) n += int64_t(l.sites.size());
  return n;
}

Result<ModelLinears> model_linears(const Model& model, const TransformerWeights& w) {
  const ModelConfig& cfg = model.config();
  auto has = [&](const std::string& name) { return model.store().find(name) != nullptr; };
  // A linear module, dense or quantized (AutoAWQ / AutoGPTQ qweight, compressed-tensors weight_packed).
  auto has_module = [&](const std::string& m) { return has(m + ".weight") || has(m + ".qweight") || has(m + ".weight_packed"); };
  Names nm;
  if (cfg.architecture == "GPT2LMHeadModel") {
    nm.gpt2 = true;
    nm.root = has("transformer.wte.weight") ? "transformer." : "";
  } else if (model.gguf()) {
    // A GGUF model carries Llama-family names only (formats/gguf); its MoE / MLA layouts are not mapped.
    if (cfg.moe.enabled() || cfg.mla.enabled()) return Status::error("quantize: a GGUF mixture-of-experts model is not supported");
  } else if (!find_architecture(cfg.architecture)) {
    return Status::error(fmt::format("{}: architecture {} is not supported by quantize", model.dir(), cfg.architecture));
  }
  ModelLinears out;
  out.layers.resize(w.layers.size());
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const DecoderLayerWeights& l = w.layers[i];
    const std::string p = nm.gpt2 ? fmt::format("{}h.{}.", nm.root, i) : fmt::format("model.layers.{}.", i);
    if (!nm.gpt2 && !model.gguf()) {
      nm.fused_qkv = has_module(p + "self_attn.qkv_proj");
      nm.fused_gate_up = has_module(p + "mlp.gate_up_proj");
      nm.ffn_norm = has(p + "pre_feedforward_layernorm.weight") ? "pre_feedforward_layernorm" : "post_attention_layernorm";
      const bool mixtral = has(p + "block_sparse_moe.gate.weight");
      nm.moe_module = mixtral ? "block_sparse_moe" : "mlp";
      if (mixtral) nm.e_gate = "w1", nm.e_up = "w3", nm.e_down = "w2";
      nm.shared = has_module(p + "mlp.shared_experts.gate_proj") ? "shared_experts" : "shared_expert";
    }
    LayerBuilder b(out.layers[i], out, int(i));
    if (l.mla) add_mla(b, p, l);
    else add_attention(b, cfg, nm, p, l);
    if (l.moe) add_moe(b, cfg, nm, p, l);
    else add_mlp(b, nm, p, l);
  }
  return out;
}

TransformerWeights unshare_blocks(const TransformerWeights& w) {
  TransformerWeights c = w;
  for (DecoderLayerWeights& l : c.layers) {
    if (l.moe) l.moe = std::make_shared<const MoeWeights>(*l.moe);
    if (l.mla) l.mla = std::make_shared<const MlaWeights>(*l.mla);
  }
  return c;
}

Status append_rows(QuantizedLinear& into, const QuantizedLinear& part) {
  if (into.rows == 0) {
    into = part;
    return Status::ok();
  }
  if (into.cols != part.cols || into.bits != part.bits || into.group != part.group ||
      into.symmetric != part.symmetric || into.fp8 != part.fp8 || into.g_idx != part.g_idx || !part.smooth.empty() ||
      !into.smooth.empty()) {
    return Status::error("fused module: its parts were quantized with different schemes");
  }
  into.rows += part.rows;
  into.q.insert(into.q.end(), part.q.begin(), part.q.end());
  into.scales.insert(into.scales.end(), part.scales.begin(), part.scales.end());
  into.zeros.insert(into.zeros.end(), part.zeros.begin(), part.zeros.end());
  return Status::ok();
}

QuantizedLinear slice_rows(const QuantizedLinear& ql, int64_t r0, int64_t n) {
  QuantizedLinear s = ql;
  const int64_t ng = ql.fp8 ? 1 : ql.n_groups();
  s.rows = n;
  s.q.assign(ql.q.begin() + r0 * ql.cols, ql.q.begin() + (r0 + n) * ql.cols);
  s.scales.assign(ql.scales.begin() + r0 * ng, ql.scales.begin() + (r0 + n) * ng);
  if (!ql.zeros.empty()) s.zeros.assign(ql.zeros.begin() + r0 * ng, ql.zeros.begin() + (r0 + n) * ng);
  return s;
}

}  // namespace tern
