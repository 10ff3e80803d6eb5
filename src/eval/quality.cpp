#include "eval/quality.h"

#include <fmt/format.h>

namespace tern {

Result<BaseLogits> record_base_logits(const Model& model, ExecContext& ctx, const std::vector<int32_t>& tokens,
                                      const PerplexityOptions& options, int topk,
                                      const std::function<void(int64_t, int64_t)>& on_window) {
  if (topk < 1) return Status::error(fmt::format("top-k {} must be at least 1", topk));
  BaseLogits b;
  BaseLogitsRecorder rec(b, model.config().vocab_size, topk);
  PerplexityOptions opt = options;
  opt.on_logits = [&](const float* logits, int64_t rows, const int32_t* targets) { rec.add(logits, rows, targets); };
  TERN_ASSIGN_OR_RETURN(PerplexityResult r, perplexity(model, ctx, tokens, opt, on_window));
  b.protocol = options.protocol == PplProtocol::kLlamaCpp ? 1 : 0;
  b.ctx = uint64_t(options.ctx);
  b.windows = uint64_t(r.windows);
  b.tokens_hash = hash_tokens(tokens);
  return b;
}

Result<QualityResult> compare_with_base(const Model& model, ExecContext& ctx, const std::vector<int32_t>& tokens,
                                        const PerplexityOptions& options, const BaseLogits& base,
                                        const std::function<void(int64_t, int64_t)>& on_window) {
  const uint32_t protocol = options.protocol == PplProtocol::kLlamaCpp ? 1 : 0;
  if (base.tokens_hash != hash_tokens(tokens)) {
    return Status::error("the base logits were computed on a different text (token hash differs)");
  }
  if (base.ctx != uint64_t(options.ctx) || base.protocol != protocol) {
    return Status::error(fmt::format("the base logits were computed with ctx {} / protocol {}, this run uses ctx {} / {}",
                                     base.ctx, base.protocol ? "llama.cpp" : "tern", options.ctx,
                                     protocol ? "llama.cpp" : "tern"));
  }
  if (base.vocab != uint32_t(model.config().vocab_size)) {
    return Status::error(fmt::format("the base model's vocabulary ({}) differs from this model's ({})", base.vocab,
                                     model.config().vocab_size));
  }
  KlAccumulator acc(base);
  Status status;
  PerplexityOptions opt = options;
  const int64_t vocab = model.config().vocab_size;
  opt.on_logits = [&](const float* logits, int64_t rows, const int32_t*) {
    if (status.is_ok()) status = acc.add(logits, rows, vocab);
  };
  QualityResult q;
  TERN_ASSIGN_OR_RETURN(q.ppl, perplexity(model, ctx, tokens, opt, on_window));
  TERN_RETURN_IF_ERROR(status);
  if (uint64_t(q.ppl.windows) != base.windows) {
    return Status::error(fmt::format("this run scored {} windows, the base {}", q.ppl.windows, base.windows));
  }
  TERN_ASSIGN_OR_RETURN(q.kl, acc.finish());
  q.base_ppl = base.base_ppl();
  return q;
}

}  // namespace tern
