// Constrained decoding end to end: docs-llama-28m (a real model) sampling at temperature 1 under schemas of the
// corpus (tests/data/schemas/corpus.jsonl), through the engine. Every output that finished must parse and
// validate (json_schema_check.h, an independent validator), and it must finish by the grammar (stop) or EOS,
// never run on; an output cut by max_new_tokens must still be a prefix the grammar accepts.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>

#include "constrain/token_constraint.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine.h"
#include "json_schema_check.h"
#include "model/model.h"
#include "test_support.h"
#include "text/tokenizer/tokenizer.h"

namespace tern {
namespace {

// name -> schema text
std::map<std::string, std::string> load_corpus() {
  std::map<std::string, std::string> out;
  std::ifstream in(std::string(TERN_SOURCE_DIR) + "/tests/data/schemas/corpus.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) {
      auto e = nlohmann::ordered_json::parse(line);  // keeps each schema's property order
      out[e["name"]] = e["schema"].dump();
    }
  return out;
}

TEST(ConstrainedDocsLlama, SampledOutputsParseValidateAndStop) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  auto model = Model::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  auto tok = Tokenizer::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(tok.is_ok());
  const auto corpus = load_corpus();
  ASSERT_GE(corpus.size(), 100u);
  auto vocab = TokenVocabulary::from_tokenizer(*tok, (*model)->config().vocab_size);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().message();
  GrammarCache cache(*vocab);

  const std::vector<std::string> names = {"get_weather", "order_pizza", "classification", "rgb_color", "tree_node",
                                          "linked_list", "expression_ast", "book_flight", "integer_answer",
                                          "function_router", "time_slot", "create_user"};
  struct Run {
    std::string name;
    std::string text;
    std::vector<int32_t> tokens;
    EngineFinish finish = EngineFinish::kNone;
    std::string error;
  };
  std::vector<Run> runs;
  std::vector<EngineRequest> reqs;
  for (const auto& name : names) {
    ASSERT_TRUE(corpus.count(name)) << name;
    auto g = cache.json_schema_text(corpus.at(name));
    ASSERT_TRUE(g.is_ok()) << name << ": " << g.status().message();
    for (uint64_t seed : {1, 2}) {
      EngineRequest r;
      r.prompt = tok->encode("Reply with JSON only.\n");
      r.max_new_tokens = 600;
      r.sampling.temperature = 1.0f;
      r.sampling.seed = seed * 7919 + runs.size();
      r.eos_ids = (*model)->config().eos_token_ids;
      r.grammar = *g;
      reqs.push_back(r);
      runs.push_back(Run{name, "", {}, EngineFinish::kNone, ""});
    }
  }
  EngineOptions eo;
  eo.max_running = 32;
  auto engine = Engine::create(std::make_unique<CpuModelRunner>(**model, ctx, eo.max_step_tokens, eo.max_running), &*tok, eo);
  ASSERT_TRUE(engine.is_ok()) << engine.status().message();
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto id = (*engine)->add(reqs[i], [&, i](RequestId, const EngineOutput& out) {
      std::lock_guard lk(mu);
      runs[i].text += out.text;
      runs[i].tokens.insert(runs[i].tokens.end(), out.tokens.begin(), out.tokens.end());
      if (out.finish != EngineFinish::kNone) {
        runs[i].finish = out.finish;
        runs[i].error = out.error;
        ++done;
        cv.notify_all();
      }
    });
    ASSERT_TRUE(id.is_ok()) << id.status().message();
  }
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(600), [&] { return done == reqs.size(); }));
  }
  (*engine)->shutdown(false);

  int finished = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    SCOPED_TRACE(r.name + ": " + r.text);
    std::printf("%-16s %-6s %4zu tokens  %.120s\n", r.name.c_str(), engine_finish_name(r.finish), r.tokens.size(),
                r.text.c_str());
    ASSERT_NE(r.finish, EngineFinish::kError) << r.error;
    if (r.finish == EngineFinish::kLength) {  // cut short: still a prefix the grammar accepts
      TokenConstraint c(reqs[i].grammar);
      for (int32_t t : r.tokens) ASSERT_TRUE(c.accept(t).is_ok());
      continue;
    }
    ++finished;
    EXPECT_TRUE(r.finish == EngineFinish::kStop || r.finish == EngineFinish::kEos);
    nlohmann::json value;
    ASSERT_NO_THROW(value = nlohmann::json::parse(r.text));
    EXPECT_EQ(test::validate_json(value, nlohmann::json::parse(corpus.at(r.name))), "");
    // Stops when the grammar is complete: no token past the end of the value.
    TokenConstraint c(reqs[i].grammar);
    for (int32_t t : r.tokens) ASSERT_TRUE(c.accept(t).is_ok());
    EXPECT_TRUE(c.can_end());
    if (r.finish == EngineFinish::kStop) {
      EXPECT_TRUE(c.must_end());
    }
  }
  // Most runs complete well within max_new_tokens (strings are where a model can wander).
  EXPECT_GE(finished, int(runs.size()) / 2);
}

}  // namespace
}  // namespace tern
