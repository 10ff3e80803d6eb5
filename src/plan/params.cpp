#include "plan/params.h"

#include <cmath>

namespace tern::plan {

namespace {

// Matrices of one layer's attention: [rows, cols] pairs summed as params, with the largest cols
// kept for the per-row scale term (scales add row_scale_bits / cols per weight).
struct Matrices {
  double params = 0;
  double bits = 0;  // Σ params × bits at the precision
  void add(const WeightPrecision& p, int64_t rows, int64_t cols, int64_t count = 1) {
    const double n = double(rows) * double(cols) * double(count);
    params += n;
    bits += n * p.matrix_bits(cols);
  }
};

// One MLP of `inter` features: gate/up [inter, hidden] and down [hidden, inter].
void add_mlp(Matrices& m, const WeightPrecision& p, const ModelShape& s, int64_t inter, int64_t count = 1) {
  m.add(p, inter, s.hidden, count * (s.gated_mlp ? 2 : 1));
  m.add(p, s.hidden, inter, count);
}
int64_t mlp_biases(const ModelShape& s, int64_t inter) {
  return s.mlp_bias ? (s.gated_mlp ? 2 : 1) * inter + s.hidden : 0;
}

// One layer's attention matrices (MLA: q_a/q_b or q, kv_a_with_mqa, kv_b, o) and its vectors.
void add_attention(Matrices& m, int64_t& vectors, const WeightPrecision& p, const ModelShape& s) {
  const int64_t h = s.hidden;
  if (s.is_mla()) {
    const int64_t qk = s.qk_nope_head_dim + s.qk_rope_head_dim;
    if (s.q_lora_rank > 0) {
      m.add(p, s.q_lora_rank, h);
      m.add(p, s.heads * qk, s.q_lora_rank);
      vectors += s.q_lora_rank;  // q_a_layernorm
    } else {
      m.add(p, s.heads * qk, h);
    }
    m.add(p, s.kv_lora_rank + s.qk_rope_head_dim, h);  // kv_a_proj_with_mqa
    m.add(p, s.heads * int64_t(s.qk_nope_head_dim + s.v_head_dim), s.kv_lora_rank);  // kv_b_proj
    m.add(p, h, s.heads * int64_t(s.v_head_dim));  // o_proj
    vectors += s.kv_lora_rank;  // kv_a_layernorm
    return;
  }
  const int64_t q = int64_t(s.heads) * s.head_dim, kv = int64_t(s.kv_heads) * s.head_dim;
  m.add(p, q, h);
  m.add(p, kv, h, 2);
  m.add(p, h, q);
  if (s.attention_bias) vectors += q + 2 * kv;
  if (s.o_bias) vectors += h;
  if (s.qk_norm) vectors += 2 * s.head_dim;
}

struct Inventory {
  Matrices attention, dense_mlp, experts, shared, routers;
  int64_t attention_vectors = 0, mlp_vectors = 0, router_vectors = 0, norms = 0;
  int moe_layers = 0;
  Matrices tp_replicated;  // of `attention`: the matrices tensor parallelism does not cut (MLA's q_a, kv_a)
};

// One layer's weights added to `inv`.
void add_layer(Inventory& inv, const ModelShape& s, const WeightPrecision& p, int l) {
  const int64_t norm_params = s.layer_norm_bias ? 2 * s.hidden : s.hidden;
  add_attention(inv.attention, inv.attention_vectors, p, s);
  inv.norms += s.norms_per_layer * norm_params;
  if (s.is_mla()) {  // q_a and kv_a_proj_with_mqa: every tensor-parallel rank holds them whole
    if (s.q_lora_rank > 0) inv.tp_replicated.add(p, s.q_lora_rank, s.hidden);
    inv.tp_replicated.add(p, s.kv_lora_rank + s.qk_rope_head_dim, s.hidden);
  }
  if (!s.is_moe_layer(l)) {
    add_mlp(inv.dense_mlp, p, s, s.intermediate);
    inv.mlp_vectors += mlp_biases(s, s.intermediate);
    return;
  }
  ++inv.moe_layers;
  add_mlp(inv.experts, p, s, s.expert_intermediate, s.n_experts);
  inv.routers.add(p, s.n_experts, s.hidden);
  if (s.router_bias) inv.router_vectors += s.n_experts;
  if (s.n_shared_experts > 0) add_mlp(inv.shared, p, s, s.expert_intermediate * s.n_shared_experts);
  if (s.shared_intermediate > 0) {
    add_mlp(inv.shared, p, s, s.shared_intermediate);
    inv.shared.add(p, 1, s.hidden);  // shared_expert_gate
  }
}

Inventory inventory(const ModelShape& s, const WeightPrecision& p) {
  Inventory inv;
  for (int l = 0; l < s.layers; ++l) add_layer(inv, s, p, l);
  inv.norms += s.layer_norm_bias ? 2 * s.hidden : s.hidden;  // final norm
  return inv;
}

double vector_bytes(const Inventory& inv, const WeightPrecision& p) {
  return double(inv.attention_vectors + inv.mlp_vectors + inv.router_vectors + inv.norms) * p.vector_bits / 8;
}

// The LM head as a decode step streams it (see weight_bytes).
double lm_head_bytes(const ModelShape& s, const WeightPrecision& p) {
  const bool int8_head = !p.quantize_embeddings && p.bits < 16;
  if (int8_head) return double(s.vocab) * (double(s.hidden) + 4.0);
  return double(s.vocab) * double(s.hidden) * p.embedding_bits(s.hidden) / 8;
}

}  // namespace

ParamCounts count_params(const ModelShape& s) {
  const Inventory inv = inventory(s, WeightPrecision{});
  ParamCounts c;
  c.embedding = s.vocab * s.hidden + s.learned_positions * s.hidden;
  c.lm_head = s.tied_embeddings ? 0 : s.vocab * s.hidden;
  c.attention = int64_t(inv.attention.params) + inv.attention_vectors;
  c.dense_mlp = int64_t(inv.dense_mlp.params) + inv.mlp_vectors;
  c.routed_experts = int64_t(inv.experts.params);
  c.shared_experts = int64_t(inv.shared.params);
  c.routers = int64_t(inv.routers.params) + inv.router_vectors;
  c.norms = inv.norms;
  c.active = c.total();
  if (s.is_moe()) {
    const int64_t unused = c.routed_experts / s.n_experts * (s.n_experts - s.experts_per_token);
    c.active -= unused;
  }
  return c;
}

WeightBytes weight_bytes(const ModelShape& s, const WeightPrecision& p) {
  const Inventory inv = inventory(s, p);
  WeightBytes b;
  const double vectors = vector_bytes(inv, p);
  const double table = double(s.vocab) * double(s.hidden) * p.embedding_bits(s.hidden) / 8;
  b.embedding = table + double(s.learned_positions * s.hidden) * p.embedding_bits(s.hidden) / 8;
  // tern loads a checkpoint with quantized linears but a 16-bit table (AWQ / GPTQ / compressed-tensors,
  // fp8 / int8 / int4 here) with an int8 copy of its LM head (--lm-head auto: one f32 scale per row),
  // and decode streams that copy. The stored table stays for the embedding gather; an untied stored
  // head is only read once at load (clean, reclaimable file pages), so it is not counted.
  const bool int8_head = !p.quantize_embeddings && p.bits < 16;
  const double lm_head = lm_head_bytes(s, p);  // read once per step
  b.moe_layers = inv.moe_layers;
  b.per_expert = inv.moe_layers > 0 ? inv.experts.bits / 8 / double(inv.moe_layers) / double(s.n_experts) : 0;
  b.dense_stream = (inv.attention.bits + inv.dense_mlp.bits + inv.shared.bits + inv.routers.bits) / 8 + vectors +
                   lm_head;
  // What every tensor-parallel rank holds and reads whole (docs/parallel.md): norms, biases and
  // router vectors, the routers [E, hidden], MLA's q_a and kv_a_proj_with_mqa.
  b.tp_replicated = (inv.routers.bits + inv.tp_replicated.bits) / 8 + vectors;
  // A tied 16-bit head is the embedding table itself.
  b.total = b.dense_stream + inv.experts.bits / 8 + b.embedding - (s.tied_embeddings && !int8_head ? lm_head : 0);
  return b;
}

PpStageBytes pp_stage_bytes(const ModelShape& s, const WeightPrecision& p) {
  PpStageBytes b;
  for (int l = 0; l < s.layers; ++l) {
    Inventory one;
    add_layer(one, s, p, l);
    const double bits = one.attention.bits + one.dense_mlp.bits + one.experts.bits + one.shared.bits + one.routers.bits;
    b.layers.push_back(bits / 8 + vector_bytes(one, p));
  }
  b.last = double(s.layer_norm_bias ? 2 * s.hidden : s.hidden) * p.vector_bits / 8 + lm_head_bytes(s, p);
  return b;
}

double WeightBytes::streamed(int64_t batch, int n_experts, int experts_per_token) const {
  if (moe_layers == 0 || n_experts == 0) return dense_stream;
  const double miss = 1.0 - double(experts_per_token) / double(n_experts);
  const double visited = double(n_experts) * (1.0 - std::pow(miss, double(std::max<int64_t>(batch, 1))));
  return dense_stream + per_expert * visited * moe_layers;
}

TokenFlops token_flops(const ModelShape& s) {
  const ParamCounts c = count_params(s);
  TokenFlops f;
  f.lm_head = 2.0 * double(s.vocab) * double(s.hidden);
  // Every active matrix weight is one multiply-add; the embedding is a gather, vectors are noise.
  f.matrices = 2.0 * double(c.active - c.embedding - c.lm_head - c.norms);
  const double qk = s.is_mla() ? s.qk_nope_head_dim + s.qk_rope_head_dim : s.head_dim;
  const double v = s.is_mla() ? s.v_head_dim : s.head_dim;
  f.attention_per_context_token = 2.0 * s.layers * s.heads * (qk + v);
  return f;
}

}  // namespace tern::plan
