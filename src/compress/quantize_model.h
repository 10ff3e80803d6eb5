// The one call `tern quantize --method rtn|awq|gptq|smoothquant [--calib FILE]` needs: tokenize the
// calibration text, calibrate with what the method uses (row sample for AWQ, XᵀX for GPTQ, activation
// maxima for SmoothQuant), run the method. The caller packs the result (formats, checkpoints).
#pragma once

#include <functional>
#include <string>

#include "compress/awq.h"
#include "compress/gptq.h"
#include "compress/smoothquant.h"

namespace tern {

struct QuantizeRequest {
  std::string method = "rtn";  // rtn, awq, gptq, smoothquant
  QuantSpec spec;              // smoothquant ignores it (int8 per channel)
  std::string calib_path;      // text file; required by awq, gptq, smoothquant
  int64_t calib_window = 512;
  int64_t calib_windows = 32;  // 0 = the whole file
  int64_t awq_sample_rows = 512;
  bool gptq_act_order = false;
  double gptq_percdamp = 0.01;
  bool awq_clip = true;
  double smoothquant_alpha = 0.5;
  uint64_t seed = 0;
  // stage ("calibrate", "quantize"), done, total
  std::function<void(const char*, int64_t, int64_t)> on_progress;
};

Result<QuantizedModel> quantize_model(const Model& model, ExecContext& ctx, const Tokenizer* tokenizer,
                                      const QuantizeRequest& request);

}  // namespace tern
