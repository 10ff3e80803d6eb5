// CUDA backend figures (issue 7 targets), for a session that has a GPU:
//   1. HBM bandwidth probe: device-to-device copy, bytes read + written per second.
//   2. batch-1 decode tokens/s of a model (default: a synth llama-3.1-8b in bf16, generated on first
//      use), and weight bytes per token / time per token as a fraction of (1).
//   3. prefill of 8 x 1,024 tokens in one step: TFLOP/s at 2 x params x tokens.
// Usage: bench_cuda [model_dir]   (an int4 checkpoint from `tern quantize` gives the INT4 decode row)
// Without a GPU it prints why and exits 0 (CI builds it; no device there).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/cuda/cuda_model_runner.h"
#include "backend/cuda/device.h"
#include "bench_common.h"
#include "model/model.h"
#include "model/synth.h"

#if TERN_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

using namespace tern;

namespace {

#if TERN_HAVE_CUDA
double copy_bandwidth_gbs() {
  const size_t bytes = size_t(2) << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);  // warm-up
  const int reps = 10;
  cudaEventRecord(e0);
  for (int i = 0; i < reps; ++i) cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(e1);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) * reps / (ms * 1e-3) / 1e9;  // read + write
}

struct Seq {
  std::vector<int32_t> blocks;
  int64_t len = 0;
};

Status run_step(ModelRunner& r, std::vector<Seq>& seqs, int64_t n_each, int32_t& next_block, std::vector<float>& logits) {
  StepBatch b;
  for (auto& s : seqs) {
    while (int64_t(s.blocks.size()) * 16 < s.len + n_each) s.blocks.push_back(next_block++);
    for (int64_t i = 0; i < n_each; ++i) b.token_ids.push_back(int32_t((s.len + i) % 1000 + 10));
    b.seqs.push_back({s.len, n_each, s.blocks.data(), int64_t(s.blocks.size()), true});
  }
  logits.resize(seqs.size() * size_t(r.vocab_size()));
  TERN_RETURN_IF_ERROR(r.forward(b, logits.data()));
  for (auto& s : seqs) s.len += n_each;
  return Status::ok();
}
#endif

}  // namespace

int main(int argc, char** argv) {
  auto dev = cuda::probe_device(0);
  if (!dev.is_ok()) {
    std::printf("bench_cuda: skipped (%s)\n", dev.status().message().c_str());
    return 0;
  }
#if TERN_HAVE_CUDA
  std::printf("device: %s\n", cuda::describe(*dev).c_str());
  const double bw = copy_bandwidth_gbs();
  std::printf("copy bandwidth: %.0f GB/s\n", bw);

  std::string dir = argc > 1 ? argv[1] : "/tmp/tern-bench-llama-3.1-8b";
  if (argc <= 1 && !std::filesystem::exists(dir + "/config.json")) {
    ThreadPool pool(default_thread_count());
    ExecContext ctx(pool, CpuFeatures::detect());
    SynthOptions so;
    so.shape = "llama-3.1-8b";
    so.out_dir = dir;
    std::printf("writing synth llama-3.1-8b to %s ...\n", dir.c_str());
    if (Status s = synthesize(ctx, so); !s.is_ok()) return std::fprintf(stderr, "synth: %s\n", s.message().c_str()), 1;
  }
  auto model = Model::load(dir);
  if (!model.is_ok()) return std::fprintf(stderr, "%s\n", model.status().message().c_str()), 1;
  CudaRunnerOptions ro;
  ro.max_step_tokens = 8192;
  auto runner = make_cuda_model_runner(**model, ro);
  if (!runner.is_ok()) return std::fprintf(stderr, "%s\n", runner.status().message().c_str()), 1;
  ModelRunner& r = **runner;
  if (Status s = r.allocate_kv({4096, 16, KvDType::BF16}); !s.is_ok()) return std::fprintf(stderr, "%s\n", s.message().c_str()), 1;

  double weight_bytes = 0, params = 0;
  const auto& w = (*model)->weights();
  for (const auto& L : w.layers) {
    for (const WeightMatrix* m : {&L.attn.q, &L.attn.k, &L.attn.v, &L.attn.o, &L.mlp.gate, &L.mlp.up, &L.mlp.down}) {
      weight_bytes += m->dense() ? double(m->rows * m->cols) * 2 : double(m->bytes());  // bf16 on the device
      params += double(m->rows * m->cols);
    }
  }
  weight_bytes += double(w.lm_head.rows * w.lm_head.cols) * 2;
  params += double(w.lm_head.rows * w.lm_head.cols);

  int32_t next = 0;
  std::vector<float> logits;
  std::vector<Seq> one(1);
  if (Status s = run_step(r, one, 16, next, logits); !s.is_ok()) return std::fprintf(stderr, "%s\n", s.message().c_str()), 1;
  for (int i = 0; i < 4; ++i) (void)run_step(r, one, 1, next, logits);  // graph capture + warm-up
  const int steps = 128;
  double t0 = bench::now_s();
  for (int i = 0; i < steps; ++i) (void)run_step(r, one, 1, next, logits);
  const double per_tok = (bench::now_s() - t0) / steps;
  std::printf("decode batch 1: %.1f tokens/s, %.0f GB/s of weights = %.0f%% of copy bandwidth\n", 1.0 / per_tok,
              weight_bytes / per_tok / 1e9, 100.0 * weight_bytes / per_tok / 1e9 / bw);

  std::vector<Seq> eight(8);
  (void)run_step(r, eight, 1024, next, logits);  // warm-up (cuBLASLt heuristics)
  for (auto& s : eight) s = Seq{};
  t0 = bench::now_s();
  if (Status s = run_step(r, eight, 1024, next, logits); !s.is_ok()) return std::fprintf(stderr, "%s\n", s.message().c_str()), 1;
  const double tp = bench::now_s() - t0;
  std::printf("prefill 8 x 1024: %.3f s, %.0f tokens/s, %.1f TFLOP/s (2 x params x tokens)\n", tp, 8192 / tp,
              2.0 * params * 8192 / tp / 1e12);
#endif
  return 0;
}
