#include "backend/cuda/cuda_model_runner.h"

#if TERN_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_weights.h"
#include "backend/cuda/device.h"
#include "backend/cuda/graph_buckets.h"
#include "backend/cuda/memory_plan.h"
#include "backend/cuda/step_pack.h"

namespace tern {
namespace {

using namespace tern::cuda;

Status cu(cudaError_t e, const char* what) {
  return e == cudaSuccess ? Status::ok() : Status::error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

class CudaModelRunner final : public ModelRunner {
 public:
  CudaModelRunner(const Model& model, const CudaRunnerOptions& opt) : model_(&model), cfg_(model.config()), opt_(opt) {}
  ~CudaModelRunner() override {
    for (auto& g : graphs_) {
      if (g) cudaGraphExecDestroy(g);
    }
    if (kv_base_) cudaFree(kv_base_);
    if (ws_base_) cudaFree(ws_base_);
    if (host_logits_) cudaFreeHost(host_logits_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status init() {
    TERN_ASSIGN_OR_RETURN(dev_, probe_device(opt_.device));
    TERN_ASSIGN_OR_RETURN(size_t wbytes, device_weight_bytes(*model_));
    opt_.max_logit_rows = std::max(opt_.max_logit_rows, opt_.max_graph_batch);
    opt_.max_step_tokens = std::max(opt_.max_step_tokens, opt_.max_graph_batch);
    WorkspaceSpec ws;
    ws.max_tokens = opt_.max_step_tokens;
    ws.max_logit_rows = opt_.max_logit_rows;
    layout_ = plan_workspace(cfg_, ws);
    TERN_RETURN_IF_ERROR(check_fits("weights + workspace", wbytes + layout_.total, dev_.free_bytes));
    TERN_RETURN_IF_ERROR(upload_weights(*model_, w_));
    TERN_RETURN_IF_ERROR(cu(cudaMalloc(&ws_base_, layout_.total), "workspace cudaMalloc"));
    TERN_RETURN_IF_ERROR(cu(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream"));
    TERN_RETURN_IF_ERROR(cu(cudaMallocHost(reinterpret_cast<void**>(&host_logits_), size_t(opt_.max_logit_rows) * size_t(cfg_.vocab_size) * 4),
                            "pinned logits"));
    TERN_RETURN_IF_ERROR(lt_.init(at<void>(layout_.gemm), WorkspaceSpec{}.gemm_workspace));
    buckets_ = decode_graph_buckets(opt_.max_graph_batch);
    graphs_.assign(buckets_.size(), nullptr);
    return Status::ok();
  }

  int64_t vocab_size() const override { return cfg_.vocab_size; }
  // Configs without max_position_embeddings get the same 2048 fallback tern serve uses.
  int64_t max_context() const override {
    return cfg_.max_position_embeddings > 0 ? cfg_.max_position_embeddings : 2048;
  }
  size_t kv_block_bytes(int block_size, KvDType) const override { return cuda_kv_block_bytes(cfg_, block_size); }

  Status allocate_kv(const KvPoolSpec& spec) override {
    if (kv_base_) return Status::error("allocate_kv: the KV pool is already allocated");
    if (spec.dtype != KvDType::BF16) return Status::error("CUDA backend: KV cache dtype must be bf16 for now");
    if (spec.block_size <= 0 || spec.num_blocks <= 0) return Status::error("allocate_kv: empty pool");
    lim_.block_size = spec.block_size;
    lim_.num_blocks = spec.num_blocks;
    lim_.max_blocks = int((max_context() + spec.block_size - 1) / spec.block_size);
    lim_.max_tokens = opt_.max_step_tokens;
    lim_.max_seqs = opt_.max_step_tokens;
    lim_.vocab = cfg_.vocab_size;
    lim_.max_logit_rows = opt_.max_logit_rows;
    layer_bytes_ = cuda_kv_block_bytes(cfg_, spec.block_size) / size_t(cfg_.n_layers) / 2 * size_t(spec.num_blocks);
    const size_t bt_bytes = size_t(lim_.max_seqs) * size_t(lim_.max_blocks) * 4;
    const size_t need = layer_bytes_ * 2 * size_t(cfg_.n_layers) + bt_bytes;
    size_t free_b = 0, total_b = 0;
    TERN_RETURN_IF_ERROR(cu(cudaMemGetInfo(&free_b, &total_b), "memory info"));
    TERN_RETURN_IF_ERROR(check_fits("KV pool", need, free_b));
    TERN_RETURN_IF_ERROR(cu(cudaMalloc(&kv_base_, need), "KV pool cudaMalloc"));
    block_tables_ = reinterpret_cast<int32_t*>(static_cast<char*>(kv_base_) + layer_bytes_ * 2 * size_t(cfg_.n_layers));
    return Status::ok();
  }

  Status forward(const StepBatch& batch, float* logits) override {
    if (!kv_base_) return Status::error("forward: allocate_kv first");
    if (int64_t(batch.token_ids.size()) > opt_.max_step_tokens) {  // more rows than the workspace: in pieces
      const std::vector<StepBatch> parts = split_step(batch, opt_.max_step_tokens);
      int64_t kept = 0;
      for (const StepBatch& part : parts) kept += logit_rows(part.seqs);
      if (kept != logit_rows(batch.seqs))  // a speculative sequence cut across pieces
        return Status::error("CUDA runner: speculative verification rows of one sequence span two workspace pieces "
                             "(raise max_step_tokens)");
      for (const StepBatch& part : parts) {
        TERN_RETURN_IF_ERROR(forward_part(part, logits));
        logits += logit_rows(part.seqs) * cfg_.vocab_size;
      }
      return Status::ok();
    }
    return forward_part(batch, logits);
  }

 private:
  Status forward_part(const StepBatch& batch, float* logits) {
    TERN_RETURN_IF_ERROR(pack_step(batch, lim_, step_));
    const int64_t n_real = step_.n_seqs;
    const int bucket = step_.decode_only && opt_.use_graphs ? choose_graph_bucket(buckets_, n_real) : -1;
    if (bucket >= 0) {
      pad_decode_step(step_, buckets_[size_t(bucket)], lim_.max_blocks);
      std::vector<int32_t> wanted = step_.logit_rows;
      step_.logit_rows.resize(size_t(step_.n_seqs));
      for (int64_t i = 0; i < step_.n_seqs; ++i) step_.logit_rows[size_t(i)] = int32_t(i);
      TERN_RETURN_IF_ERROR(upload_inputs());
      TERN_RETURN_IF_ERROR(run_graph(bucket));
      TERN_RETURN_IF_ERROR(copy_logits(step_.n_seqs));
      for (size_t r = 0; r < wanted.size(); ++r)
        std::memcpy(logits + r * size_t(cfg_.vocab_size), host_logits_ + size_t(wanted[r]) * size_t(cfg_.vocab_size),
                    size_t(cfg_.vocab_size) * 4);
      return Status::ok();
    }
    TERN_RETURN_IF_ERROR(upload_inputs());
    const int splits = step_.decode_only ? decode_attention_splits(n_real, cfg_.n_heads, dev_.sm_count, max_context()) : 1;
    TERN_RETURN_IF_ERROR(body(int64_t(step_.ids.size()), int64_t(step_.logit_rows.size()), splits));
    TERN_RETURN_IF_ERROR(copy_logits(int64_t(step_.logit_rows.size())));
    std::memcpy(logits, host_logits_, step_.logit_rows.size() * size_t(cfg_.vocab_size) * 4);
    return Status::ok();
  }

  template <typename T>
  T* at(size_t off) const { return reinterpret_cast<T*>(static_cast<char*>(ws_base_) + off); }

  Status upload_inputs() {
    auto put = [&](size_t off, const std::vector<int32_t>& v) {
      return cudaMemcpyAsync(at<char>(off), v.data(), v.size() * 4, cudaMemcpyHostToDevice, stream_);
    };
    cudaError_t e = put(layout_.ids, step_.ids);
    if (e == cudaSuccess) e = put(layout_.pos, step_.pos);
    if (e == cudaSuccess) e = put(layout_.seq, step_.seq);
    if (e == cudaSuccess) e = put(layout_.logit_rows, step_.logit_rows);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(block_tables_, step_.block_tables.data(), step_.block_tables.size() * 4,
                          cudaMemcpyHostToDevice, stream_);
    return cu(e, "step input upload");
  }

  Status copy_logits(int64_t rows) {
    TERN_RETURN_IF_ERROR(cu(cudaMemcpyAsync(host_logits_, at<float>(layout_.logits), size_t(rows) * size_t(cfg_.vocab_size) * 4,
                                            cudaMemcpyDeviceToHost, stream_), "logits copy"));
    return cu(cudaStreamSynchronize(stream_), "step");
  }

  Status run_graph(int bucket) {
    if (!graphs_[size_t(bucket)]) {
      const int64_t n = buckets_[size_t(bucket)];
      const int splits = decode_attention_splits(n, cfg_.n_heads, dev_.sm_count, max_context());
      TERN_RETURN_IF_ERROR(cu(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "graph capture"));
      Status s = body(n, n, splits);
      cudaGraph_t g = nullptr;
      cudaError_t e = cudaStreamEndCapture(stream_, &g);
      TERN_RETURN_IF_ERROR(s);
      TERN_RETURN_IF_ERROR(cu(e, "graph capture end"));
      e = cudaGraphInstantiate(&graphs_[size_t(bucket)], g, 0);
      cudaGraphDestroy(g);
      TERN_RETURN_IF_ERROR(cu(e, "graph instantiate"));
    }
    return cu(cudaGraphLaunch(graphs_[size_t(bucket)], stream_), "graph launch");
  }

  // y[t, n] = x[t, k] · Wᵀ: GEMV (<= 8 rows at a time, every format) or cuBLASLt for dense prefill.
  Status linear(const DevLinear& L, const float* x, int64_t t, float* y) {
    if (L.dense() && t > 8) {
      TERN_RETURN_IF_ERROR(cu(to_bf16(x, DenseType::F32, t * L.w.k, at<uint16_t>(layout_.act_bf16), stream_), "to_bf16"));
      TERN_RETURN_IF_ERROR(lt_.gemm(at<uint16_t>(layout_.act_bf16), static_cast<const uint16_t*>(L.w.data), y, t, L.w.n,
                                    L.w.k, false, stream_));
      return L.bias ? cu(add_bias(y, L.bias, t, L.w.n, stream_), "bias") : Status::ok();
    }
    for (int64_t r = 0; r < t; r += 8) {
      const int64_t b = std::min<int64_t>(8, t - r);
      TERN_RETURN_IF_ERROR(cu(gemv(L.w, x + r * L.w.k, b, L.bias, y + r * L.w.n, stream_), "gemv"));
    }
    return Status::ok();
  }

  // The whole step on stream_: t token rows, r logit rows, attention split `splits` ways.
  Status body(int64_t t, int64_t r, int splits) {
    splits = int(std::max<int64_t>(1, std::min<int64_t>(splits, layout_.partial_units / std::max<int64_t>(1, t * cfg_.n_heads))));
    const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size;
    const int nh = cfg_.n_heads, nkv = cfg_.n_kv_heads, hd = cfg_.head_dim;
    const float eps = float(cfg_.rms_norm_eps);
    float *x = at<float>(layout_.x), *xn = at<float>(layout_.xn), *q = at<float>(layout_.q), *k = at<float>(layout_.k),
          *v = at<float>(layout_.v), *attn = at<float>(layout_.attn), *gate = at<float>(layout_.gate),
          *up = at<float>(layout_.up);
    const int32_t* pos = at<int32_t>(layout_.pos);
    StepTokens st{pos, at<int32_t>(layout_.seq), block_tables_, lim_.max_blocks, t};
    TERN_RETURN_IF_ERROR(cu(embedding(w_.embed, w_.embed_type, at<int32_t>(layout_.ids), t, H, x, stream_), "embedding"));
    const float* residual = nullptr;  // the previous block's output, added into x by the fused norm
    for (size_t l = 0; l < w_.layers.size(); ++l) {
      const DevLayer& L = w_.layers[l];
      TERN_RETURN_IF_ERROR(cu(rms_norm(x, residual, t, H, L.input_norm, eps, xn, stream_), "rms_norm"));
      TERN_RETURN_IF_ERROR(linear(L.q, xn, t, q));
      TERN_RETURN_IF_ERROR(linear(L.k, xn, t, k));
      TERN_RETURN_IF_ERROR(linear(L.v, xn, t, v));
      if (L.q_norm) {
        TERN_RETURN_IF_ERROR(cu(rms_norm(q, nullptr, t * nh, hd, L.q_norm, eps, q, stream_), "q_norm"));
        TERN_RETURN_IF_ERROR(cu(rms_norm(k, nullptr, t * nkv, hd, L.k_norm, eps, k, stream_), "k_norm"));
      }
      TERN_RETURN_IF_ERROR(cu(rope(q, t, nh, hd, w_.rotary_dim, pos, w_.inv_freq, stream_), "rope"));
      TERN_RETURN_IF_ERROR(cu(rope(k, t, nkv, hd, w_.rotary_dim, pos, w_.inv_freq, stream_), "rope"));
      char* kv_layer = static_cast<char*>(kv_base_) + layer_bytes_ * 2 * l;
      PagedKv kv{reinterpret_cast<uint16_t*>(kv_layer), reinterpret_cast<uint16_t*>(kv_layer + layer_bytes_),
                 lim_.block_size, nkv, hd};
      TERN_RETURN_IF_ERROR(cu(kv_write(kv, st, k, v, stream_), "kv_write"));
      TERN_RETURN_IF_ERROR(cu(paged_attention(kv, st, q, nh, L.sliding_window, 1.0f / std::sqrt(float(hd)), splits,
                                              at<float>(layout_.partial), attn, stream_), "attention"));
      TERN_RETURN_IF_ERROR(linear(L.o, attn, t, xn));  // xn now holds the attention output
      TERN_RETURN_IF_ERROR(cu(rms_norm(x, xn, t, H, L.post_attn_norm, eps, xn, stream_), "rms_norm"));
      TERN_RETURN_IF_ERROR(linear(L.gate, xn, t, gate));
      TERN_RETURN_IF_ERROR(linear(L.up, xn, t, up));
      TERN_RETURN_IF_ERROR(cu(swiglu(gate, up, t * I, gate, stream_), "swiglu"));
      TERN_RETURN_IF_ERROR(linear(L.down, gate, t, xn));
      residual = xn;
    }
    TERN_RETURN_IF_ERROR(cu(rms_norm(x, residual, t, H, w_.final_norm, eps, xn, stream_), "final norm"));
    float* sel = at<float>(layout_.sel);
    TERN_RETURN_IF_ERROR(cu(gather_rows(xn, at<int32_t>(layout_.logit_rows), r, H, sel, stream_), "gather"));
    return linear(w_.lm_head, sel, r, at<float>(layout_.logits));
  }

  const Model* model_;
  const ModelConfig& cfg_;
  CudaRunnerOptions opt_;
  DeviceInfo dev_;
  DevWeights w_;
  WorkspaceLayout layout_;
  PackLimits lim_;
  PackedStep step_;
  LtGemm lt_;
  void* ws_base_ = nullptr;
  void* kv_base_ = nullptr;
  int32_t* block_tables_ = nullptr;
  size_t layer_bytes_ = 0;  // bytes of K (or V) of one layer
  float* host_logits_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::vector<int64_t> buckets_;
  std::vector<cudaGraphExec_t> graphs_;
};

}  // namespace

Result<std::unique_ptr<ModelRunner>> make_cuda_model_runner(const Model& model, const CudaRunnerOptions& opt) {
  auto r = std::make_unique<CudaModelRunner>(model, opt);
  TERN_RETURN_IF_ERROR(r->init());
  return std::unique_ptr<ModelRunner>(std::move(r));
}

}  // namespace tern
#else
#include "backend/cuda/device.h"

namespace tern {
Result<std::unique_ptr<ModelRunner>> make_cuda_model_runner(const Model&, const CudaRunnerOptions&) {
  return cuda::probe_device(0).status();
}
}  // namespace tern
#endif
