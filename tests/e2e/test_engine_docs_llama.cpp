// The serving engine over the real CPU runner and a real model (docs-llama-28m): batched,
// paged, prefix-cached and preempted generation gives token for token what separate
// single-sequence Generator runs give.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "core/mapped_file.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine.h"
#include "model/model.h"
#include "text/tokenizer/tokenizer.h"
#include "runtime/generator.h"
#include "test_support.h"

namespace tern {
namespace {

struct Fixture {
  Fixture() : pool(2), ctx(pool, CpuFeatures::detect()) {
    auto m = Model::load(test::model_dir("docs-llama-28m"));
    EXPECT_TRUE(m.is_ok()) << m.status().message();
    if (m.is_ok()) model = std::move(*m);
    auto t = Tokenizer::load(test::model_dir("docs-llama-28m"));
    EXPECT_TRUE(t.is_ok());
    if (t.is_ok()) tok.emplace(*t);
    auto text = read_text_file(test::shared_dir() + "/data/docs-val.txt");
    EXPECT_TRUE(text.is_ok());
    if (text.is_ok()) corpus = *text;
  }
  // The i-th prompt: a slice of the validation text (at most 48 tokens), after an optional shared
  // prefix (the first prefix_chars characters of the text).
  std::vector<int32_t> prompt(int i, int prefix_chars = 0) const {
    const size_t at = size_t(i) * 977 % (corpus.size() - 2000);
    const std::string slice = corpus.substr(at, 20 + size_t(i * 37) % 300);
    std::vector<int32_t> ids = prefix_chars > 0 ? tok->encode(corpus.substr(0, size_t(prefix_chars))) : std::vector<int32_t>{};
    auto tail = tok->encode(slice, /*add_special_tokens=*/prefix_chars == 0);
    tail.resize(std::min<size_t>(tail.size(), prefix_chars > 0 ? 40 : 48));
    ids.insert(ids.end(), tail.begin(), tail.end());
    return ids;
  }
  EngineRequest request(std::vector<int32_t> p, int64_t n) const {
    EngineRequest r;
    r.prompt = std::move(p);
    r.max_new_tokens = n;
    r.sampling.temperature = 0;
    r.eos_ids = model->config().eos_token_ids;
    return r;
  }
  std::vector<int32_t> generate_alone(const EngineRequest& r) {
    Generator gen(*model, &*tok, ctx);
    GenerationRequest g;
    g.prompt = r.prompt;
    g.max_new_tokens = r.max_new_tokens;
    g.sampling = r.sampling;
    g.eos_ids = r.eos_ids;
    g.kv_dtype = KvDType::F32;
    auto out = gen.generate(g, nullptr);
    EXPECT_TRUE(out.is_ok()) << out.status().message();
    return out.is_ok() ? out->tokens : std::vector<int32_t>{};
  }
  struct Outcome {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<int64_t> cached;
    int64_t preempted = 0;
  };
  // Runs all requests through one engine at once.
  Outcome run_engine(const std::vector<EngineRequest>& reqs, EngineOptions eo) {
    eo.max_running = std::max<int64_t>(eo.max_running, 1);
    auto runner = std::make_unique<CpuModelRunner>(*model, ctx, eo.max_step_tokens, eo.max_running);
    auto engine = Engine::create(std::move(runner), &*tok, eo);
    EXPECT_TRUE(engine.is_ok()) << engine.status().message();
    Outcome o;
    if (!engine.is_ok()) return o;
    o.tokens.resize(reqs.size());
    o.cached.resize(reqs.size());
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
    std::vector<RequestId> ids;
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto id = (*engine)->add(reqs[i], [&, i](RequestId, const EngineOutput& out) {
        std::lock_guard lk(mu);
        o.tokens[i].insert(o.tokens[i].end(), out.tokens.begin(), out.tokens.end());
        o.cached[i] = out.cached_prompt_tokens;
        EXPECT_NE(out.finish, EngineFinish::kError) << out.error;
        if (out.finish != EngineFinish::kNone) ++done;
        cv.notify_all();
      });
      if (!id.is_ok()) {
        ADD_FAILURE() << id.status().message();
        return o;
      }
    }
    std::unique_lock lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(300), [&] { return done == reqs.size(); }));
    lk.unlock();
    o.preempted = (*engine)->metrics().preempted_total;
    (*engine)->shutdown(false);
    return o;
  }

  ThreadPool pool;
  ExecContext ctx;
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tok;
  std::string corpus;
};

TEST(EngineDocsLlama, SixtyFourConcurrentGreedyRequestsMatchSeparateRuns) {
  Fixture f;
  ASSERT_TRUE(f.model);
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 64; ++i) reqs.push_back(f.request(f.prompt(i), 4 + i % 9));
  EngineOptions eo;
  eo.kv_dtype = KvDType::F32;  // as the Generator's default: compare like with like
  eo.kv_memory_bytes = size_t(64) << 20;
  eo.max_running = 64;
  eo.max_step_tokens = 256;  // several steps of mixed prompt chunks and decodes
  const auto got = f.run_engine(reqs, eo);
  ASSERT_EQ(got.tokens.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(got.tokens[i], f.generate_alone(reqs[i])) << "request " << i;
  }
}

// A shared 300-character prefix: identical tokens with and without the prefix cache, and with a
// pool so small that requests preempt each other; the cache serves the shared blocks.
TEST(EngineDocsLlama, PrefixCacheAndPreemptionDoNotChangeTokens) {
  Fixture f;
  ASSERT_TRUE(f.model);
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 12; ++i) reqs.push_back(f.request(f.prompt(i, 300), 16));
  EngineOptions plain;
  plain.kv_dtype = KvDType::F32;
  plain.kv_memory_bytes = size_t(64) << 20;
  plain.prefix_caching = false;
  const auto base = f.run_engine(reqs, plain);
  EngineOptions cached = plain;
  cached.prefix_caching = true;
  const auto with_cache = f.run_engine(reqs, cached);
  EXPECT_EQ(base.tokens, with_cache.tokens);
  int64_t cached_total = 0;
  for (int64_t c : with_cache.cached) cached_total += c;
  EXPECT_GT(cached_total, 0);
  EngineOptions tight = cached;
  CpuModelRunner probe(*f.model, f.ctx);
  tight.kv_memory_bytes = probe.kv_block_bytes(tight.block_size, tight.kv_dtype) * 12;  // 192 token slots
  tight.max_step_tokens = 64;
  const auto squeezed = f.run_engine(reqs, tight);
  EXPECT_GT(squeezed.preempted, 0);
  EXPECT_EQ(base.tokens, squeezed.tokens);
  EXPECT_EQ(base.tokens[0], f.generate_alone(reqs[0]));
}

}  // namespace
}  // namespace tern
