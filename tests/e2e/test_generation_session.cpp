// GenerationSession (tern chat's KV cache kept across turns) on docs-llama-28m: the second turn of a
// conversation reuses the K/V of everything the first turn computed and computes only the tokens it
// adds, and its greedy reply is token for token the reply a fresh Generator run gives to the same
// rendered conversation.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/chat_template/chat_template.h"
#include "model/model.h"
#include "text/tokenizer/tokenizer.h"
#include "runtime/generator.h"
#include "test_support.h"

namespace tern {
namespace {

struct Chat {
  Chat() : pool(2), ctx(pool, CpuFeatures::detect()) {
    const std::string dir = test::model_dir("docs-llama-28m");
    model = std::move(Model::load(dir).value());
    tok.emplace(Tokenizer::load(dir).value());
    tmpl.emplace(load_chat_template(dir).value());
    end_of_turn = tok->encode("<|im_end|>", false);
  }
  std::vector<int32_t> render(const nlohmann::json& messages) const {
    nlohmann::json c = tmpl->special_tokens;
    c["messages"] = messages;
    c["add_generation_prompt"] = true;
    return tok->encode(tmpl->chat_template.render(c).value(), /*add_special_tokens=*/false);
  }
  GenerationRequest request(std::vector<int32_t> prompt, KvDType kv) const {
    GenerationRequest r;
    r.prompt = std::move(prompt);
    r.max_new_tokens = 12;
    r.sampling.temperature = 0;
    r.eos_ids = model->config().eos_token_ids;
    r.eos_ids.insert(r.eos_ids.end(), end_of_turn.begin(), end_of_turn.end());
    r.kv_dtype = kv;
    return r;
  }
  ThreadPool pool;
  ExecContext ctx;
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tok;
  std::optional<ModelChatTemplate> tmpl;
  std::vector<int32_t> end_of_turn;
};

nlohmann::json msg(const std::string& role, const std::string& content) {
  return {{"role", role}, {"content", content}};
}

TEST(GenerationSession, SecondTurnComputesOnlyItsNewTokensAndRepliesAsAFreshRun) {
  Chat c;
  for (KvDType kv : {KvDType::F32, KvDType::INT8}) {
    Generator gen(*c.model, &*c.tok, c.ctx);
    GenerationSession session(c.model->config(), kv);
    nlohmann::json history = nlohmann::json::array({msg("user", "How do I list files in a directory?")});
    const auto p1 = c.render(history);
    auto r1 = gen.generate(c.request(p1, kv), nullptr, &session);
    ASSERT_TRUE(r1.is_ok()) << r1.status().message();
    EXPECT_EQ(r1->reused_prompt_tokens, 0);
    const size_t held = session.tokens().size();
    EXPECT_GE(held, p1.size() + r1->tokens.size() - 1) << "the prompt and the reply fed back";

    history.push_back(msg("assistant", r1->text));
    history.push_back(msg("user", "And hidden files?"));
    const auto p2 = c.render(history);
    auto r2 = gen.generate(c.request(p2, kv), nullptr, &session);
    ASSERT_TRUE(r2.is_ok()) << r2.status().message();
    // Everything turn 1 left in the cache is reused; only the tokens turn 2 adds are computed.
    EXPECT_EQ(r2->reused_prompt_tokens, int64_t(held)) << kv_dtype_name(kv);
    EXPECT_GT(p2.size(), held);

    auto fresh = Generator(*c.model, &*c.tok, c.ctx).generate(c.request(p2, kv), nullptr);
    ASSERT_TRUE(fresh.is_ok());
    EXPECT_EQ(r2->tokens, fresh->tokens) << kv_dtype_name(kv);
    EXPECT_EQ(r2->text, fresh->text);

    // A prompt that shares only a prefix (an edited first turn) reuses that prefix and still matches.
    const auto p3 = c.render(nlohmann::json::array({msg("user", "How do I list processes?")}));
    auto r3 = gen.generate(c.request(p3, kv), nullptr, &session);
    auto fresh3 = Generator(*c.model, &*c.tok, c.ctx).generate(c.request(p3, kv), nullptr);
    ASSERT_TRUE(r3.is_ok() && fresh3.is_ok());
    EXPECT_GT(r3->reused_prompt_tokens, 0);
    EXPECT_LT(r3->reused_prompt_tokens, int64_t(p3.size()));
    EXPECT_EQ(r3->tokens, fresh3->tokens);
  }
}

TEST(GenerationSession, TheSameConversationAgainComputesItsLastTokenOnly) {
  Chat c;
  Generator gen(*c.model, &*c.tok, c.ctx);
  GenerationSession session(c.model->config(), KvDType::F32);
  const auto p = c.render(nlohmann::json::array({msg("user", "hello")}));
  auto a = gen.generate(c.request(p, KvDType::F32), nullptr, &session);
  auto b = gen.generate(c.request(p, KvDType::F32), nullptr, &session);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(b->reused_prompt_tokens, int64_t(p.size()) - 1) << "the last prompt token's logits are recomputed";
  EXPECT_EQ(a->tokens, b->tokens);
  // A request whose KV dtype is not the session's is refused, not silently recomputed.
  EXPECT_FALSE(gen.generate(c.request(p, KvDType::BF16), nullptr, &session).is_ok());
}

}  // namespace
}  // namespace tern
