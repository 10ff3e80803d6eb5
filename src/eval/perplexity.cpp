#include "eval/perplexity.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "model/decoder.h"

namespace tern {

namespace {
// -log softmax(logits)[target], in double for a stable sum over tens of thousands of tokens.
double token_nll(const float* logits, int64_t vocab, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  return std::log(sum) + mx - double(logits[target]);
}
}  // namespace

Result<PerplexityResult> perplexity(const Model& model, ExecContext& ctx, const std::vector<int32_t>& tokens,
                                    const PerplexityOptions& opt, const std::function<void(int64_t, int64_t)>& on_window) {
  const ModelConfig& cfg = model.config();
  if (opt.ctx < 2) return Status::error(fmt::format("--ctx {} is too small (at least 2)", opt.ctx));
  if (cfg.max_position_embeddings > 0 && opt.ctx > cfg.max_position_embeddings) {
    return Status::error(fmt::format("--ctx {} exceeds the model's context of {}", opt.ctx, cfg.max_position_embeddings));
  }
  if (opt.max_windows < 0) return Status::error("--windows must be >= 0");
  if (opt.protocol == PplProtocol::kLlamaCpp && opt.bos_id < 0) return Status::error("llama.cpp protocol needs a BOS token");
  int64_t windows = int64_t(tokens.size()) / opt.ctx;
  if (opt.max_windows > 0) windows = std::min(windows, opt.max_windows);
  if (windows == 0) {
    return Status::error(fmt::format("the text has {} tokens, fewer than one window of {}", tokens.size(), opt.ctx));
  }
  const auto t0 = std::chrono::steady_clock::now();
  // Logits are computed in row groups so a 128K vocabulary never needs [ctx, vocab] at once.
  constexpr int64_t kRowsPerGroup = 64;
  Decoder decoder(model, std::min<int64_t>(opt.ctx, 512));
  decoder.set_observer(opt.observer);
  SequenceKvCache kv(cfg, opt.ctx, opt.kv_dtype);
  std::vector<float> hidden(size_t(opt.ctx * cfg.hidden_size));
  std::vector<float> logits(size_t(kRowsPerGroup * cfg.vocab_size));
  std::vector<int32_t> window(size_t(opt.ctx));
  // Position i predicts token i+1; scored positions are [first_scored, ctx - 1).
  const int64_t first_scored = opt.protocol == PplProtocol::kWindows ? 0 : opt.ctx / 2;
  double nll = 0;
  int64_t scored = 0;
  for (int64_t w = 0; w < windows; ++w) {
    std::copy_n(tokens.begin() + w * opt.ctx, opt.ctx, window.begin());
    if (opt.protocol == PplProtocol::kLlamaCpp) window[0] = opt.bos_id;
    kv.set_length(0);
    const int64_t n_out = opt.ctx - 1 - first_scored;
    // hidden rows are the last n_out+1 positions; the very last one predicts nothing inside the window.
    TERN_RETURN_IF_ERROR(decoder.forward(ctx, kv, window.data(), opt.ctx, n_out + 1, hidden.data()));
    for (int64_t r0 = 0; r0 < n_out; r0 += kRowsPerGroup) {
      const int64_t rows = std::min(kRowsPerGroup, n_out - r0);
      TERN_RETURN_IF_ERROR(decoder.logits(ctx, hidden.data() + r0 * cfg.hidden_size, rows, logits.data()));
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t pos = first_scored + r0 + r;
        nll += token_nll(logits.data() + r * cfg.vocab_size, cfg.vocab_size, window[size_t(pos + 1)]);
      }
      if (opt.on_logits) opt.on_logits(logits.data(), rows, window.data() + first_scored + r0 + 1);
      scored += rows;
    }
    if (on_window) on_window(w + 1, windows);
  }
  PerplexityResult res;
  res.mean_nll = nll / double(scored);
  res.ppl = std::exp(res.mean_nll);
  res.tokens_scored = scored;
  res.windows = windows;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace tern
