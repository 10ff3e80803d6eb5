// tern bench offline on docs-llama-28m with small numbers: the JSON object has the promised fields,
// every request makes exactly --output-len tokens (EOS ignored), JSONL prompts work, a KV budget
// too small for every request at once still completes them (preempting), bad arguments are one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

nlohmann::json bench_json(const std::string& args) {
  auto r = run_tern("bench offline -m '" + kDocs + "' -t 2 --json " + args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(r.out);
}

TEST(CliBenchOffline, JsonFieldsAndTokenCount) {
  auto j = bench_json("--requests 6 --concurrency 3 --prompt-len 16 --output-len 5");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["output_tokens"].get<int64_t>(), 6 * 5);
  EXPECT_EQ(j["prompt_tokens"].get<int64_t>(), 6 * 16);
  for (const char* k : {"output_tokens_per_s", "prompt_tokens_per_s", "requests_per_s", "ttft_ms_p50", "itl_ms_p50",
                        "e2e_ms_p99", "decode_tokens_per_s"}) {
    ASSERT_TRUE(j.contains(k)) << k;
    EXPECT_GT(j[k].get<double>(), 0) << k;
  }
  EXPECT_LE(j["ttft_ms_p50"].get<double>(), j["ttft_ms_p99"].get<double>());
  EXPECT_LE(j["itl_ms_p50"].get<double>(), j["itl_ms_p90"].get<double>());
  EXPECT_LE(j["ttft_ms_p50"].get<double>(), j["e2e_ms_p50"].get<double>());
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(j["preemptions"].get<int64_t>(), 0);  // the default budget fits 3 short requests
  EXPECT_EQ(j["kv_dtype"], "bf16");
}

TEST(CliBenchOffline, PromptsFromJsonl) {
  TempDir dir;
  write_file(dir.file("p.jsonl"), "{\"prompt\": \"The kernel schedules\"}\n\n{\"prompt\": \"A page table maps\"}\n");
  auto j = bench_json("--requests 4 --concurrency 2 --output-len 3 --kv-dtype int8 --prompts '" + dir.file("p.jsonl") + "'");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["output_tokens"].get<int64_t>(), 4 * 3);
  EXPECT_GT(j["prompt_tokens"].get<int64_t>(), 4);
  EXPECT_EQ(j["kv_dtype"], "int8");
}

TEST(CliBenchOffline, TightKvBudgetPreemptsAndCompletes) {
  // Block of 16 tokens = 8 layers x 2 (K, V) x 4 heads x 64 x 2 bytes (bf16) x 16 = 128 KiB.
  // 6 blocks: three 20-token prompts (2 blocks each) fill the pool, and each needs a third block
  // to grow past 32 tokens, so 8 in flight must take turns and preempt.
  auto j = bench_json("--requests 8 --concurrency 8 --prompt-len 20 --output-len 20 --kv-memory 768KiB");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["kv_blocks_total"].get<int64_t>(), 6);
  EXPECT_EQ(j["output_tokens"].get<int64_t>(), 8 * 20);
  EXPECT_GT(j["preemptions"].get<int64_t>(), 0);
}

TEST(CliBenchOffline, BadArgumentsAreOneLineErrors) {
  for (const std::string args :
       {"--requests 0", "--concurrency -1", "--kv-memory lots", "--kv-dtype int3", "--prompts /nonexistent.jsonl"}) {
    auto r = run_tern("bench offline -m '" + kDocs + "' --output-len 2 " + args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_FALSE(r.err.empty()) << args;
  }
  TempDir dir;
  write_file(dir.file("bad.jsonl"), "{\"text\": 1}\n");
  auto r = run_tern("bench offline -m '" + kDocs + "' --prompts '" + dir.file("bad.jsonl") + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad.jsonl:1"), std::string::npos) << r.err;
  auto missing = run_tern("bench offline -m /nonexistent-model --requests 1");
  EXPECT_NE(missing.exit_code, 0);
}

}  // namespace
}  // namespace tern::test
