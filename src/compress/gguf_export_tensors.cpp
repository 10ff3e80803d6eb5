#include "compress/gguf_export_tensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "formats/gguf/gguf_mla.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <thread>

namespace tern {

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One GGUF tensor and the Hugging Face tensors it is made of (one, or a layer's experts in order).
struct Group {
  GgufNameMatch match;
  std::vector<const TensorInfo*> parts;
  size_t table_pos = 0;
};

// Row r of a GGUF matrix [rows, cols] as f32 (cols values).
using RowReader = std::function<void(int64_t r, float* out)>;

// Rows of the Hugging Face matrix t [rows, cols] (conv1d: t is [cols, rows], read transposed).
RowReader hf_rows(const TensorInfo* t, int64_t rows, int64_t cols, bool conv1d) {
  return [t, rows, cols, conv1d](int64_t r, float* out) {
    for (int64_t c = 0; c < cols; ++c) {
      out[c] = load_as_f32(t->data, t->dtype, size_t(conv1d ? c * rows + r : r * cols + c));
    }
  };
}

// rows of every part quantized to `type` in parallel; heads > 0: output row r takes Hugging Face
// row gguf_unpermute_row(r) (the converter's rope interleave). shape: the GGUF tensor's shape.
GgufTensorToWrite matrix_tensor(const std::string& name, std::vector<RowReader> parts, int64_t rows, int64_t cols,
                                GgufType type, int heads, std::vector<int64_t> shape = {}) {
  if (shape.empty()) shape = {rows, cols};
  if (parts.size() > 1 && shape.size() == 2) shape.insert(shape.begin(), int64_t(parts.size()));
  return {name, type, shape, [parts = std::move(parts), type, heads, rows, cols](uint8_t* dst) {
            const size_t rb = gguf_row_bytes(type, cols);
            const int nt = int(std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
            const int64_t total = rows * int64_t(parts.size());
            auto work = [&](int id) {
              std::vector<float> row(static_cast<size_t>(cols));
              for (int64_t i = id; i < total; i += nt) {
                const int64_t e = i / rows, r = i % rows;
                parts[size_t(e)](heads > 0 ? gguf_unpermute_row(r, rows / heads) : r, row.data());
                gguf_quantize_row(type, row.data(), dst + size_t(i) * rb, cols);
              }
            };
            std::vector<std::thread> pool;
            for (int i = 1; i < nt; ++i) pool.emplace_back(work, i);
            work(0);
            for (auto& th : pool) th.join();
          }};
}

// A 1-D tensor (norms, biases) in F32; plus_one: gemma's 1 + w; heads > 0: permuted like q/k rows.
GgufTensorToWrite vector_tensor(const std::string& name, const TensorInfo* t, bool plus_one, int heads) {
  const int64_t n = t->numel();
  return {name, GgufType::F32, {n}, [t, n, plus_one, heads](uint8_t* dst) {
            auto* out = reinterpret_cast<float*>(dst);
            for (int64_t i = 0; i < n; ++i) {
              const int64_t src = heads > 0 ? gguf_unpermute_row(i, n / heads) : i;
              out[i] = load_as_f32(t->data, t->dtype, size_t(src)) + (plus_one ? 1.f : 0.f);
            }
          }};
}

// Where a tensor goes in the file: embeddings first, then layer by layer, then the output.
int64_t file_order(const Group& g) {
  const std::string& n = g.match.name;
  if (g.match.layer >= 0) return (int64_t(g.match.layer) + 1) * 1000 + int64_t(g.table_pos);
  if (n == "token_embd.weight" || n == "position_embd.weight") return int64_t(g.table_pos);
  return (int64_t(1) << 40) + int64_t(g.table_pos);
}

// DeepSeek kv_b_proj [H·(nope + v), kv_lora] as llama.cpp's MLA graph reads it: attn_k_b
// [H, kv_lora, nope] and attn_v_b [H, v, kv_lora] (gguf_mla.h).
Status split_kv_b(const ModelConfig& c, const GgufMix& mix, const GgufMixModel& shape, const std::string& name,
                  const TensorInfo* t, std::vector<GgufTensorToWrite>* out) {
  const MlaKvbDims d{c.n_heads, c.mla.qk_nope_head_dim, c.mla.v_head_dim, c.mla.kv_lora_rank};
  if (t->shape != std::vector<int64_t>{d.heads * (d.nope + d.v), d.kv_lora}) {
    return Status::error(fmt::format("{}: tensor '{}': shape [{}], the config implies [{}, {}]", t->file, t->name,
                                     fmt::join(t->shape, ", "), d.heads * (d.nope + d.v), d.kv_lora));
  }
  KvbElement kv_b = [t, d](int64_t r, int64_t col) { return load_as_f32(t->data, t->dtype, size_t(r * d.kv_lora + col)); };
  const std::string stem = name.substr(0, name.size() - std::string("kv_b.weight").size());
  const std::string k_name = stem + "k_b.weight", v_name = stem + "v_b.weight";
  out->push_back(matrix_tensor(k_name, {[d, kv_b](int64_t r, float* o) { mla_k_b_row(d, kv_b, r, o); }},
                               d.heads * d.kv_lora, d.nope, gguf_mix_tensor_type(mix, shape, k_name, d.nope), 0,
                               {d.heads, d.kv_lora, d.nope}));
  out->push_back(matrix_tensor(v_name, {[d, kv_b](int64_t r, float* o) { mla_v_b_row(d, kv_b, r, o); }},
                               d.heads * d.v, d.kv_lora, gguf_mix_tensor_type(mix, shape, v_name, d.kv_lora), 0,
                               {d.heads, d.v, d.kv_lora}));
  return Status::ok();
}

}  // namespace

Result<std::vector<GgufTensorToWrite>> gguf_export_tensors(const TensorSource& store, const ModelConfig& c,
                                                           const GgufArch& arch, const GgufMix& mix) {
  std::map<std::string, Group> groups;
  for (const TensorInfo& t : store.tensors()) {
    GgufNameMatch m;
    if (!gguf_name_from_hf(arch, t.name, &m)) {
      int layer = -1;
      const bool extra_layer = std::sscanf(t.name.c_str(), "model.layers.%d.", &layer) == 1 && layer >= c.n_layers;
      if (extra_layer || ends_with(t.name, "rotary_emb.inv_freq") || ends_with(t.name, ".attn.bias") ||
          ends_with(t.name, ".attn.masked_bias")) {
        continue;
      }
      return Status::error(fmt::format("{}: tensor '{}' has no GGUF name for {} (GGUF export)", t.file, t.name, arch.gguf));
    }
    if (m.layer >= c.n_layers) continue;
    // llama.cpp's gemma2 always reads its LM head from token_embd (the converter drops lm_head.weight).
    if (std::string(arch.gguf) == "gemma2" && m.name == "output.weight") {
      if (c.tie_word_embeddings) continue;
      return Status::error(fmt::format("{}: GGUF export: an untied lm_head.weight (llama.cpp's gemma2 reads its LM "
                                       "head from token_embd)", t.file));
    }
    if (!t.stored_transposed && t.gguf_type < 0 && !dtype_is_float(t.dtype)) {
      return Status::error(fmt::format("{}: tensor '{}': GGUF export needs a dense (unquantized) checkpoint", t.file, t.name));
    }
    Group& g = groups[m.name];
    if (!g.match.entry) g.match = m, g.table_pos = size_t(m.entry - arch.names.data());
    if (!m.experts()) {
      g.parts = {&t};
      continue;
    }
    if (m.expert < 0 || m.expert >= c.moe.n_experts) {
      return Status::error(fmt::format("{}: tensor '{}': expert {} is outside num_experts {}", t.file, t.name, m.expert,
                                       c.moe.n_experts));
    }
    g.parts.resize(size_t(c.moe.n_experts), nullptr);
    g.parts[size_t(m.expert)] = &t;
  }
  std::vector<const Group*> order;
  for (const auto& [name, g] : groups) order.push_back(&g);
  std::stable_sort(order.begin(), order.end(), [](const Group* a, const Group* b) { return file_order(*a) < file_order(*b); });

  const GgufMixModel shape{arch.gguf, c.n_layers, c.n_heads, c.n_kv_heads, groups.count("output.weight") == 0,
                           c.moe.n_experts};
  std::vector<GgufTensorToWrite> out;
  for (const Group* g : order) {
    const std::string& name = g->match.name;
    const GgufQuirk q = g->match.entry->quirk;
    const int heads = q == GgufQuirk::kRopeQ ? c.n_heads : q == GgufQuirk::kRopeK ? c.n_kv_heads : 0;
    for (size_t e = 0; e < g->parts.size(); ++e) {
      if (!g->parts[e]) {
        return Status::error(fmt::format("{}: expert {} of '{}' is missing", store.source(), e,
                                         gguf_expert_name(g->match.entry->hf, int(e))));
      }
    }
    const TensorInfo* t0 = g->parts[0];
    if (t0->shape.size() == 1 || q == GgufQuirk::kRowVector) {
      if (t0->shape.size() == 2 && t0->shape[0] != 1) {
        return Status::error(fmt::format("{}: tensor '{}': shape [{}], expected [1, n]", t0->file, t0->name,
                                         fmt::join(t0->shape, ", ")));
      }
      if (heads > 0 && t0->numel() % (2 * heads) != 0) {
        return Status::error(fmt::format("{}: tensor '{}' does not split into {} heads", t0->file, t0->name, heads));
      }
      out.push_back(vector_tensor(name, t0, q == GgufQuirk::kNormPlusOne, heads));
      continue;
    }
    if (t0->shape.size() != 2) {
      return Status::error(fmt::format("{}: tensor '{}': shape [{}] is not a matrix", t0->file, t0->name,
                                       fmt::join(t0->shape, ", ")));
    }
    const bool conv1d = q == GgufQuirk::kConv1D;
    const int64_t rows = conv1d ? t0->shape[1] : t0->shape[0], cols = conv1d ? t0->shape[0] : t0->shape[1];
    std::vector<RowReader> parts;
    for (const TensorInfo* t : g->parts) {
      if (t->shape != t0->shape) {
        return Status::error(fmt::format("{}: tensor '{}': shape [{}] differs from its sibling experts' [{}]", t->file,
                                         t->name, fmt::join(t->shape, ", "), fmt::join(t0->shape, ", ")));
      }
      parts.push_back(hf_rows(t, rows, cols, conv1d));
    }
    if (heads > 0 && rows % (2 * heads) != 0) {
      return Status::error(fmt::format("{}: tensor '{}' does not split into {} heads", t0->file, t0->name, heads));
    }
    // llama.cpp keeps MoE routers in F32 (llama-quant.cpp never quantizes ffn_gate_inp).
    const bool router = ends_with(name, ".ffn_gate_inp.weight");
    const GgufType type = router ? GgufType::F32 : gguf_mix_tensor_type(mix, shape, name, cols);
    if (std::string(arch.gguf) == "deepseek2" && ends_with(name, ".attn_kv_b.weight")) {
      TERN_RETURN_IF_ERROR(split_kv_b(c, mix, shape, name, t0, &out));
      continue;
    }
    out.push_back(matrix_tensor(name, std::move(parts), rows, cols, type, heads));
  }
  return out;
}

}  // namespace tern
