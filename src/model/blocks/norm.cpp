#include "model/blocks/norm.h"

#include <cassert>

#include "ops/layer_norm.h"
#include "ops/rms_norm.h"

namespace tern {

void apply_norm(ExecContext& ctx, const NormWeights& w, float* x, const float* residual, int64_t m, int64_t d,
                float* out) {
  assert(w.present() && int64_t(w.weight.size()) == d);
  switch (w.kind) {
    case NormKind::kRms:
      rms_norm(ctx, x, residual, m, d, w.weight.data(), w.eps, out);
      return;
    case NormKind::kLayer:
      layer_norm(ctx, x, residual, m, d, w.weight.data(), w.bias.empty() ? nullptr : w.bias.data(), w.eps, out);
      return;
  }
}

}  // namespace tern
