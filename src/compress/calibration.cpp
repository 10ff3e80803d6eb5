#include "compress/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "compress/dense_math.h"
#include "core/mapped_file.h"

namespace tern {

std::vector<float> SlotStats::mean_abs() const {
  std::vector<float> m(size_t(cols), 0.0f);
  if (rows > 0)
    for (int64_t c = 0; c < cols; ++c) m[size_t(c)] = float(abs_sum[size_t(c)] / double(rows));
  return m;
}

Result<std::vector<std::vector<int32_t>>> calibration_windows(const std::vector<int32_t>& tokens, int64_t window,
                                                              int64_t max_windows) {
  if (window < 2) return Status::error(fmt::format("calibration window {} is too small (at least 2)", window));
  if (max_windows < 0) return Status::error("calibration window count must be >= 0");
  if (tokens.size() < 2) return Status::error("calibration text is empty (fewer than 2 tokens)");
  std::vector<std::vector<int32_t>> out;
  const int64_t n = int64_t(tokens.size());
  for (int64_t s = 0; s + window <= n && (max_windows == 0 || int64_t(out.size()) < max_windows); s += window) {
    out.emplace_back(tokens.begin() + s, tokens.begin() + s + window);
  }
  if (out.empty()) out.emplace_back(tokens.begin(), tokens.end());
  return out;
}

Result<std::vector<std::vector<int32_t>>> calibration_windows_from_file(const Tokenizer& tokenizer,
                                                                        const std::string& path, int64_t window,
                                                                        int64_t max_windows) {
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  auto w = calibration_windows(tokenizer.encode(text, /*add_special_tokens=*/true), window, max_windows);
  if (!w.is_ok()) return w.status().with_context(path);
  return w;
}

namespace {

class Collector : public ActivationObserver {
 public:
  Collector(ExecContext& ctx, const ModelConfig& cfg, const CalibrationOptions& opt) : ctx_(&ctx), opt_(opt) {
    stats_.layers.resize(size_t(cfg.n_layers));
    if (cfg.moe.enabled()) {
      stats_.experts.assign(size_t(cfg.n_layers), std::vector<std::array<SlotStats, 2>>(size_t(cfg.moe.n_experts) + 1));
    }
  }

  bool wanted(int layer, LinearInput slot) const {
    return (opt_.only_layer < 0 || layer == opt_.only_layer) && (opt_.slot_mask >> unsigned(slot) & 1u);
  }

  void on_linear_input(int layer, LinearInput slot, const float* x, int64_t rows, int64_t cols) override {
    if (!wanted(layer, slot)) return;
    // The seed key of the four original slots is layer * 4 + slot (samples as before experts existed).
    const uint64_t key = slot == LinearInput::kQLatent ? (uint64_t(1) << 40) + uint64_t(layer)
                                                       : uint64_t(layer) * 4 + uint64_t(slot);
    add(stats_.at(layer, slot), key, x, rows, cols, opt_.sample_rows);
  }

  void on_expert_input(int layer, int expert, LinearInput slot, const float* x, int64_t rows, int64_t cols) override {
    if (!wanted(layer, slot) || stats_.experts.empty()) return;
    InputRef r{layer, slot, expert};
    add(stats_.at(r), (uint64_t(1) << 41) + (uint64_t(layer) << 20) + uint64_t(expert) * 8 + uint64_t(slot), x, rows, cols,
        opt_.expert_sample_rows < 0 ? opt_.sample_rows : opt_.expert_sample_rows);
  }

  CalibrationStats stats_;

 private:
  void add(SlotStats& st, uint64_t key, const float* x, int64_t rows, int64_t cols, int64_t keep) {
    if (st.cols == 0) {  // first rows: allocate
      st.cols = cols;
      st.abs_sum.assign(size_t(cols), 0.0);
      st.abs_max.assign(size_t(cols), 0.0f);
      st.sq_sum.assign(size_t(cols), 0.0);
      if (opt_.hessian) st.xtx.assign(size_t(cols * cols), 0.0);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const float a = std::fabs(row[c]);
        st.abs_sum[size_t(c)] += a;
        st.abs_max[size_t(c)] = std::max(st.abs_max[size_t(c)], a);
        st.sq_sum[size_t(c)] += double(row[c]) * double(row[c]);
      }
      // Reservoir sampling keeps a uniform sample of all rows seen so far.
      if (keep > 0) {
        const int64_t seen = st.rows + r;
        if (seen < keep) {
          st.sample.insert(st.sample.end(), row, row + cols);
        } else {
          auto it = rngs_.find(key);
          if (it == rngs_.end()) it = rngs_.emplace(key, std::mt19937_64(opt_.seed * 1000003u + key)).first;
          std::uniform_int_distribution<int64_t> pick(0, seen);
          const int64_t j = pick(it->second);
          if (j < keep) std::copy(row, row + cols, st.sample.begin() + j * cols);
        }
      }
    }
    st.rows += rows;
    if (opt_.hessian) accumulate_gram(*ctx_, x, rows, cols, st.xtx.data());
  }

  ExecContext* ctx_;
  CalibrationOptions opt_;
  std::map<uint64_t, std::mt19937_64> rngs_;  // per slot, made when its reservoir is full
};

}  // namespace
Result<CalibrationStats> calibrate(const Model& model, ExecContext& ctx,
                                   const std::vector<std::vector<int32_t>>& windows, const CalibrationOptions& opt,
                                   const std::function<void(int64_t, int64_t)>& on_window) {
  if (windows.empty()) return Status::error("calibration: no windows");
  if (opt.sample_rows < 0) return Status::error("calibration: sample_rows must be >= 0");
  const ModelConfig& cfg = model.config();
  int64_t longest = 0;
  for (const auto& w : windows) longest = std::max<int64_t>(longest, int64_t(w.size()));
  if (cfg.max_position_embeddings > 0 && longest > cfg.max_position_embeddings) {
    return Status::error(fmt::format("calibration window of {} tokens exceeds the model's context of {}", longest,
                                     cfg.max_position_embeddings));
  }
  Collector collector(ctx, cfg, opt);
  Decoder decoder(model, std::min<int64_t>(longest, 512));
  decoder.set_observer(&collector);
  if (opt.only_layer >= 0) decoder.set_layer_limit(opt.only_layer + 1);  // later layers see nothing to collect
  SequenceKvCache kv(cfg, longest);
  std::vector<float> hidden(size_t(cfg.hidden_size));
  for (size_t i = 0; i < windows.size(); ++i) {
    const auto& w = windows[i];
    if (w.empty()) return Status::error("calibration: empty window");
    kv.set_length(0);
    TERN_RETURN_IF_ERROR(decoder.forward(ctx, kv, w.data(), int64_t(w.size()), 1, hidden.data()));
    collector.stats_.tokens += int64_t(w.size());
    collector.stats_.windows += 1;
    if (on_window) on_window(int64_t(i) + 1, int64_t(windows.size()));
  }
  return std::move(collector.stats_);
}

Result<CalibrationStats> calibrate(const Model& model, ExecContext& ctx, const CalibData& calib,
                                   CalibrationOptions options, const ProgressFn& progress) {
  options.window = calib.seq_len;
  options.max_windows = calib.max_windows;
  auto windows = calibration_windows(calib.tokens, calib.seq_len, calib.max_windows);
  if (!windows.is_ok()) return windows.status().with_context("calibration");
  const int64_t total = int64_t(windows->size()) + model.config().n_layers;
  return calibrate(model, ctx, *windows, options, [&](int64_t done, int64_t) {
    if (progress) progress(done, total);
  });
}

Status calibrate_by_layer(const Model& model, ExecContext& ctx, const CalibData& calib, CalibrationOptions options,
                          const ProgressFn& progress,
                          const std::function<Status(int layer, const CalibrationStats& stats)>& per_layer) {
  options.window = calib.seq_len;
  options.max_windows = calib.max_windows;
  auto windows = calibration_windows(calib.tokens, calib.seq_len, calib.max_windows);
  if (!windows.is_ok()) return windows.status().with_context("calibration");
  const int n = model.config().n_layers;
  for (int l = 0; l < n; ++l) {
    options.only_layer = l;
    TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(model, ctx, *windows, options));
    TERN_RETURN_IF_ERROR(per_layer(l, stats));
    if (progress) progress(l + 1, n);
  }
  return Status::ok();
}

}  // namespace tern
