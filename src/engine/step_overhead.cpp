#include "engine/step_overhead.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/median.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine.h"
#include "engine/offline_run.h"
#include "model/model.h"
#include "model/synth.h"

namespace tern {

namespace {

// hidden 32, 2 query heads and 1 KV head of 64, MLP 64, vocab 256: 18 K parameters per layer, so a
// step's weights sit in cache and its FLOPs (36 K per token per layer) cost well under a microsecond
// per sequence. A real model's bytes and FLOPs are priced by the roofline; what this probe sees is
// what is left: the dispatch of each op, the engine's bookkeeping, attention's and sampling's
// per-sequence work — and, with a long context, the rate at which attention gets through KV.
constexpr int kProbeKvHeads = 1, kProbeHeadDim = 64;
SynthShape probe_shape(int layers) {
  SynthShape s{"overhead-probe", "LlamaForCausalLM", "llama", 32, 64, 256, 1024, layers, 2, kProbeKvHeads,
               kProbeHeadDim};
  s.tied = true;
  return s;
}

// Median microseconds per decode step of `batch` sequences of `prompt` tokens on a `layers`-layer probe model.
Result<double> probe_step_us(ExecContext& ctx, const StepOverheadOptions& o, int layers, int batch, int prompt) {
  const std::string dir = fmt::format("{}/probe-{}", o.scratch_dir, layers);
  if (!std::filesystem::exists(dir + "/config.json")) {
    SynthOptions so;
    so.out_dir = dir;
    TERN_RETURN_IF_ERROR(synthesize(ctx, probe_shape(layers), so));
  }
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::load(dir));
  EngineOptions eo;
  eo.max_running = batch;
  eo.prefix_caching = false;
  auto runner = std::make_unique<CpuModelRunner>(*model, ctx, eo.max_step_tokens, eo.max_running);
  const int64_t blocks_per_seq = (prompt + o.new_tokens + eo.block_size - 1) / eo.block_size + 1;
  eo.kv_memory_bytes = runner->kv_block_bytes(eo.block_size, eo.kv_dtype) * size_t(blocks_per_seq * batch);
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::create(std::move(runner), nullptr, eo));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
  for (size_t i = 0; i < prompts.size(); ++i)
    for (int t = 0; t < prompt; ++t) prompts[i].push_back(int32_t((i * 131 + size_t(t) * 17) % 250 + 3));
  OfflineRunOptions ro;
  ro.concurrency = batch;
  ro.max_new_tokens = o.new_tokens;
  std::vector<double> step_us;
  for (int rep = 0; rep <= o.reps; ++rep) {
    TERN_ASSIGN_OR_RETURN(OfflineRunStats st, run_offline_load(*engine, prompts, ro));
    // decode_tokens / batch steps ran in decode_s.
    if (rep > 0 && st.decode_tokens > 0) step_us.push_back(st.decode_s * 1e6 * batch / double(st.decode_tokens));
  }
  engine->shutdown(/*cancel_in_flight=*/true);
  if (step_us.empty()) return Status::error("step overhead probe: no decode phase was timed");
  return median(std::move(step_us));
}

}  // namespace

Result<StepOverhead> measure_step_overhead(ExecContext& ctx, const StepOverheadOptions& o) {
  if (o.scratch_dir.empty() || o.new_tokens < 4 || o.reps < 1) {
    return Status::error("step overhead probe: needs a scratch directory, >= 4 new tokens and >= 1 rep");
  }
  constexpr int kFewLayers = 1, kManyLayers = 9, kBatch = 16, kShort = 16, kLong = 400;
  const int layers[5] = {kFewLayers, kManyLayers, kFewLayers, kManyLayers, kManyLayers};
  const int batch[5] = {1, 1, kBatch, kBatch, kBatch};
  const int prompt[5] = {kShort, kShort, kShort, kShort, kLong};
  StepOverhead r;
  Status st = Status::ok();
  for (int i = 0; i < 5 && st.is_ok(); ++i) {
    Result<double> t = probe_step_us(ctx, o, layers[i], batch[i], prompt[i]);
    if (t.is_ok()) r.probe_us[i] = *t;
    else st = t.status();
  }
  std::error_code ec;
  std::filesystem::remove_all(fmt::format("{}/probe-{}", o.scratch_dir, kFewLayers), ec);
  std::filesystem::remove_all(fmt::format("{}/probe-{}", o.scratch_dir, kManyLayers), ec);
  TERN_RETURN_IF_ERROR(st);
  // t(L, B) = step + L·layer + B·(sequence + L·sequence_layer), exact through the four points.
  const double* t = r.probe_us;
  const double dl = kManyLayers - kFewLayers, db = kBatch - 1;
  const double seq_layer = (t[3] - t[2] - t[1] + t[0]) / (dl * db);
  const double layer = (t[1] - t[0]) / dl - seq_layer;
  const double seq = (t[2] - t[0]) / db - kFewLayers * seq_layer;
  const double step = t[0] - kFewLayers * (layer + seq_layer) - seq;
  r.clamped = seq_layer < 0 || layer < 0 || seq < 0 || step < 0;
  r.sequence_layer_us = std::max(0.0, seq_layer);
  r.layer_us = std::max(0.0, layer);
  r.sequence_us = std::max(0.0, seq);
  r.step_us = std::max(0.0, step);
  // The long-context run reads (kLong − kShort) more cached tokens per sequence and layer each step:
  // bf16 K and V of one KV head, [2, kv_heads, head_dim] × 2 bytes per token per layer.
  const double extra_kv_bytes = double(kLong - kShort) * kBatch * kManyLayers * 2 * kProbeKvHeads * kProbeHeadDim * 2;
  const double extra_us = t[4] - t[3];
  r.attention_kv_gbs = extra_us > 0 ? extra_kv_bytes / (extra_us * 1e3) : 0.0;
  return r;
}

}  // namespace tern
