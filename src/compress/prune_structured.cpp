#include "compress/prune_structured.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "compress/model_linears.h"
#include "kv/sequence_kv_cache.h"
#include "model/decoder.h"

namespace tern {

Result<unsigned> parse_structured_targets(const std::string& s) {
  unsigned t = 0;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (part == "heads") t |= kPruneHeads;
    else if (part == "channels") t |= kPruneChannels;
    else if (part == "layers") t |= kPruneLayers;
    else return Status::error(fmt::format("--structured '{}': expected heads, channels, heads,channels or layers", s));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if ((t & kPruneLayers) && t != kPruneLayers)
    return Status::error("--structured layers removes whole layers: it does not combine with heads or channels");
  return t;
}

Status validate_structured(const StructuredOptions& o) {
  if (o.targets == 0) return Status::error("--structured: nothing to remove");
  if (!(o.ratio > 0.0 && o.ratio < 1.0)) return Status::error(fmt::format("--ratio {}: must be between 0 and 1 (exclusive)", o.ratio));
  return Status::ok();
}

Result<StructuredPlan> plan_structured_shape(const Model& model, const StructuredOptions& o) {
  TERN_RETURN_IF_ERROR(validate_structured(o));
  const ModelConfig& c = model.config();
  const std::string where = model.dir() + "/config.json";
  static constexpr const char* kArchs[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
  if (model.gguf() || std::find(std::begin(kArchs), std::end(kArchs), c.architecture) == std::end(kArchs) ||
      c.moe.enabled() || c.mla.enabled()) {
    return Status::error(fmt::format("{}: architectures: {} is not supported by --structured (Llama, Mistral, Qwen2, Qwen3)",
                                     where, c.architecture));
  }
  for (int l = 0; l < c.n_layers; ++l) {
    for (const char* t : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                          "mlp.up_proj", "mlp.down_proj"}) {
      const std::string name = fmt::format("model.layers.{}.{}.weight", l, t);
      const TensorInfo* ti = model.store().find(name);
      if (!ti || ti->shape.size() != 2 || ti->gguf_type >= 0 || !(ti->dtype == DType::F32 || ti->dtype == DType::F16 || ti->dtype == DType::BF16))
        return Status::error(fmt::format("{}: --structured needs a dense tensor {} (a fused or quantized layout is not supported)",
                                         model.dir(), name));
    }
  }
  StructuredPlan p;
  p.options = o;
  if (o.targets & kPruneHeads) {
    p.kv_remove = int(std::lround(o.ratio * c.n_kv_heads));
    if (p.kv_remove < 1 || p.kv_remove >= c.n_kv_heads)
      return Status::error(fmt::format("--ratio {}: removes {} of the {} KV head groups (num_key_value_heads in {}); "
                                       "at least one must go and one must stay",
                                       o.ratio, p.kv_remove, c.n_kv_heads, where));
  }
  if (o.targets & kPruneChannels) {
    const double keep = (1.0 - o.ratio) * double(c.intermediate_size);
    p.channels_keep = c.intermediate_size >= 64 ? std::max<int64_t>(32, std::llround(keep / 32.0) * 32) : std::llround(keep);
    if (p.channels_keep < 1 || p.channels_keep >= c.intermediate_size)
      return Status::error(fmt::format("--ratio {}: keeps {} of the {} feed-forward channels (intermediate_size in {})",
                                       o.ratio, p.channels_keep, c.intermediate_size, where));
  }
  if (o.targets & kPruneLayers) {
    p.layers_remove = int(std::lround(o.ratio * c.n_layers));
    if (p.layers_remove < 1 || p.layers_remove >= c.n_layers)
      return Status::error(fmt::format("--ratio {}: removes {} of the {} layers (num_hidden_layers in {})", o.ratio,
                                       p.layers_remove, c.n_layers, where));
  }
  return p;
}

namespace {

// Per layer: Σ a² of o_proj's and down_proj's inputs, and Σ_t cos(h_l, h_{l+1}) of the residual stream.
class ImportanceCollector : public ActivationObserver {
 public:
  explicit ImportanceCollector(const ModelConfig& c)
      : attn_sq_(size_t(c.n_layers)), mlp_sq_(size_t(c.n_layers)), cos_sum_(size_t(c.n_layers), 0.0) {}

  void on_linear_input(int layer, LinearInput slot, const float* x, int64_t rows, int64_t cols) override {
    if (slot != LinearInput::kAttnOut && slot != LinearInput::kMlpDown) return;
    std::vector<double>& acc = (slot == LinearInput::kAttnOut ? attn_sq_ : mlp_sq_)[size_t(layer)];
    if (acc.empty()) acc.assign(size_t(cols), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) acc[size_t(c)] += double(x[r * cols + c]) * double(x[r * cols + c]);
  }

  // x + delta: [rows, cols]; calls for one chunk come in layer order 0 .. n_layers.
  void on_residual(int layer, const float* x, const float* delta, int64_t rows, int64_t cols) override {
    cur_.resize(size_t(rows * cols));
    for (int64_t i = 0; i < rows * cols; ++i) cur_[size_t(i)] = x[i] + (delta ? delta[i] : 0.0f);
    if (layer > 0 && prev_.size() == cur_.size()) {
      for (int64_t r = 0; r < rows; ++r) {
        double dot = 0, a = 0, b = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double p = prev_[size_t(r * cols + c)], q = cur_[size_t(r * cols + c)];
          dot += p * q, a += p * p, b += q * q;
        }
        cos_sum_[size_t(layer - 1)] += a > 0 && b > 0 ? dot / std::sqrt(a * b) : 1.0;
      }
      if (layer == 1) tokens_ += rows;
    }
    std::swap(prev_, cur_);
  }

  std::vector<std::vector<double>> attn_sq_, mlp_sq_;  // [layer][cols]
  std::vector<double> cos_sum_;                       // [layer]
  int64_t tokens_ = 0;

 private:
  std::vector<float> prev_, cur_;
};

// Column energies ‖W[:, j]‖² of a dense [rows, cols] matrix.
Result<std::vector<double>> column_sq(const WeightMatrix& w) {
  TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(w));
  std::vector<double> out(size_t(w.cols), 0.0);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) out[size_t(c)] += double(f[size_t(r * w.cols + c)]) * f[size_t(r * w.cols + c)];
  return out;
}

// The `keep` highest-scoring indices, ascending (ties: the lower index stays).
template <typename I>
std::vector<I> top_indices(const std::vector<double>& score, int64_t keep) {
  std::vector<I> idx(score.size());
  std::iota(idx.begin(), idx.end(), I(0));
  std::stable_sort(idx.begin(), idx.end(), [&](I a, I b) { return score[size_t(a)] > score[size_t(b)]; });
  idx.resize(size_t(keep));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

Status score_structured(const Model& model, ExecContext& ctx, const std::vector<std::vector<int32_t>>& windows,
                        StructuredPlan& p, const ProgressFn& progress) {
  if (windows.empty()) return Status::error("--structured needs calibration text");
  const ModelConfig& c = model.config();
  int64_t longest = 0;
  for (const auto& w : windows) longest = std::max<int64_t>(longest, int64_t(w.size()));
  if (c.max_position_embeddings > 0 && longest > c.max_position_embeddings)
    return Status::error(fmt::format("calibration window of {} tokens exceeds the model's context of {}", longest,
                                     c.max_position_embeddings));
  ImportanceCollector col(c);
  Decoder decoder(model, std::min<int64_t>(longest, 512));
  decoder.set_observer(&col);
  SequenceKvCache kv(c, longest);
  std::vector<float> hidden(size_t(c.hidden_size));
  for (size_t i = 0; i < windows.size(); ++i) {
    kv.set_length(0);
    TERN_RETURN_IF_ERROR(decoder.forward(ctx, kv, windows[i].data(), int64_t(windows[i].size()), 1, hidden.data()));
    if (progress) progress(int64_t(i) + 1, int64_t(windows.size()));
  }
  const TransformerWeights& w = model.weights();
  const int rep = c.n_heads / c.n_kv_heads;
  p.kv_scores.assign(size_t(c.n_layers), {});
  p.channel_scores.assign(size_t(c.n_layers), {});
  p.kv_kept.assign(size_t(c.n_layers), {});
  p.channels_kept.assign(size_t(c.n_layers), {});
  for (int l = 0; l < c.n_layers; ++l) {
    const DecoderLayerWeights& lw = w.layers[size_t(l)];
    if (p.kv_remove > 0) {
      TERN_ASSIGN_OR_RETURN(std::vector<double> wo, column_sq(lw.attn.o));
      const std::vector<double>& a = col.attn_sq_[size_t(l)];
      if (int64_t(a.size()) != int64_t(c.n_heads) * c.head_dim || wo.size() != a.size())
        return Status::error(fmt::format("layer {}: attention output does not match num_attention_heads × head_dim", l));
      std::vector<double>& s = p.kv_scores[size_t(l)];
      s.assign(size_t(c.n_kv_heads), 0.0);
      for (size_t j = 0; j < a.size(); ++j) s[j / size_t(c.head_dim) / size_t(rep)] += a[j] * wo[j];
      p.kv_kept[size_t(l)] = top_indices<int>(s, c.n_kv_heads - p.kv_remove);
    }
    if (p.channels_keep > 0) {
      TERN_ASSIGN_OR_RETURN(std::vector<double> wd, column_sq(lw.mlp.down));
      const std::vector<double>& a = col.mlp_sq_[size_t(l)];
      if (a.size() != wd.size()) return Status::error(fmt::format("layer {}: feed-forward activation does not match down_proj", l));
      std::vector<double>& s = p.channel_scores[size_t(l)];
      s.resize(a.size());
      for (size_t j = 0; j < a.size(); ++j) s[j] = a[j] * wd[j];
      p.channels_kept[size_t(l)] = top_indices<int64_t>(s, p.channels_keep);
    }
  }
  p.layer_scores.assign(size_t(c.n_layers), 0.0);
  for (int l = 0; l < c.n_layers; ++l)
    p.layer_scores[size_t(l)] = col.tokens_ > 0 ? 1.0 - col.cos_sum_[size_t(l)] / double(col.tokens_) : 0.0;
  p.layers_kept = top_indices<int>(p.layer_scores, c.n_layers - p.layers_remove);
  return Status::ok();
}

std::string describe_plan(const Model& model, const StructuredPlan& p) {
  const ModelConfig& c = model.config();
  std::vector<std::string> parts;
  if (p.kv_remove > 0) {
    const int rep = c.n_heads / c.n_kv_heads;
    parts.push_back(fmt::format("attention heads {} -> {} (KV groups {} -> {})", c.n_heads,
                                (c.n_kv_heads - p.kv_remove) * rep, c.n_kv_heads, c.n_kv_heads - p.kv_remove));
  }
  if (p.channels_keep > 0) parts.push_back(fmt::format("feed-forward channels {} -> {}", c.intermediate_size, p.channels_keep));
  if (p.layers_remove > 0) {
    std::vector<std::string> gone;
    for (int l = 0; l < c.n_layers; ++l)
      if (!std::binary_search(p.layers_kept.begin(), p.layers_kept.end(), l))
        gone.push_back(fmt::format("{} (BI {:.4f})", l, p.layer_scores[size_t(l)]));
    parts.push_back(fmt::format("layers {} -> {}, removed {}", c.n_layers, p.layers_kept.size(), fmt::join(gone, ", ")));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace tern
