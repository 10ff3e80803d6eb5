#include "model/blocks/moe_router.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tern {

namespace {

// The k largest of v[0, n) (excluding none), descending, ties to the lower index; k <= n, O(k·n),
// which beats sorting for the k <= 8 of real models over n <= 256 experts.
void top_k(const float* v, int n, int k, int32_t* out) {
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int e = 0; e < n; ++e) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken |= out[i] == e;
      if (!taken && (best < 0 || v[e] > v[best])) best = e;
    }
    out[j] = best;
  }
}

void route_softmax(const MoeConfig& cfg, const float* logits, int32_t* idx, float* w, float* p) {
  const int E = cfg.n_experts, k = cfg.top_k;
  float mx = -std::numeric_limits<float>::infinity();
  for (int e = 0; e < E; ++e) mx = std::max(mx, logits[e]);
  double sum = 0;
  for (int e = 0; e < E; ++e) sum += p[e] = std::exp(logits[e] - mx);
  for (int e = 0; e < E; ++e) p[e] = float(p[e] / sum);
  top_k(p, E, k, idx);
  double chosen = 0;
  for (int j = 0; j < k; ++j) chosen += w[j] = p[idx[j]];
  if (cfg.norm_topk_prob) {
    for (int j = 0; j < k; ++j) w[j] = float(w[j] / chosen);
  }
}

// s, c, gs: [E] floats; keep: [n_group].
void route_sigmoid(const MoeConfig& cfg, const float* logits, const float* bias, int32_t* idx, float* w, float* s,
                   float* c, float* gs, int32_t* keep) {
  const int E = cfg.n_experts, k = cfg.top_k;
  for (int e = 0; e < E; ++e) {
    s[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    c[e] = cfg.correction_bias && bias ? s[e] + bias[e] : s[e];
  }
  if (cfg.n_group > 1) {
    const int per = E / cfg.n_group;
    const int G = cfg.n_group;
    for (int g = 0; g < G; ++g) {
      int32_t two[2];
      top_k(c + g * per, per, 2, two);
      gs[g] = c[g * per + two[0]] + c[g * per + two[1]];
    }
    top_k(gs, G, cfg.topk_group, keep);
    for (int g = 0; g < G; ++g) {
      bool kept = false;
      for (int i = 0; i < cfg.topk_group; ++i) kept |= keep[i] == g;
      if (!kept) {
        for (int e = g * per; e < (g + 1) * per; ++e) c[e] = 0.0f;
      }
    }
  }
  top_k(c, E, k, idx);
  double chosen = 0;
  for (int j = 0; j < k; ++j) chosen += w[j] = s[idx[j]];
  const double scale = cfg.routed_scaling_factor / (cfg.norm_topk_prob ? chosen + 1e-20 : 1.0);
  for (int j = 0; j < k; ++j) w[j] = float(w[j] * scale);
}

}  // namespace

void moe_route(const MoeConfig& cfg, const float* logits, const float* bias, int64_t rows, int32_t* idx,
               float* weight, MoeRouteScratch& scratch) {
  const int E = cfg.n_experts, k = cfg.top_k;
  if (scratch.f.size() < size_t(3 * E)) scratch.f.resize(size_t(3 * E));
  if (scratch.i.size() < size_t(cfg.n_group)) scratch.i.resize(size_t(cfg.n_group));
  float* f = scratch.f.data();
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits + r * E;
    if (cfg.scoring == MoeScoring::kSoftmax) {
      route_softmax(cfg, l, idx + r * k, weight + r * k, f);
    } else {
      route_sigmoid(cfg, l, bias, idx + r * k, weight + r * k, f, f + E, f + 2 * E, scratch.i.data());
    }
  }
}

}  // namespace tern
