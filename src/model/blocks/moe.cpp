#include "model/blocks/moe.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/weight_binder.h"
#include "ops/activation.h"
#include "ops/matmul.h"

namespace tern {

namespace {

Status bind_expert(WeightBinder& b, const std::string& p, const MoeTensorNames& n, int64_t inter, int64_t hidden,
                   ExpertMlp& e) {
  TERN_ASSIGN_OR_RETURN(e.gate, b.matrix(p + n.gate + ".weight", inter, hidden));
  TERN_ASSIGN_OR_RETURN(e.up, b.matrix(p + n.up + ".weight", inter, hidden));
  TERN_ASSIGN_OR_RETURN(e.down, b.matrix(p + n.down + ".weight", hidden, inter));
  return Status::ok();
}

}  // namespace

Result<MoeWeights> bind_moe(WeightBinder& b, const ModelConfig& cfg, const std::string& prefix,
                            const MoeTensorNames& names) {
  const MoeConfig& m = cfg.moe;
  const int64_t H = cfg.hidden_size;
  MoeWeights w;
  const std::string router = prefix + names.router;
  TERN_ASSIGN_OR_RETURN(w.router, b.matrix(router + ".weight", m.n_experts, H));
  if (m.correction_bias) {
    TERN_ASSIGN_OR_RETURN(w.router_bias, b.vector_f32(router + ".e_score_correction_bias", m.n_experts));
  }
  w.experts.resize(size_t(m.n_experts));
  for (int e = 0; e < m.n_experts; ++e) {
    TERN_RETURN_IF_ERROR(bind_expert(b, fmt::format("{}{}.{}.", prefix, names.experts, e), names,
                                     m.expert_intermediate, H, w.experts[size_t(e)]));
  }
  if (m.shared_intermediate > 0) {
    if (!names.shared) return Status::error("this architecture has no shared expert, the config asks for one");
    TERN_RETURN_IF_ERROR(bind_expert(b, prefix + names.shared + ".", names, m.shared_intermediate, H, w.shared));
  }
  if (m.shared_expert_gate) {
    if (!names.shared_gate) return Status::error("this architecture has no shared expert gate");
    TERN_ASSIGN_OR_RETURN(w.shared_gate, b.matrix(prefix + names.shared_gate + ".weight", 1, H));
  }
  return w;
}

int64_t moe_bytes_per_token(const MoeWeights& w, int k) {
  auto mlp = [](const ExpertMlp& e) { return int64_t(e.gate.bytes() + e.up.bytes() + e.down.bytes()); };
  int64_t experts = 0;
  for (const ExpertMlp& e : w.experts) experts += mlp(e);
  const int64_t n = int64_t(w.experts.size());
  return int64_t(w.router.bytes()) + (n > 0 ? experts * k / n : 0) + (w.shared.present() ? mlp(w.shared) : 0) +
         int64_t(w.shared_gate.bytes());
}

MoeBlock::MoeBlock(const ModelConfig& cfg, int64_t max_rows)
    : moe_(cfg.moe), hidden_(cfg.hidden_size), max_rows_(std::max<int64_t>(1, max_rows)) {
  const size_t rows = size_t(max_rows_), E = size_t(moe_.n_experts), k = size_t(moe_.top_k);
  const size_t inter = size_t(std::max(moe_.expert_intermediate, moe_.shared_intermediate));
  logits_.resize(rows * E);
  idx_.resize(rows * k);
  weight_.resize(rows * k);
  offset_.resize(E + 1);
  order_.resize(rows * k);
  slot_w_.resize(rows * k);
  slot_present_.resize(rows * k);
  xg_.resize(rows * size_t(hidden_));
  out_.resize(rows * size_t(hidden_));
  gate_.resize(rows * inter);
  up_.resize(rows * inter);
  sgate_.resize(rows);
  const size_t decode_slots = size_t(std::min<int64_t>(max_rows_, kGroupedMaxRows)) * k;
  xs_.resize(decode_slots * size_t(hidden_));
  os_.resize(xs_.size());
  gs_.resize(decode_slots * size_t(moe_.expert_intermediate));
  us_.resize(gs_.size());
}

// out [n, hidden] = down(silu(gate x) * up x), x: [n, hidden].
void MoeBlock::run_expert(ExecContext& ctx, const ExpertMlp& e, const float* x, int64_t n, float* out,
                          const BlockStep* step, int expert) {
  const int64_t inter = e.gate.rows;
  matmul(ctx, x, n, e.gate, gate_.data());
  matmul(ctx, x, n, e.up, up_.data());
  swiglu(ctx, gate_.data(), up_.data(), n, inter, gate_.data());
  if (step) step->observe_expert(expert, LinearInput::kMlpDown, gate_.data(), n, inter);
  matmul(ctx, gate_.data(), n, e.down, out);
}

// Decode steps (c <= kGroupedMaxRows rows): the selected experts run side by side, slot by slot (slot s
// of order_ is one (row, expert) pair): gate and up of every expert in one matmul_group per distinct
// row count, one SwiGLU over all c·k slots, every down in one group per row count — a batch-1 layer
// pays three synchronisations instead of three per expert, and a batch of 16 a few more, however many
// experts it selects (an expert with more than 8 rows runs its own GEMM inside matmul_group).
// gs_/us_: [c·k, inter], xs_/os_: [c·k, hidden].
int64_t MoeBlock::run_experts_grouped(ExecContext& ctx, const MoeWeights& w, const float* x, int64_t c, float* y) {
  const int E = moe_.n_experts;
  const int64_t H = hidden_, I = moe_.expert_intermediate, slots = c * moe_.top_k;
  for (int64_t s = 0; s < slots; ++s) {
    std::memcpy(xs_.data() + s * H, x + size_t(order_[size_t(s)]) * size_t(H), size_t(H) * sizeof(float));
  }
  int64_t passes = 0;
  for (int pass = 0; pass < 2; ++pass) {  // 0: gate and up; 1: down
    for (int64_t rows = 1; rows <= c; ++rows) {
      jobs_.clear();
      for (int e = 0; e < E; ++e) {
        const int32_t s0 = offset_[size_t(e)], n = offset_[size_t(e) + 1] - s0;
        if (n != rows) continue;
        const ExpertMlp& ex = w.experts[size_t(e)];
        if (!ex.present()) continue;  // held by another rank (expert parallelism)
        if (pass == 0) {
          ++passes;
          jobs_.push_back({xs_.data() + s0 * H, &ex.gate, gs_.data() + s0 * I});
          jobs_.push_back({xs_.data() + s0 * H, &ex.up, us_.data() + s0 * I});
        } else {
          jobs_.push_back({gs_.data() + s0 * I, &ex.down, os_.data() + s0 * H});
        }
      }
      matmul_group(ctx, rows, jobs_);
    }
    if (pass == 0) swiglu(ctx, gs_.data(), us_.data(), slots, I, gs_.data());
  }
  for (int64_t s = 0; s < slots; ++s) {
    if (!slot_present_[size_t(s)]) continue;
    const float g = slot_w_[size_t(s)];
    const float* src = os_.data() + s * H;
    float* dst = y + size_t(order_[size_t(s)]) * size_t(H);
    for (int64_t h = 0; h < H; ++h) dst[h] += g * src[h];
  }
  return passes;
}

void MoeBlock::forward_routed(ExecContext& ctx, const MoeWeights& w, const float* x, int64_t c, float* y,
                              const BlockStep* step) {
  const int E = moe_.n_experts, k = moe_.top_k;
  const int64_t H = hidden_;
  // 1. Routing.
  matmul(ctx, x, c, w.router, logits_.data());
  moe_route(moe_, logits_.data(), w.router_bias.empty() ? nullptr : w.router_bias.data(), c, idx_.data(),
            weight_.data(), route_scratch_);

  // 2. Group the (row, expert) pairs by expert: offset_[e] .. offset_[e + 1] are expert e's slots.
  std::fill(offset_.begin(), offset_.end(), 0);
  for (int64_t i = 0; i < c * k; ++i) ++offset_[size_t(idx_[size_t(i)]) + 1];
  for (int e = 0; e < E; ++e) offset_[size_t(e) + 1] += offset_[size_t(e)];
  fill_.assign(offset_.begin(), offset_.end() - 1);  // next free slot per expert
  for (int64_t r = 0; r < c; ++r) {
    for (int j = 0; j < k; ++j) {
      const int32_t e = idx_[size_t(r * k + j)];
      const int32_t slot = fill_[size_t(e)]++;
      order_[size_t(slot)] = int32_t(r);
      slot_w_[size_t(slot)] = weight_[size_t(r * k + j)];
      slot_present_[size_t(slot)] = w.experts[size_t(e)].present();
    }
  }

  // 3. One pass per selected expert over its gathered rows, scattered back with their weights.
  std::fill(y, y + c * H, 0.0f);
  int64_t passes = 0;
  // Calibration observes every expert's own rows: it takes the per-expert path.
  if (c <= kGroupedMaxRows && !(step && step->observer)) {
    passes = run_experts_grouped(ctx, w, x, c, y);
  } else {
    for (int e = 0; e < E; ++e) {
      const int32_t s0 = offset_[size_t(e)], n = offset_[size_t(e) + 1] - s0;
      if (n == 0 || !w.experts[size_t(e)].present()) continue;
      ++passes;
      for (int32_t i = 0; i < n; ++i) {
        std::memcpy(xg_.data() + size_t(i) * size_t(H), x + size_t(order_[size_t(s0 + i)]) * size_t(H),
                    size_t(H) * sizeof(float));
      }
      if (step) step->observe_expert(e, LinearInput::kMlpIn, xg_.data(), n, H);
      run_expert(ctx, w.experts[size_t(e)], xg_.data(), n, out_.data(), step, e);
      for (int32_t i = 0; i < n; ++i) {
        const float g = slot_w_[size_t(s0 + i)];
        const float* src = out_.data() + size_t(i) * size_t(H);
        float* dst = y + size_t(order_[size_t(s0 + i)]) * size_t(H);
        for (int64_t h = 0; h < H; ++h) dst[h] += g * src[h];
      }
    }
  }

  ++counters_.forwards;
  counters_.rows += c;
  counters_.expert_passes += passes;
  counters_.routed_pairs += c * k;
}

void MoeBlock::add_shared(ExecContext& ctx, const MoeWeights& w, const float* x, int64_t c, float* y,
                          const BlockStep* step) {
  const int E = moe_.n_experts;
  const int64_t H = hidden_;
  // 4. Shared expert over every row.
  if (w.shared.present()) {
    // The shared expert reads x itself (observed as kMlpIn); its down input is reported as expert E.
    run_expert(ctx, w.shared, x, c, out_.data(), step, E);
    if (w.shared_gate.rows > 0) matmul(ctx, x, c, w.shared_gate, sgate_.data());
    for (int64_t r = 0; r < c; ++r) {
      const float g = w.shared_gate.rows > 0 ? 1.0f / (1.0f + std::exp(-sgate_[size_t(r)])) : 1.0f;
      const float* src = out_.data() + r * H;
      float* dst = y + r * H;
      for (int64_t h = 0; h < H; ++h) dst[h] += g * src[h];
    }
  }
}

}  // namespace tern
