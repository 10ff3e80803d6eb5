#include "backend/cuda/cuda_weights.h"

#if TERN_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "backend/cuda/memory_plan.h"
#include "core/dtype.h"

namespace tern::cuda {
namespace {

// Walks every tensor twice: once to size the arena (dst == nullptr), once to copy into it.
class Uploader {
 public:
  explicit Uploader(char* base) : base_(base) {}
  Status error() const { return status_; }
  size_t total() const { return plan_.total(); }

  const void* raw(const void* src, size_t bytes) {
    const size_t off = plan_.add(bytes);
    if (!base_ || !status_.is_ok()) return nullptr;
    if (cudaError_t e = cudaMemcpy(base_ + off, src, bytes, cudaMemcpyHostToDevice); e != cudaSuccess)
      status_ = Status::error(std::string("weight upload: ") + cudaGetErrorString(e));
    return base_ + off;
  }
  const float* vec(const std::vector<float>& v) {
    return v.empty() ? nullptr : static_cast<const float*>(raw(v.data(), v.size() * 4));
  }
  // Dense matrix as bf16 (converted on the host in row chunks, so no model-sized host copy).
  const void* bf16(const WeightMatrix& m) {
    const size_t n = size_t(m.rows) * size_t(m.cols);
    const size_t off = plan_.add(n * 2);
    if (!base_ || !status_.is_ok()) return nullptr;
    if (m.dtype == DType::BF16) return raw_at(off, m.data, n * 2);
    std::vector<uint16_t> buf;
    const size_t chunk = size_t(1) << 22;
    for (size_t i = 0; i < n && status_.is_ok(); i += chunk) {
      const size_t c = std::min(chunk, n - i);
      buf.resize(c);
      for (size_t j = 0; j < c; ++j) buf[j] = f32_to_bf16(load_as_f32(m.data, m.dtype, i + j));
      raw_at(off + i * 2, buf.data(), c * 2);
    }
    return base_ + off;
  }

 private:
  const void* raw_at(size_t off, const void* src, size_t bytes) {
    if (cudaError_t e = cudaMemcpy(base_ + off, src, bytes, cudaMemcpyHostToDevice); e != cudaSuccess)
      status_ = Status::error(std::string("weight upload: ") + cudaGetErrorString(e));
    return base_ + off;
  }
  char* base_;
  ArenaPlan plan_;
  Status status_;
};

Status linear(Uploader& up, const WeightMatrix& m, const std::vector<float>* bias, DevLinear& out, const char* name) {
  GemvWeight& g = out.w;
  g.n = m.rows;
  g.k = m.cols;
  if (m.cols % 8 != 0) return Status::error(std::string(name) + ": in_features must be a multiple of 8 on CUDA");
  switch (m.format) {
    case WeightFormat::Dense:
      if (!dtype_is_float(m.dtype)) return Status::error(std::string(name) + ": unsupported dense dtype");
      g.kind = GemvWeight::BF16;
      g.data = up.bf16(m);
      break;
    case WeightFormat::Int8Channel:
    case WeightFormat::Fp8E4M3:
      // W8A8 checkpoints run as W8A16 here: x stays f32 (at least as accurate as the CPU's int8 x).
      g.kind = m.format == WeightFormat::Fp8E4M3 ? GemvWeight::FP8 : GemvWeight::INT8;
      g.data = up.raw(m.data, size_t(m.rows) * size_t(m.cols));
      g.scales = static_cast<const float*>(up.raw(m.scales, size_t(m.rows) * 4));
      break;
    case WeightFormat::Int4Group: {
      if (m.group < 32 || m.group % 32 != 0 || m.cols % m.group != 0)
        return Status::error(std::string(name) + ": int4 group must be a multiple of 32 dividing in_features");
      if (m.col_perm)
        return Status::error(std::string(name) + ": act-order (desc_act) int4 weights are not supported on CUDA yet");
      const size_t ns = size_t(m.rows) * size_t(m.cols / m.group);
      g.kind = GemvWeight::INT4;
      g.group = m.group;
      g.data = up.raw(m.data, size_t(m.rows) * size_t(m.cols) / 2);
      g.scales = static_cast<const float*>(up.raw(m.scales, ns * 4));
      g.zeros = m.zeros ? static_cast<const float*>(up.raw(m.zeros, ns * 4)) : nullptr;
      break;
    }
    default:
      return Status::error(std::string(name) + ": GGUF block and sparse weights are not supported by the CUDA backend yet");
  }
  out.bias = bias ? up.vec(*bias) : nullptr;
  return up.error();
}

Status walk(const Model& model, Uploader& up, DevWeights& out) {
  const TransformerWeights& w = model.weights();
  const ModelConfig& cfg = model.config();
  if (!w.embed.dense() || !dtype_is_float(w.embed.dtype))
    return Status::error("CUDA backend: the embedding table must be dense f32/f16/bf16");
  out.embed = up.raw(w.embed.data, w.embed.bytes());
  out.embed_type = w.embed.dtype == DType::BF16 ? DenseType::BF16
                   : w.embed.dtype == DType::F16 ? DenseType::F16 : DenseType::F32;
  TERN_RETURN_IF_ERROR(linear(up, w.lm_head, nullptr, out.lm_head, "lm_head"));
  out.final_norm = up.vec(w.final_norm.weight);
  out.inv_freq = up.vec(model.rope_inv_freq());
  out.rotary_dim = int(model.rope_inv_freq().size() * 2);
  // The CUDA runner implements the Llama-shaped blocks only: refuse, by name, any other block.
  auto refuse = [](const std::string& what) {
    return Status::error("CUDA backend: " + what + " is not implemented (run this model on the CPU)");
  };
  if (w.pos_embed.data) return refuse("learned absolute position embeddings");
  if (w.embed_scale != 1.f) return refuse("embedding scaling");
  if (w.final_logit_softcap > 0) return refuse("final logit soft-capping");
  if (w.final_norm.kind != NormKind::kRms) return refuse("LayerNorm");
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const DecoderLayerWeights& L = w.layers[i];
    if (L.moe) return refuse("the mixture-of-experts block");
    if (L.mla) return refuse("multi-head latent attention");
    if (L.attn_norm.kind != NormKind::kRms || L.ffn_norm.kind != NormKind::kRms) return refuse("LayerNorm");
    if (L.attn_out_norm.present() || L.ffn_out_norm.present()) return refuse("output norms (gemma2, glm4)");
    if (L.attn.rope != RopeLayout::kHalf) return refuse("this rotary embedding layout");
    if (L.attn.softcap > 0) return refuse("attention logit soft-capping");
    if (L.attn.scale > 0 && L.attn.scale != 1.0f / std::sqrt(float(cfg.head_dim)))
      return refuse("query pre-attention scaling");
    if (!L.attn.o_bias.empty()) return refuse("an output projection bias");
    if (!L.mlp.gated || L.mlp.act != Activation::kSilu) return refuse("a feed-forward other than SwiGLU");
    if (!L.mlp.up_bias.empty() || !L.mlp.down_bias.empty()) return refuse("feed-forward biases");
  }
  out.layers.assign(w.layers.size(), DevLayer{});
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const DecoderLayerWeights& L = w.layers[i];
    DevLayer& d = out.layers[i];
    d.input_norm = up.vec(L.attn_norm.weight);
    d.post_attn_norm = up.vec(L.ffn_norm.weight);
    d.q_norm = up.vec(L.attn.q_norm.weight);
    d.k_norm = up.vec(L.attn.k_norm.weight);
    d.sliding_window = L.attn.sliding_window;
    auto b = [](const std::vector<float>& v) { return v.empty() ? nullptr : &v; };
    TERN_RETURN_IF_ERROR(linear(up, L.attn.q, b(L.attn.q_bias), d.q, "q_proj"));
    TERN_RETURN_IF_ERROR(linear(up, L.attn.k, b(L.attn.k_bias), d.k, "k_proj"));
    TERN_RETURN_IF_ERROR(linear(up, L.attn.v, b(L.attn.v_bias), d.v, "v_proj"));
    TERN_RETURN_IF_ERROR(linear(up, L.attn.o, nullptr, d.o, "o_proj"));
    TERN_RETURN_IF_ERROR(linear(up, L.mlp.gate, nullptr, d.gate, "gate_proj"));
    TERN_RETURN_IF_ERROR(linear(up, L.mlp.up, nullptr, d.up, "up_proj"));
    TERN_RETURN_IF_ERROR(linear(up, L.mlp.down, nullptr, d.down, "down_proj"));
  }
  if (cfg.hidden_act != "silu") return Status::error("CUDA backend: only SiLU-gated MLPs (hidden_act silu) for now");
  return up.error();
}

}  // namespace

DevWeights::~DevWeights() {
  if (base) cudaFree(base);
}

Result<size_t> device_weight_bytes(const Model& model) {
  Uploader sizing(nullptr);
  DevWeights scratch;
  TERN_RETURN_IF_ERROR(walk(model, sizing, scratch));
  return sizing.total();
}

Status upload_weights(const Model& model, DevWeights& out) {
  TERN_ASSIGN_OR_RETURN(size_t bytes, device_weight_bytes(model));
  void* base = nullptr;
  if (cudaError_t e = cudaMalloc(&base, bytes); e != cudaSuccess)
    return Status::error(std::string("weights: cudaMalloc of ") + std::to_string(bytes) + " bytes: " +
                         cudaGetErrorString(e));
  out.base = base;
  out.bytes = bytes;
  Uploader up(static_cast<char*>(base));
  return walk(model, up, out);
}

}  // namespace tern::cuda
#endif
