// write_structured_checkpoint (prune_structured.h): slices each layer's tensors to what the plan keeps,
// byte for byte in the stored dtype (no rounding), renumbers the kept layers, and rewrites config.json.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "compress/prune_structured.h"
#include "compress/prune_writer.h"

namespace tern {

namespace {

struct Owned {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Rows `keep` of t (a 1-D tensor is rows of one element), [keep.size(), cols].
Owned select_rows(const TensorInfo& t, const std::vector<int64_t>& keep, const std::string& name) {
  const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
  const size_t row_bytes = size_t(cols) * dtype_size(t.dtype);
  Owned o{name, t.shape, std::vector<uint8_t>(keep.size() * row_bytes)};
  o.shape[0] = int64_t(keep.size());
  const auto* src = static_cast<const uint8_t*>(t.data);
  for (size_t i = 0; i < keep.size(); ++i) std::memcpy(o.bytes.data() + i * row_bytes, src + size_t(keep[i]) * row_bytes, row_bytes);
  return o;
}

// Columns `keep` of a 2-D t, [rows, keep.size()].
Owned select_cols(const TensorInfo& t, const std::vector<int64_t>& keep, const std::string& name) {
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const size_t es = dtype_size(t.dtype);
  Owned o{name, {rows, int64_t(keep.size())}, std::vector<uint8_t>(size_t(rows) * keep.size() * es)};
  const auto* src = static_cast<const uint8_t*>(t.data);
  for (int64_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < keep.size(); ++j)
      std::memcpy(o.bytes.data() + (size_t(r) * keep.size() + j) * es, src + (size_t(r) * size_t(cols) + size_t(keep[j])) * es, es);
  return o;
}

// The row indices of the kept heads: for each kept KV group, heads_per_group heads of head_dim rows.
std::vector<int64_t> head_rows(const std::vector<int>& groups, int heads_per_group, int head_dim) {
  std::vector<int64_t> rows;
  for (int g : groups)
    for (int h = 0; h < heads_per_group; ++h)
      for (int d = 0; d < head_dim; ++d) rows.push_back((int64_t(g) * heads_per_group + h) * head_dim + d);
  return rows;
}

}  // namespace

Status write_structured_checkpoint(const Model& model, const StructuredPlan& p, const std::string& out_dir) {
  const ModelConfig& c = model.config();
  const int rep = c.n_heads / c.n_kv_heads;
  const bool heads = p.kv_remove > 0, channels = p.channels_keep > 0, layers = p.layers_remove > 0;
  if ((heads && p.kv_kept.size() != size_t(c.n_layers)) || (channels && p.channels_kept.size() != size_t(c.n_layers)) ||
      (layers && p.layers_kept.empty()))
    return Status::error("prune: the structured plan was not scored");
  std::vector<int> new_index(size_t(c.n_layers), -1);
  for (int l = 0; l < c.n_layers; ++l) new_index[size_t(l)] = l;
  if (layers) {
    std::fill(new_index.begin(), new_index.end(), -1);
    for (size_t i = 0; i < p.layers_kept.size(); ++i) new_index[size_t(p.layers_kept[i])] = int(i);
  }
  std::vector<Owned> owned;
  std::vector<TensorToWrite> tensors;
  std::vector<std::pair<size_t, const TensorInfo*>> order;  // (owned index or npos, source)
  const std::string prefix = "model.layers.";
  for (const auto& t : model.store().tensors()) {
    if (t.name.compare(0, prefix.size(), prefix) != 0) {
      order.emplace_back(std::string::npos, &t);
      continue;
    }
    const size_t dot = t.name.find('.', prefix.size());
    int l = -1;
    try {
      l = std::stoi(t.name.substr(prefix.size(), dot - prefix.size()));
    } catch (...) {
      l = -1;
    }
    if (dot == std::string::npos || l < 0 || l >= c.n_layers)
      return Status::error(fmt::format("{}: tensor {} names no layer of the model", model.dir(), t.name));
    if (new_index[size_t(l)] < 0) continue;  // a removed layer
    const std::string rest = t.name.substr(dot + 1);
    const std::string name = fmt::format("{}{}.{}", prefix, new_index[size_t(l)], rest);
    auto is = [&](const char* module) { return rest == std::string(module) + ".weight" || rest == std::string(module) + ".bias"; };
    std::vector<int64_t> ch;
    if (channels) ch.assign(p.channels_kept[size_t(l)].begin(), p.channels_kept[size_t(l)].end());
    if (heads && is("self_attn.q_proj")) {
      owned.push_back(select_rows(t, head_rows(p.kv_kept[size_t(l)], rep, c.head_dim), name));
    } else if (heads && (is("self_attn.k_proj") || is("self_attn.v_proj"))) {
      owned.push_back(select_rows(t, head_rows(p.kv_kept[size_t(l)], 1, c.head_dim), name));
    } else if (heads && rest == "self_attn.o_proj.weight") {
      owned.push_back(select_cols(t, head_rows(p.kv_kept[size_t(l)], rep, c.head_dim), name));
    } else if (channels && (is("mlp.gate_proj") || is("mlp.up_proj"))) {
      owned.push_back(select_rows(t, ch, name));
    } else if (channels && rest == "mlp.down_proj.weight") {
      owned.push_back(select_cols(t, ch, name));
    } else if (name != t.name) {
      owned.push_back(Owned{name, t.shape, {}});  // renamed only: bytes from the source
    } else {
      order.emplace_back(std::string::npos, &t);
      continue;
    }
    order.emplace_back(owned.size() - 1, &t);
  }
  for (const auto& [i, t] : order) {
    if (i == std::string::npos) {
      tensors.push_back(TensorToWrite{t->name, t->dtype, t->shape, t->data, t->bytes});
    } else if (owned[i].bytes.empty()) {
      tensors.push_back(TensorToWrite{owned[i].name, t->dtype, t->shape, t->data, t->bytes});
    } else {
      tensors.push_back(TensorToWrite{owned[i].name, t->dtype, owned[i].shape, owned[i].bytes.data(), owned[i].bytes.size()});
    }
  }
  TERN_ASSIGN_OR_RETURN(nlohmann::ordered_json cfg, read_config_json(model));
  if (heads) {
    cfg["num_attention_heads"] = (c.n_kv_heads - p.kv_remove) * rep;
    cfg["num_key_value_heads"] = c.n_kv_heads - p.kv_remove;
    cfg["head_dim"] = c.head_dim;  // no longer hidden_size / num_attention_heads
  }
  if (channels) cfg["intermediate_size"] = p.channels_keep;
  if (layers) {
    cfg["num_hidden_layers"] = int(p.layers_kept.size());
    // Per-layer lists (sliding / full attention) keep the kept layers' entries.
    for (const char* key : {"layer_types"}) {
      auto it = cfg.find(key);
      if (it == cfg.end() || !it->is_array()) continue;
      if (it->size() != size_t(c.n_layers))
        return Status::error(fmt::format("{}/config.json: {} has {} entries for {} layers", model.dir(), key, it->size(), c.n_layers));
      nlohmann::ordered_json kept = nlohmann::ordered_json::array();
      for (int l : p.layers_kept) kept.push_back((*it)[size_t(l)]);
      *it = kept;
    }
  }
  return write_dense_checkpoint(model, tensors, cfg, out_dir);
}

}  // namespace tern
