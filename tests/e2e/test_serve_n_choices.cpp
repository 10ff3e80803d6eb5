// n > 1 on the real engine (docs-llama-28m): the n choices of a prompt share its KV through the prefix
// cache (the siblings start once the first choice has prefilled), on both endpoints, streaming included;
// choices are indexed, and logit_bias steers greedy decoding.
#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "serve_engine_args.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

std::string long_prompt() {
  std::string p;
  for (int i = 0; i < 12; ++i) p += "The quick brown fox jumps over the lazy dog. ";
  return p;  // ~120 tokens: several full 16-token blocks
}

TEST(ServeNChoices, SiblingsReuseThePromptFromThePrefixCache) {
  ServerProcess server(kServeEngineArgs);
  ASSERT_GT(server.port(), 0) << server.log();
  auto cli = server.client();
  auto r = cli.Post("/v1/completions",
                    json({{"model", kServeModel}, {"prompt", long_prompt()}, {"n", 4}, {"max_tokens", 3}, {"seed", 1}})
                        .dump(),
                    "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  ASSERT_EQ(j["choices"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(j["choices"][i]["index"], i);
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  // 3 of the 4 prompts are served from the cache (all but the partial last block): at least 3/4 x 80%.
  EXPECT_GE(metric_value(m->body, "tern_prefix_cache_hit_rate"), 0.6) << m->body;
}

TEST(ServeNChoices, ChatStreamIndexesEveryChoice) {
  ServerProcess server(kServeEngineArgs);
  ASSERT_GT(server.port(), 0) << server.log();
  const std::string body = json({{"model", kServeModel},
                                 {"messages", {{{"role", "user"}, {"content", long_prompt()}}}},
                                 {"n", 3},
                                 {"max_tokens", 4},
                                 {"stream", true},
                                 {"stream_options", {{"include_usage", true}}}})
                               .dump();
  const std::string resp = raw_http(server.port(), post_raw("/v1/chat/completions", body));
  ASSERT_EQ(http_status(resp), 200) << resp;
  std::set<int> roles, finished;
  for (size_t at = 0; (at = resp.find("data: {", at)) != std::string::npos; ++at) {
    const json e = json::parse(resp.substr(at + 6, resp.find("\n\n", at) - at - 6));
    for (const json& c : e["choices"]) {
      if (c["delta"].contains("role")) roles.insert(c["index"].get<int>());
      if (!c["finish_reason"].is_null()) finished.insert(c["index"].get<int>());
    }
  }
  EXPECT_EQ(roles, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(finished, (std::set<int>{0, 1, 2}));
  EXPECT_NE(resp.find("data: [DONE]"), std::string::npos);
}

TEST(ServeNChoices, LogitBiasForcesAndBansTokens) {
  ServerProcess server(kServeEngineArgs);
  ASSERT_GT(server.port(), 0) << server.log();
  auto cli = server.client();
  auto run = [&](const json& bias) {
    json b = {{"model", kServeModel}, {"prompt", "Once upon a time"}, {"max_tokens", 5}, {"temperature", 0},
              {"logprobs", 0}};
    if (!bias.is_null()) b["logit_bias"] = bias;
    auto r = cli.Post("/v1/completions", b.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "");
    return r ? json::parse(r->body)["choices"][0] : json();
  };
  const json plain = run(nullptr);
  // Ban the greedy first token: the first token changes.
  auto tok = cli.Post("/tokenize",
                      json({{"prompt", plain["logprobs"]["tokens"][0]}, {"add_special_tokens", false}}).dump(),
                      "application/json");
  ASSERT_TRUE(tok && tok->status == 200);
  const json ids = json::parse(tok->body)["tokens"];
  ASSERT_EQ(ids.size(), 1u) << tok->body;  // the first token's text is that one token
  const int first = ids[0];
  const json banned = run({{std::to_string(first), -100}});
  EXPECT_NE(banned["logprobs"]["tokens"][0], plain["logprobs"]["tokens"][0]);
  // +100 on one token: greedy emits it every step.
  const json forced = run({{"42", 100}});
  auto det = cli.Post("/detokenize", R"({"tokens":[42,42,42,42,42]})", "application/json");
  ASSERT_TRUE(det && det->status == 200);
  EXPECT_EQ(forced["text"], json::parse(det->body)["prompt"]);
}

// Speculative decoding reports its counters in /metrics (they were only in `tern bench offline`).
TEST(ServeNChoices, SpeculativeCountersReachMetrics) {
  ServerProcess server(std::string(kServeEngineArgs) + " --speculative ngram");
  ASSERT_GT(server.port(), 0) << server.log();
  auto cli = server.client();
  auto before = cli.Get("/metrics");
  ASSERT_TRUE(before);
  EXPECT_EQ(metric_value(before->body, "tern_spec_draft_tokens_total"), 0.0) << before->body;
  // A prompt that repeats itself: greedy decoding continues the pattern, so the n-gram lookup drafts.
  auto r = cli.Post("/v1/completions",
                    json({{"model", kServeModel}, {"prompt", long_prompt()}, {"max_tokens", 24}, {"temperature", 0}})
                        .dump(),
                    "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  const double drafted = metric_value(m->body, "tern_spec_draft_tokens_total");
  const double accepted = metric_value(m->body, "tern_spec_accepted_tokens_total");
  const double steps = metric_value(m->body, "tern_spec_verify_steps_total");
  const double emitted = metric_value(m->body, "tern_spec_emitted_tokens_total");
  EXPECT_GT(drafted, 0) << m->body;
  EXPECT_LE(accepted, drafted);
  EXPECT_GT(steps, 0);
  // Each verifying step emits its accepted drafts and one more token, fewer only where the request ends.
  EXPECT_GE(emitted, steps);
  EXPECT_LE(emitted, accepted + steps);
}

}  // namespace
}  // namespace tern::test
