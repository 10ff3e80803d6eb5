#include "model/gguf_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>
#include <set>

namespace tern {

namespace {

struct ArchInfo {
  const char* gguf;
  const char* hf;
  bool permuted_qk;  // llama.cpp's converter interleaved the rope halves of q/k rows
  bool qkv_bias;
  bool qk_norm;
};
constexpr ArchInfo kArchs[] = {
    {"llama", "LlamaForCausalLM", true, false, false},
    {"qwen2", "Qwen2ForCausalLM", false, true, false},
    {"qwen3", "Qwen3ForCausalLM", false, false, true},
};

const ArchInfo* find_arch(const std::string& name) {
  for (const auto& a : kArchs) {
    if (name == a.gguf) return &a;
  }
  return nullptr;
}

Result<int64_t> optional_int(const GgufFile& g, const std::string& key, int64_t lo, int64_t hi, int64_t dflt) {
  if (!g.find(key)) return dflt;
  return g.get_int(key, lo, hi);
}

// Binds tensors by GGUF name, remembering which were used so leftovers are reported.
class Binder {
 public:
  Binder(const GgufFile& g, GgufBinding& out) : g_(g), out_(out) {}

  bool has(const std::string& name) const { return g_.tensor(name) != nullptr; }

  Result<const GgufTensor*> take(const std::string& name, const std::vector<int64_t>& shape) {
    const GgufTensor* t = g_.tensor(name);
    if (!t) return g_.error(fmt::format("missing tensor '{}'", name));
    if (t->shape() != shape) {
      return g_.error(fmt::format("tensor '{}': shape [{}] but the metadata implies [{}]", name,
                                  fmt::join(t->shape(), ", "), fmt::join(shape, ", ")));
    }
    used_.insert(name);
    return t;
  }

  // heads > 0: undo the converter's rope interleave of each head's rows (a row copy).
  Result<WeightMatrix> matrix(const std::string& name, int64_t rows, int64_t cols, int heads = 0) {
    TERN_ASSIGN_OR_RETURN(const GgufTensor* t, take(name, {rows, cols}));
    WeightMatrix w;
    w.rows = rows, w.cols = cols, w.data = t->data;
    switch (t->type) {
      case GgufType::F32: w.dtype = DType::F32; break;
      case GgufType::F16: w.dtype = DType::F16; break;
      case GgufType::BF16: w.dtype = DType::BF16; break;
      default:
        w.format = WeightFormat::Gguf;
        w.gguf_type = int(t->type);
        w.quant_bytes = t->bytes;
    }
    if (heads > 0) {
      if (rows % heads != 0 || (rows / heads) % 2 != 0) {
        return g_.error(fmt::format("tensor '{}': {} rows do not split into {} heads of even size", name, rows, heads));
      }
      const size_t rb = t->bytes / size_t(rows);
      auto buf = std::make_unique<uint8_t[]>(t->bytes);
      const auto* src = static_cast<const uint8_t*>(t->data);
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(buf.get() + size_t(gguf_unpermute_row(r, rows / heads)) * rb, src + size_t(r) * rb, rb);
      }
      w.data = buf.get();
      out_.owned.push_back(std::move(buf));
    }
    return w;
  }

  Result<std::vector<float>> vector_f32(const std::string& name, int64_t n) {
    TERN_ASSIGN_OR_RETURN(const GgufTensor* t, take(name, {n}));
    std::vector<float> v(static_cast<size_t>(n));
    gguf_dequantize_row(t->type, t->data, v.data(), n);
    return v;
  }

  Status check_all_used() const {
    for (const auto& t : g_.tensors()) {
      if (!used_.count(t.name)) return g_.error(fmt::format("tensor '{}' is not used by this architecture", t.name));
    }
    return Status::ok();
  }

 private:
  const GgufFile& g_;
  GgufBinding& out_;
  std::set<std::string> used_;
};

}  // namespace

Result<ModelConfig> gguf_model_config(const GgufFile& g) {
  TERN_ASSIGN_OR_RETURN(std::string arch_name, g.get_string("general.architecture"));
  const ArchInfo* arch = find_arch(arch_name);
  if (!arch) return g.error(fmt::format("general.architecture '{}' is not supported (llama, qwen2, qwen3)", arch_name));
  const std::string p = arch_name + ".";
  ModelConfig c;
  c.architecture = arch->hf;
  c.model_type = arch->gguf;
  TERN_ASSIGN_OR_RETURN(c.hidden_size, g.get_int(p + "embedding_length", 1, int64_t(1) << 20));
  TERN_ASSIGN_OR_RETURN(int64_t layers, g.get_int(p + "block_count", 1, 10000));
  TERN_ASSIGN_OR_RETURN(c.intermediate_size, g.get_int(p + "feed_forward_length", 1, int64_t(1) << 22));
  TERN_ASSIGN_OR_RETURN(int64_t heads, g.get_int(p + "attention.head_count", 1, 1 << 16));
  TERN_ASSIGN_OR_RETURN(int64_t kv_heads, optional_int(g, p + "attention.head_count_kv", 1, 1 << 16, heads));
  c.n_layers = int(layers), c.n_heads = int(heads), c.n_kv_heads = int(kv_heads);
  if (heads % kv_heads != 0) return g.error(fmt::format("head_count_kv {} does not divide head_count {}", kv_heads, heads));
  if (c.hidden_size % heads != 0 && !g.find(p + "attention.key_length")) {
    return g.error("embedding_length is not a multiple of head_count and attention.key_length is absent");
  }
  TERN_ASSIGN_OR_RETURN(int64_t hd, optional_int(g, p + "attention.key_length", 2, 1 << 14, c.hidden_size / heads));
  TERN_ASSIGN_OR_RETURN(int64_t vd, optional_int(g, p + "attention.value_length", 2, 1 << 14, hd));
  if (vd != hd || hd % 2 != 0) return g.error(fmt::format("key_length {} / value_length {} not supported", hd, vd));
  c.head_dim = int(hd);
  TERN_ASSIGN_OR_RETURN(c.max_position_embeddings, optional_int(g, p + "context_length", 1, int64_t(1) << 30, 4096));
  if (g.find(p + "attention.layer_norm_rms_epsilon")) {
    TERN_ASSIGN_OR_RETURN(c.rms_norm_eps, g.get_float(p + "attention.layer_norm_rms_epsilon"));
    if (!(c.rms_norm_eps > 0 && c.rms_norm_eps < 1)) return g.error("layer_norm_rms_epsilon must be in (0, 1)");
  }
  c.rope.theta = 10000.0;
  if (g.find(p + "rope.freq_base")) {
    TERN_ASSIGN_OR_RETURN(c.rope.theta, g.get_float(p + "rope.freq_base"));
  }
  if (!(c.rope.theta > 0)) return g.error("rope.freq_base must be positive");
  TERN_ASSIGN_OR_RETURN(int64_t rot, optional_int(g, p + "rope.dimension_count", 2, hd, hd));
  if (rot % 2 != 0) return g.error("rope.dimension_count must be even");
  c.rope.rotary_dim = int(rot);
  if (g.find(p + "rope.scaling.type")) {
    TERN_ASSIGN_OR_RETURN(std::string type, g.get_string(p + "rope.scaling.type"));
    if (type == "linear") {
      TERN_ASSIGN_OR_RETURN(c.rope.linear_factor, g.get_float(p + "rope.scaling.factor"));
      if (!(c.rope.linear_factor > 0)) return g.error("rope.scaling.factor must be positive");
      c.rope_type = "linear";
    } else if (type != "none") {
      return g.error(fmt::format("rope.scaling.type '{}' is not supported (none, linear)", type));
    }
  }
  // Vocabulary: explicit key, else the token list, else the embedding's rows.
  int64_t vocab = 0;
  if (g.find(p + "vocab_size")) {
    TERN_ASSIGN_OR_RETURN(vocab, g.get_int(p + "vocab_size", 1, int64_t(1) << 24));
  } else if (const GgufValue* toks = g.find("tokenizer.ggml.tokens"); toks && toks->array_len > 0) {
    vocab = int64_t(toks->array_len);
  } else if (const GgufTensor* e = g.tensor("token_embd.weight"); e && e->ne.size() == 2) {
    vocab = e->ne[1];
  }
  if (vocab <= 0) return g.error("cannot tell the vocabulary size (no vocab_size, tokens or token_embd.weight)");
  c.vocab_size = vocab;
  c.tie_word_embeddings = g.tensor("output.weight") == nullptr;
  c.attention_bias = arch->qkv_bias;
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
    if (!g.find(key)) continue;
    TERN_ASSIGN_OR_RETURN(int64_t id, g.get_int(key, 0, vocab - 1));
    (std::strstr(key, "bos") ? c.bos_token_ids : c.eos_token_ids).push_back(int32_t(id));
  }
  return c;
}

namespace {

Result<NormWeights> rms(Binder& b, const std::string& name, int64_t n, double eps) {
  NormWeights w;
  w.eps = float(eps);
  TERN_ASSIGN_OR_RETURN(w.weight, b.vector_f32(name, n));
  return w;
}

}  // namespace

Result<GgufBinding> bind_gguf_weights(const GgufFile& g, const ModelConfig& cfg) {
  const ArchInfo* arch = find_arch(cfg.model_type);
  if (!arch) return g.error("not a GGUF llama-family config");
  GgufBinding out;
  Binder b(g, out);
  TransformerWeights& w = out.weights;
  const int64_t hidden = cfg.hidden_size, q_dim = int64_t(cfg.n_heads) * cfg.head_dim,
                kv_dim = int64_t(cfg.n_kv_heads) * cfg.head_dim, inter = cfg.intermediate_size;
  TERN_ASSIGN_OR_RETURN(w.embed, b.matrix("token_embd.weight", cfg.vocab_size, hidden));
  w.layers.resize(size_t(cfg.n_layers));
  for (int i = 0; i < cfg.n_layers; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    DecoderLayerWeights& l = w.layers[size_t(i)];
    TERN_ASSIGN_OR_RETURN(l.attn_norm, rms(b, p + "attn_norm.weight", hidden, cfg.rms_norm_eps));
    TERN_ASSIGN_OR_RETURN(l.ffn_norm, rms(b, p + "ffn_norm.weight", hidden, cfg.rms_norm_eps));
    AttentionWeights& a = l.attn;
    TERN_ASSIGN_OR_RETURN(a.q, b.matrix(p + "attn_q.weight", q_dim, hidden, arch->permuted_qk ? cfg.n_heads : 0));
    TERN_ASSIGN_OR_RETURN(a.k, b.matrix(p + "attn_k.weight", kv_dim, hidden, arch->permuted_qk ? cfg.n_kv_heads : 0));
    TERN_ASSIGN_OR_RETURN(a.v, b.matrix(p + "attn_v.weight", kv_dim, hidden));
    TERN_ASSIGN_OR_RETURN(a.o, b.matrix(p + "attn_output.weight", hidden, q_dim));
    if (arch->qkv_bias || b.has(p + "attn_q.bias")) {
      TERN_ASSIGN_OR_RETURN(a.q_bias, b.vector_f32(p + "attn_q.bias", q_dim));
      TERN_ASSIGN_OR_RETURN(a.k_bias, b.vector_f32(p + "attn_k.bias", kv_dim));
      TERN_ASSIGN_OR_RETURN(a.v_bias, b.vector_f32(p + "attn_v.bias", kv_dim));
      if (arch->permuted_qk) return g.error("attn_q.bias on a llama GGUF is not supported");
    }
    if (arch->qk_norm) {
      TERN_ASSIGN_OR_RETURN(a.q_norm, rms(b, p + "attn_q_norm.weight", cfg.head_dim, cfg.rms_norm_eps));
      TERN_ASSIGN_OR_RETURN(a.k_norm, rms(b, p + "attn_k_norm.weight", cfg.head_dim, cfg.rms_norm_eps));
    }
    TERN_ASSIGN_OR_RETURN(l.mlp.gate, b.matrix(p + "ffn_gate.weight", inter, hidden));
    TERN_ASSIGN_OR_RETURN(l.mlp.up, b.matrix(p + "ffn_up.weight", inter, hidden));
    TERN_ASSIGN_OR_RETURN(l.mlp.down, b.matrix(p + "ffn_down.weight", hidden, inter));
  }
  TERN_ASSIGN_OR_RETURN(w.final_norm, rms(b, "output_norm.weight", hidden, cfg.rms_norm_eps));
  if (cfg.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    TERN_ASSIGN_OR_RETURN(w.lm_head, b.matrix("output.weight", cfg.vocab_size, hidden));
  }
  if (b.has("rope_freqs.weight")) {
    TERN_ASSIGN_OR_RETURN(out.rope_divisors, b.vector_f32("rope_freqs.weight", cfg.rope.rotary_dim / 2));
    for (float d : out.rope_divisors) {
      if (!(d > 0)) return g.error("rope_freqs.weight: divisors must be positive");
    }
  }
  TERN_RETURN_IF_ERROR(b.check_all_used());
  return out;
}

}  // namespace tern
