#include "model/ep_shard.h"

#include <fmt/format.h>

#include "model/blocks/moe.h"
#include "model/tp_slice.h"

namespace tern {

Result<TpRange> ep_expert_range(const ModelConfig& cfg, int rank, int size) {
  if (!cfg.moe.enabled()) {
    return Status::error(fmt::format("--ep {}: config.json has no mixture-of-experts layers (expert parallelism "
                                     "splits routed experts)", size));
  }
  if (cfg.moe.n_experts < size) {
    return Status::error(fmt::format("--ep {}: config.json has {} routed experts, fewer than the ranks", size,
                                     cfg.moe.n_experts));
  }
  return split_range(cfg.moe.n_experts, size, rank);
}

TransformerWeights ep_shard(const TransformerWeights& full, TpRange mine, bool keep_shared) {
  TransformerWeights w = full;
  for (DecoderLayerWeights& l : w.layers) {
    if (!l.moe) continue;
    auto moe = std::make_shared<MoeWeights>(*l.moe);
    for (size_t e = 0; e < moe->experts.size(); ++e) {
      if (int64_t(e) >= mine.begin && int64_t(e) < mine.end) continue;
      ExpertMlp& x = moe->experts[e];
      release_pages(x.gate), release_pages(x.up), release_pages(x.down);
      x = ExpertMlp{};
    }
    if (!keep_shared) {
      release_pages(moe->shared.gate), release_pages(moe->shared.up), release_pages(moe->shared.down);
      moe->shared = ExpertMlp{};
    }
    l.moe = std::move(moe);
  }
  return w;
}

}  // namespace tern
