// Speculative decoding through the serving engine over real models (docs/speculative.md): greedy
// output must be token for token what the engine gives without speculation, with several requests
// in flight, the prefix cache on, chunked prefill, and preemption by recompute. n-gram drafting on
// every tiny architecture and on docs-llama-28m; draft-model drafting with another model of the same
// vocabulary (tiny llama drafting for the others: many rejections) and docs-llama-28m drafting for
// itself. Also: the tiny archs' transformers greedy tokens (reference.json) still come out.
#include <gtest/gtest.h>

#include <memory>

#include "core/mapped_file.h"
#include "engine/draft_model_drafter.h"
#include "engine_parity_util.h"
#include "model_test_util.h"
#include "text/tokenizer/tokenizer.h"
#include "test_support.h"

namespace tern::test {
namespace {

ExecContext& spec_ctx() {
  static ThreadPool pool(2);
  static ExecContext ctx(pool, CpuFeatures::detect());
  return ctx;
}

EngineRequest greedy_req(std::vector<int32_t> prompt, int64_t n) {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  return r;
}

struct Outcome {
  std::vector<std::vector<int32_t>> tokens;
  EngineMetrics metrics;
  int64_t forwards = 0;
};

// All prompts in flight at once through one engine core; returns each request's tokens.
Outcome run_engine(const Model& model, const std::vector<std::vector<int32_t>>& prompts, int64_t n_new,
                   EngineSetup setup) {
  EngineHarness h(model, spec_ctx(), setup);
  std::vector<RequestId> ids;
  for (const auto& p : prompts) ids.push_back(h.add(greedy_req(p, n_new), false));
  int64_t steps = 0;
  for (; steps < 100000 && h.core->has_work(); ++steps) {
    h.step();
    for (const Sequence* s : h.core->scheduler().running()) {
      EXPECT_LE(int64_t(h.core->kv().table(s->id).size()), KvBlockManager::blocks_for(s->known(), setup.block_size));
    }
  }
  EXPECT_FALSE(h.core->has_work());
  EXPECT_EQ(h.core->kv().num_used(), 0);
  Outcome o;
  for (RequestId id : ids) {
    const Collected c = h.collector.get(id);
    EXPECT_EQ(c.finish, EngineFinish::kLength) << c.error;
    o.tokens.push_back(c.tokens);
  }
  o.metrics = h.core->metrics();
  o.forwards = steps;
  return o;
}

EngineSetup with_ngram(EngineSetup s, int k = 5) {
  s.speculative.method = SpeculativeMethod::kNgram;
  s.speculative.num_speculative_tokens = k;
  s.speculative.prompt_lookup_min = 1;
  s.speculative.prompt_lookup_max = 3;
  s.speculative.disable_by_batch_size = 64;  // drafts with every request in flight (default: 2)
  s.speculative.max_batch_rows = 64;  // and rows for all of them (default: 8 with AVX-512, 4 without)
  return s;
}

// ---- tiny architectures -------------------------------------------------------------------------

class SpecTiny : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string dir = tiny_arch_dir(GetParam());
    auto m = Model::load(dir);
    ASSERT_TRUE(m.is_ok()) << m.status().message();
    model_ = std::shared_ptr<Model>(std::move(*m));
    match_reference_attention(*model_, GetParam());
    const auto ref = load_json(dir + "/reference.json");
    ASSERT_FALSE(ref.is_null());
    for (const auto& s : ref["sequences"]) {
      prompts_.push_back(s["ids"].get<std::vector<int32_t>>());
      greedy16_.push_back(s["greedy16"].get<std::vector<int32_t>>());
    }
    // Copy-heavy prompts: a stretch of the reference prompt repeated, so lookups find matches.
    for (size_t i = 0; i < 2; ++i) {
      std::vector<int32_t> p(prompts_[1].begin(), prompts_[1].begin() + 20);
      p.insert(p.end(), prompts_[1].begin(), prompts_[1].begin() + 12 + int64_t(i) * 4);
      prompts_.push_back(p);
    }
  }
  std::shared_ptr<Model> model_;
  std::vector<std::vector<int32_t>> prompts_, greedy16_;
};

TEST_P(SpecTiny, NgramGreedyIsIdenticalInFlightWithPrefixCache) {
  constexpr int64_t kNew = 24;
  const EngineSetup base{.num_blocks = 512, .block_size = 4, .max_step_tokens = 96, .prefix_caching = true};
  const Outcome plain = run_engine(*model_, prompts_, kNew, base);
  const Outcome spec = run_engine(*model_, prompts_, kNew, with_ngram(base));
  for (size_t i = 0; i < prompts_.size(); ++i) EXPECT_EQ(spec.tokens[i], plain.tokens[i]) << "prompt " << i;
  for (size_t i = 0; i < greedy16_.size(); ++i) {
    EXPECT_EQ(std::vector<int32_t>(spec.tokens[i].begin(), spec.tokens[i].begin() + 16), greedy16_[i])
        << "transformers' greedy tokens, prompt " << i;
  }
  EXPECT_GT(spec.metrics.spec_draft_tokens, 0) << "the lookup never proposed anything";
  // The same prompts again: the prefix cache serves them and the outputs stay the same.
}

TEST_P(SpecTiny, DraftModelWithRejectionsAndPreemptionIsIdentical) {
  constexpr int64_t kNew = 20;
  // Another architecture of the same vocabulary drafts: mostly wrong, so rollback runs all the time.
  const std::string draft_arch = GetParam() == "llama" ? "qwen2" : "llama";
  auto dm = Model::load(tiny_arch_dir(draft_arch));
  ASSERT_TRUE(dm.is_ok()) << dm.status().message();
  std::shared_ptr<const Model> draft(std::move(*dm));
  const EngineSetup roomy{.num_blocks = 512, .block_size = 4, .max_step_tokens = 64, .prefix_caching = true};
  const Outcome plain = run_engine(*model_, prompts_, kNew, roomy);
  for (int pass = 0; pass < 2; ++pass) {
    // pass 1: a pool too small for all five requests at once: preemption by recompute.
    EngineSetup s = roomy;
    if (pass == 1) s.num_blocks = (300 + kNew) / 4 + 12;
    DraftModelOptions o;
    o.num_blocks = 1024;
    o.block_size = 8;
    o.kv_dtype = KvDType::F32;
    auto d = DraftModelDrafter::create(draft, spec_ctx(), model_->config().vocab_size, o);
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    s.speculative.method = SpeculativeMethod::kDraftModel;
    s.speculative.num_speculative_tokens = 4;
    s.speculative.disable_by_batch_size = 64;
    s.speculative.max_batch_rows = 64;  // and rows for all of them (default: 8 with AVX-512, 4 without)
    s.drafter = d->get();
    const Outcome spec = run_engine(*model_, prompts_, kNew, s);
    for (size_t i = 0; i < prompts_.size(); ++i) EXPECT_EQ(spec.tokens[i], plain.tokens[i]) << "pass " << pass << " prompt " << i;
    EXPECT_GT(spec.metrics.spec_draft_tokens, 0);
    if (pass == 1) EXPECT_GT(spec.metrics.preempted_total, 0) << "the small pool must preempt";
    EXPECT_EQ((*d)->kv().num_used(), 0) << "the draft pool's blocks all came back";
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, SpecTiny,
                         ::testing::Values("llama", "llama_tied", "qwen2", "qwen3", "mistral_swa", "gpt2", "gemma2", "phi3",
                                           "glm4", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"));

// ---- docs-llama-28m -----------------------------------------------------------------------------

struct DocsLlama {
  DocsLlama() {
    auto m = Model::load(model_dir("docs-llama-28m"));
    EXPECT_TRUE(m.is_ok()) << m.status().message();
    if (m.is_ok()) model = std::shared_ptr<Model>(std::move(*m));
    auto t = Tokenizer::load(model_dir("docs-llama-28m"));
    EXPECT_TRUE(t.is_ok());
    if (t.is_ok()) tok.emplace(*t);
    auto text = read_text_file(shared_dir() + "/data/docs-val.txt");
    EXPECT_TRUE(text.is_ok());
    if (text.is_ok()) corpus = *text;
  }
  // "Repeat" prompts: a passage, then its first words again, so the continuation copies it.
  std::vector<std::vector<int32_t>> copy_prompts(int n) const {
    std::vector<std::vector<int32_t>> out;
    for (int i = 0; i < n; ++i) {
      const std::string passage = corpus.substr(size_t(i) * 1931 % (corpus.size() - 1000), 500);
      out.push_back(tok->encode(passage + "\n\n" + passage.substr(0, 80)));
    }
    return out;
  }
  std::vector<std::vector<int32_t>> plain_prompts(int n) const {
    std::vector<std::vector<int32_t>> out;
    for (int i = 0; i < n; ++i) out.push_back(tok->encode(corpus.substr(size_t(i) * 2713 % (corpus.size() - 1000), 200)));
    return out;
  }
  std::shared_ptr<Model> model;
  std::optional<Tokenizer> tok;
  std::string corpus;
};

TEST(SpecDocsLlama, NgramAndDraftGreedyAreIdenticalWithFourInFlight) {
  DocsLlama d;
  ASSERT_TRUE(d.model && d.tok);
  auto prompts = d.copy_prompts(3);
  auto plain_p = d.plain_prompts(2);
  prompts.insert(prompts.end(), plain_p.begin(), plain_p.end());
  constexpr int64_t kNew = 48;
  const EngineSetup base{.num_blocks = 256, .block_size = 16, .max_step_tokens = 128, .prefix_caching = true};
  const Outcome plain = run_engine(*d.model, prompts, kNew, base);
  const Outcome ngram = run_engine(*d.model, prompts, kNew, with_ngram(base));
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(ngram.tokens[i], plain.tokens[i]) << "ngram, prompt " << i;
  EXPECT_GT(ngram.metrics.spec_accepted_tokens, 0);
  EXPECT_LT(ngram.forwards, plain.forwards) << "copying prompts must need fewer steps with drafts";

  DraftModelOptions o;
  o.block_size = 16;
  o.num_blocks = 256;
  o.kv_dtype = KvDType::F32;
  auto drafter = DraftModelDrafter::create(d.model, spec_ctx(), d.model->config().vocab_size, o);
  ASSERT_TRUE(drafter.is_ok()) << drafter.status().message();
  EngineSetup s = base;
  s.speculative.method = SpeculativeMethod::kDraftModel;
  s.speculative.num_speculative_tokens = 4;
  s.speculative.disable_by_batch_size = 64;
  s.speculative.max_batch_rows = 64;  // and rows for all of them (default: 8 with AVX-512, 4 without)
  s.drafter = drafter->get();
  const Outcome draft = run_engine(*d.model, prompts, kNew, s);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(draft.tokens[i], plain.tokens[i]) << "draft model, prompt " << i;
  // The model drafting for itself: nearly every draft is accepted (bf16 vs f32 KV aside).
  EXPECT_GT(double(draft.metrics.spec_accepted_tokens), 0.8 * double(draft.metrics.spec_draft_tokens));
}

TEST(SpecDocsLlama, DraftModelVocabularyMismatchIsNamed) {
  DocsLlama d;
  ASSERT_TRUE(d.model);
  auto tiny = Model::load(tiny_arch_dir("llama"));
  ASSERT_TRUE(tiny.is_ok());
  auto r = DraftModelDrafter::create(std::shared_ptr<const Model>(std::move(*tiny)), spec_ctx(),
                                     d.model->config().vocab_size, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("1024 tokens"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace tern::test
