#include "backend/cuda/memory_plan.h"

#include <algorithm>
#include <cstdio>

namespace tern::cuda {

WorkspaceLayout plan_workspace(const ModelConfig& cfg, const WorkspaceSpec& spec) {
  ArenaPlan a;
  WorkspaceLayout l;
  const size_t T = size_t(std::max<int64_t>(spec.max_tokens, 1)), R = size_t(std::max<int64_t>(spec.max_logit_rows, 1));
  const size_t hidden = size_t(cfg.hidden_size), inter = size_t(cfg.intermediate_size);
  const size_t qw = size_t(cfg.n_heads) * size_t(cfg.head_dim), kw = size_t(cfg.n_kv_heads) * size_t(cfg.head_dim);
  l.ids = a.add(T * 4);
  l.pos = a.add(T * 4);
  l.seq = a.add(T * 4);
  l.logit_rows = a.add(R * 4);
  l.argmax = a.add(R * 4);
  l.x = a.add(T * hidden * 4);
  l.xn = a.add(T * hidden * 4);
  l.q = a.add(T * qw * 4);
  l.k = a.add(T * kw * 4);
  l.v = a.add(T * kw * 4);
  l.attn = a.add(T * qw * 4);
  l.gate = a.add(T * inter * 4);
  l.up = a.add(T * inter * 4);
  l.act_bf16 = a.add(T * std::max({hidden, inter, qw}) * 2);
  // Prefill uses 1 split per (token, head); decode uses many splits over few tokens: size for the larger.
  l.partial_units = int64_t(std::max(T, size_t(std::max(spec.max_splits, 1))) * size_t(cfg.n_heads) + 4096);
  l.partial = a.add(size_t(l.partial_units) * (size_t(cfg.head_dim) + 2) * 4);
  l.sel = a.add(R * hidden * 4);
  l.logits = a.add(R * size_t(cfg.vocab_size) * 4);
  l.gemm = a.add(spec.gemm_workspace);
  l.total = a.total();
  return l;
}

size_t cuda_kv_block_bytes(const ModelConfig& cfg, int block_size) {
  return size_t(2) * size_t(cfg.n_layers) * size_t(block_size) * size_t(cfg.n_kv_heads) * size_t(cfg.head_dim) * 2;
}

Status check_fits(const std::string& what, size_t need, size_t free_bytes) {
  if (need <= free_bytes) return Status::ok();
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s needs %.2f GiB of device memory, %.2f GiB free", what.c_str(),
                double(need) / double(1ull << 30), double(free_bytes) / double(1ull << 30));
  return Status::error(buf);
}

}  // namespace tern::cuda
