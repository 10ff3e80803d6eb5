#include "speculative_args.h"

#include <fmt/format.h>

#include "engine/draft_model_drafter.h"

namespace tern::cli {

void add_speculative_options(CLI::App& cmd, SpeculativeArgs& a) {
  cmd.add_option("--speculative", a.method, "speculative decoding: none, ngram (prompt lookup) or draft (--draft-model)");
  cmd.add_option("--draft-model", a.draft_model, "draft model directory for --speculative draft (same tokenizer)");
  cmd.add_option("--num-speculative-tokens", a.config.num_speculative_tokens,
                 "most drafted tokens per sequence and step (adapts below it; default 5)");
  cmd.add_option("--prompt-lookup-min", a.config.prompt_lookup_min, "shortest n-gram looked up (default 1)");
  cmd.add_option("--prompt-lookup-max", a.config.prompt_lookup_max, "longest n-gram looked up (default 8)");
  cmd.add_option("--speculative-disable-by-batch-size", a.config.disable_by_batch_size,
                 "no drafts in a step where more sequences than this decode (default 2)");
  a.max_batch_rows_opt = cmd.add_option("--speculative-max-batch-rows", a.max_batch_rows,
                 "decode rows (sequences + drafts) a step may reach with drafts (default 8 with AVX-512, 4 without: "
                 "where a verify row stops costing well under a step)");
}

int default_max_batch_rows(const CpuFeatures& cpu) {
  // The AVX-512 even/odd bf16 GEMV keeps rows 5..8 at ~0.15-0.3 of a step; the AVX2 GEMV runs them at
  // 40-50% of the FMA peak, where a row past 4 costs ~0.5 of a step (docs/speculative.md).
  return cpu.avx512 ? 8 : 4;
}

namespace {

// The first difference between two tokenizers' vocabularies, "" when they agree.
std::string vocab_difference(const Tokenizer& target, const Tokenizer& draft) {
  if (target.vocab_size() != draft.vocab_size())
    return fmt::format("its tokenizer has {} tokens, the model's {}", draft.vocab_size(), target.vocab_size());
  for (int64_t id = 0; id < target.vocab_size(); ++id) {
    const std::string a = target.id_to_token(int32_t(id)), b = draft.id_to_token(int32_t(id));
    if (a != b) return fmt::format("token {} is '{}' in its tokenizer but '{}' in the model's", id, b, a);
  }
  return "";
}

}  // namespace

std::unique_ptr<Drafter> make_speculative(const SpeculativeArgs& a, const RuntimeOptions& ro, Runtime& rt, const Model& target,
                                          const Tokenizer* tok, size_t target_block_bytes, EngineOptions& eo) {
  SpeculativeConfig c = a.config;
  c.method = unwrap(parse_speculative_method(a.method));
  const bool rows_given = a.max_batch_rows_opt && a.max_batch_rows_opt->count() > 0;
  c.max_batch_rows = rows_given ? a.max_batch_rows : default_max_batch_rows(rt.ctx.cpu());
  if (!a.draft_model.empty() && c.method != SpeculativeMethod::kDraftModel)
    fail(fmt::format("--draft-model needs --speculative draft (got --speculative {})", a.method));
  if (c.method == SpeculativeMethod::kDraftModel && a.draft_model.empty())
    fail("--speculative draft needs --draft-model DIR");
  if (c.enabled()) {
    const Status st = c.validate();
    if (!st.is_ok()) fail("--speculative: " + st.message());
  }
  eo.speculative = c;
  if (c.method != SpeculativeMethod::kDraftModel) return nullptr;

  std::shared_ptr<const Model> draft(unwrap(Model::load(a.draft_model, ro.load_options())));
  if (draft->config().vocab_size != target.config().vocab_size)
    fail(fmt::format("--draft-model {}: its vocabulary has {} tokens but the model's has {} (speculative decoding "
                     "needs the same tokenizer)", a.draft_model, draft->config().vocab_size, target.config().vocab_size));
  if (tok) {
    const auto dtok = load_tokenizer_if_present(a.draft_model);
    if (!dtok) fail(fmt::format("--draft-model {}: no tokenizer.json to check against the model's", a.draft_model));
    const std::string diff = vocab_difference(*tok, *dtok);
    if (!diff.empty()) fail(fmt::format("--draft-model {}: {} (speculative decoding needs the same tokenizer)", a.draft_model, diff));
  }
  DraftModelOptions o;
  o.block_size = eo.block_size;
  o.kv_dtype = eo.kv_dtype;
  o.num_blocks = std::max<int64_t>(16, target_block_bytes ? int64_t(eo.kv_memory_bytes / target_block_bytes) : 0);
  o.max_sequences = eo.max_running;
  o.max_step_tokens = eo.max_step_tokens;
  return unwrap(DraftModelDrafter::create(std::move(draft), rt.ctx, target.config().vocab_size, o));
}

}  // namespace tern::cli
