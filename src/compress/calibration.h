// Calibration: run windows of user-given text through the Decoder and collect, for every layer's
// linear inputs (q/k/v share one, gate/up share one), what the quantization methods need:
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
  uint64_t seed = 0;
  // Sequential GPTQ collects one layer's inputs per pass: >= 0 keeps only that layer's statistics
  // (the other layers' slots stay empty), and slot_mask (bit LinearInput) only those slots.
  int only_layer = -1;
  unsigned slot_mask = 0xF;
};

struct SlotStats {
  int64_t cols = 0;
  int64_t rows = 0;             // rows seen
  std::vector<double> abs_sum;  // [cols] Σ |x|
  std::vector<float> abs_max;   // [cols] max |x|
  std::vector<double> xtx;      // [cols, cols] Σ xᵀx (options.hessian)
  std::vector<float> sample;    // [n_sample, cols]

  int64_t n_sample() const { return cols ? int64_t(sample.size()) / cols : 0; }
  std::vector<float> mean_abs() const;  // [cols]
};

struct CalibrationStats {
  std::vector<std::array<SlotStats, 4>> layers;  // [layer][LinearInput]
  int64_t tokens = 0;
  int64_t windows = 0;
  SlotStats& at(int layer, LinearInput slot) { return layers[size_t(layer)][size_t(slot)]; }
  const SlotStats& at(int layer, LinearInput slot) const { return layers[size_t(layer)][size_t(slot)]; }
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

}  // namespace tern
