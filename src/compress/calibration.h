// Calibration: run windows of user-given text through the Decoder and collect, for every layer's
// linear inputs (q/k/v share one, gate/up share one; on a mixture-of-experts layer also each
// expert's own inputs: the rows routed to it and its intermediate activation), what the
// quantization methods need:
// per-input-channel mean |x| and max |x| (AWQ, SmoothQuant), XᵀX (GPTQ's Hessian) and a bounded,
// uniformly drawn sample of rows (AWQ's output-error searches).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/quantized_model.h"
#include "core/status.h"
#include "model/decoder.h"
#include "model/model.h"
#include "text/tokenizer/tokenizer.h"
#include "core/exec_context.h"

namespace tern {

struct CalibrationOptions {
  int64_t window = 512;      // tokens per calibration window
  int64_t max_windows = 32;  // 0 = every full window of the text
  bool hessian = false;      // accumulate XᵀX (GPTQ)
  int64_t sample_rows = 0;   // rows kept per (layer, slot) for output-error searches (AWQ)
  int64_t expert_sample_rows = -1;  // rows kept per expert input; < 0: sample_rows
  uint64_t seed = 0;
  // Sequential GPTQ collects one layer's inputs per pass: >= 0 keeps only that layer's statistics
  // (the other layers' slots stay empty), and slot_mask (bit LinearInput) only those slots.
  // An expert's slots follow the mask bits of kMlpIn / kMlpDown.
  int only_layer = -1;
  unsigned slot_mask = 0x1F;
};

// Statistics are allocated when a slot first sees rows: a slot nothing fed (a dense layer's kQLatent,
// an expert no calibration row was routed to) keeps cols == rows == 0.
struct SlotStats {
  int64_t cols = 0;
  int64_t rows = 0;             // rows seen
  std::vector<double> abs_sum;  // [cols] Σ |x|
  std::vector<float> abs_max;   // [cols] max |x|
  std::vector<double> sq_sum;   // [cols] Σ x² (Wanda's ‖X_j‖², structured pruning's channel energy)
  std::vector<double> xtx;      // [cols, cols] Σ xᵀx (options.hessian)
  std::vector<float> sample;    // [n_sample, cols]

  int64_t n_sample() const { return cols ? int64_t(sample.size()) / cols : 0; }
  std::vector<float> mean_abs() const;  // [cols]
};

// Which observed input feeds a linear: a layer's slot, or (expert >= 0) an expert's own input at
// kMlpIn / kMlpDown; expert == n_experts is the shared expert (its down input).
struct InputRef {
  int layer = 0;
  LinearInput slot = LinearInput::kAttnIn;
  int expert = -1;
  bool operator==(const InputRef&) const = default;
};

struct CalibrationStats {
  std::vector<std::array<SlotStats, kLinearInputs>> layers;  // [layer][LinearInput]
  // [layer][expert, n_experts = shared][0: kMlpIn, 1: kMlpDown]; empty for a dense model.
  std::vector<std::vector<std::array<SlotStats, 2>>> experts;
  int64_t tokens = 0;
  int64_t windows = 0;
  SlotStats& at(int layer, LinearInput slot) { return layers[size_t(layer)][size_t(slot)]; }
  const SlotStats& at(int layer, LinearInput slot) const { return layers[size_t(layer)][size_t(slot)]; }
  const SlotStats& at(const InputRef& r) const {
    if (r.expert < 0) return at(r.layer, r.slot);
    return experts[size_t(r.layer)][size_t(r.expert)][r.slot == LinearInput::kMlpIn ? 0 : 1];
  }
  SlotStats& at(const InputRef& r) { return const_cast<SlotStats&>(static_cast<const CalibrationStats&>(*this).at(r)); }
};

// Non-overlapping windows of `window` tokens (at most max_windows, 0 = all); a text shorter than one
// window gives one short window. Error when there are fewer than 2 tokens.
Result<std::vector<std::vector<int32_t>>> calibration_windows(const std::vector<int32_t>& tokens, int64_t window,
                                                              int64_t max_windows);
// Reads and tokenizes a calibration text file (BOS once at the start), then cuts it into windows.
Result<std::vector<std::vector<int32_t>>> calibration_windows_from_file(const Tokenizer& tokenizer,
                                                                        const std::string& path, int64_t window,
                                                                        int64_t max_windows);

// on_window(done, total) reports progress.
Result<CalibrationStats> calibrate(const Model& model, ExecContext& ctx,
                                   const std::vector<std::vector<int32_t>>& windows, const CalibrationOptions& options,
                                   const std::function<void(int64_t, int64_t)>& on_window = nullptr);

// What the method entry points (awq_quantize, gptq_quantize, smoothquant_quantize) run first: windows
// from `calib` (options.window / max_windows are taken from it), progress reported as
// (windows done, windows + layers) so the method's per-layer progress continues the same bar.
Result<CalibrationStats> calibrate(const Model& model, ExecContext& ctx, const CalibData& calib,
                                   CalibrationOptions options, const ProgressFn& progress);

// Layer by layer: for each layer l, one calibration pass (options.only_layer = l, the forward stops
// after layer l) and then per_layer(l, stats holding layer l's statistics only), so that memory holds
// one layer's Hessians and samples at a time (a mixture of experts: one per expert). Progress is
// reported as (layers done, layers).
Status calibrate_by_layer(const Model& model, ExecContext& ctx, const CalibData& calib, CalibrationOptions options,
                          const ProgressFn& progress,
                          const std::function<Status(int layer, const CalibrationStats& stats)>& per_layer);

}  // namespace tern
