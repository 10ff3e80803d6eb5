#include "compress/quantize_model.h"

#include <fmt/format.h>

namespace tern {

Result<QuantizedModel> quantize_model(const Model& model, ExecContext& ctx, const Tokenizer* tokenizer,
                                      const QuantizeRequest& req) {
  const std::string& m = req.method;
  if (m != "rtn" && m != "awq" && m != "gptq" && m != "smoothquant") {
    return Status::error(fmt::format("unknown quantization method '{}' (rtn, awq, gptq, smoothquant)", m));
  }
  if (m == "rtn") return quantize_model_rtn(model, req.spec);
  if (req.calib_path.empty()) return Status::error(fmt::format("--method {} needs calibration text (--calib FILE)", m));
  if (!tokenizer) return Status::error("calibration needs the model's tokenizer (tokenizer.json)");
  TERN_ASSIGN_OR_RETURN(auto windows,
                        calibration_windows_from_file(*tokenizer, req.calib_path, req.calib_window, req.calib_windows));
  CalibrationOptions copt;
  copt.window = req.calib_window;
  copt.max_windows = req.calib_windows;
  copt.hessian = m == "gptq";
  copt.sample_rows = m == "awq" ? req.awq_sample_rows : 0;
  copt.seed = req.seed;
  auto progress = [&](int64_t done, int64_t total) {
    if (req.on_progress) req.on_progress("calibrate", done, total);
  };
  TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(model, ctx, windows, copt, progress));
  auto layer_progress = [&](int64_t done, int64_t total) {
    if (req.on_progress) req.on_progress("quantize", done, total);
  };
  if (m == "awq") {
    AwqOptions o;
    o.spec = req.spec;
    o.clip = req.awq_clip;
    o.on_layer = layer_progress;
    return quantize_model_awq(model, ctx, stats, o);
  }
  if (m == "gptq") {
    GptqOptions o;
    o.spec = req.spec;
    o.act_order = req.gptq_act_order;
    o.percdamp = req.gptq_percdamp;
    o.on_layer = layer_progress;
    return quantize_model_gptq(model, ctx, stats, o);
  }
  SmoothQuantOptions o;
  o.alpha = req.smoothquant_alpha;
  return quantize_model_smoothquant(model, stats, o);
}

}  // namespace tern
