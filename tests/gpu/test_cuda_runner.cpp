// CudaModelRunner end to end on docs-llama-28m: last-position logits against transformers'
// reference.json, greedy continuation, and batched decode (graph buckets) against single runs.
// Skipped with "no CUDA device: ..." where there is no GPU.
#include <algorithm>
#include <numeric>

#include "backend/cuda/cuda_model_runner.h"
#include "gpu_test_util.h"
#include "model_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

// bf16 activations into cuBLASLt and a bf16 KV cache: looser than the CPU's 2e-3 fp32 path.
constexpr double kLogitTol = 6e-2;

struct Seq {
  std::vector<int32_t> blocks;
  int64_t len = 0;
};

int32_t argmax(const float* l, int64_t n) { return int32_t(std::max_element(l, l + n) - l); }

class CudaDocsLlama : public ::testing::Test {
 protected:
  void SetUp() override {
    TERN_REQUIRE_CUDA();
    auto m = Model::load(model_dir("docs-llama-28m"));
    ASSERT_TRUE(m.is_ok()) << m.status().message();
    model_ = std::move(m).value();
    auto r = make_cuda_model_runner(*model_);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    runner_ = std::move(r).value();
    ASSERT_TRUE(runner_->allocate_kv({1024, 16, KvDType::BF16}).is_ok());
    ref_ = load_json(model_dir("docs-llama-28m") + "/reference.json");
  }
  // Gives the sequence enough blocks for `len` positions (ids handed out in order).
  void grow(Seq& s, int64_t len) {
    while (int64_t(s.blocks.size()) * 16 < len) s.blocks.push_back(next_block_++);
  }
  // Runs `ids` for each sequence in one step; returns [seqs, vocab] logits.
  std::vector<float> step(std::vector<Seq*> seqs, const std::vector<std::vector<int32_t>>& ids) {
    StepBatch b;
    for (size_t i = 0; i < seqs.size(); ++i) {
      grow(*seqs[i], seqs[i]->len + int64_t(ids[i].size()));
      b.token_ids.insert(b.token_ids.end(), ids[i].begin(), ids[i].end());
      b.seqs.push_back({seqs[i]->len, int64_t(ids[i].size()), seqs[i]->blocks.data(), int64_t(seqs[i]->blocks.size()), true});
    }
    std::vector<float> logits(seqs.size() * size_t(runner_->vocab_size()));
    const Status st = runner_->forward(b, logits.data());
    EXPECT_TRUE(st.is_ok()) << st.message();
    for (size_t i = 0; i < seqs.size(); ++i) seqs[i]->len += int64_t(ids[i].size());
    return logits;
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<ModelRunner> runner_;
  nlohmann::json ref_;
  int32_t next_block_ = 0;
};

TEST_F(CudaDocsLlama, LogitsAndGreedyMatchReference) {
  const int64_t vocab = runner_->vocab_size();
  for (const auto& prompt : ref_["prompts"]) {
    const auto ids = prompt["ids"].get<std::vector<int32_t>>();
    Seq s;
    auto logits = step({&s}, {ids});
    const auto want = prompt["last_logits"].get<std::vector<double>>();
    ASSERT_EQ(want.size(), size_t(vocab));
    for (int64_t j = 0; j < vocab; ++j) ASSERT_NEAR(logits[size_t(j)], want[size_t(j)], kLogitTol) << "logit " << j;
    // Greedy: the first 8 tokens (bf16 rounding may flip a near-tie later on).
    const auto greedy = prompt["greedy32"].get<std::vector<int32_t>>();
    int32_t tok = argmax(logits.data(), vocab);
    for (size_t g = 0; g < 8; ++g) {
      ASSERT_EQ(tok, greedy[g]) << "greedy step " << g;
      logits = step({&s}, {{tok}});
      tok = argmax(logits.data(), vocab);
    }
  }
}

TEST_F(CudaDocsLlama, BatchedDecodeMatchesSingleRuns) {
  const int64_t vocab = runner_->vocab_size();
  const auto ids = ref_["prompts"][0]["ids"].get<std::vector<int32_t>>();
  const int n = 11;  // pads to the 12 bucket
  std::vector<Seq> batch(n), single(n);
  std::vector<Seq*> bp;
  std::vector<std::vector<int32_t>> first;
  for (int i = 0; i < n; ++i) {
    bp.push_back(&batch[size_t(i)]);
    first.emplace_back(ids.begin(), ids.begin() + 1 + i % int(ids.size()));  // different lengths
  }
  auto lb = step(bp, first);
  std::vector<int32_t> tb(n), ts(n);
  for (int i = 0; i < n; ++i) {
    tb[size_t(i)] = argmax(lb.data() + size_t(i) * size_t(vocab), vocab);
    ts[size_t(i)] = argmax(step({&single[size_t(i)]}, {first[size_t(i)]}).data(), vocab);
  }
  for (int it = 0; it < 6; ++it) {
    ASSERT_EQ(tb, ts) << "decode step " << it;
    std::vector<std::vector<int32_t>> next;
    for (int i = 0; i < n; ++i) next.push_back({tb[size_t(i)]});
    lb = step(bp, next);
    for (int i = 0; i < n; ++i) {
      tb[size_t(i)] = argmax(lb.data() + size_t(i) * size_t(vocab), vocab);
      ts[size_t(i)] = argmax(step({&single[size_t(i)]}, {{ts[size_t(i)]}}).data(), vocab);
    }
  }
}

TEST_F(CudaDocsLlama, BadStepsAreStatusNotCrash) {
  StepBatch b;
  b.token_ids = {1, 2};
  b.seqs = {{0, 1, nullptr, 0, true}};
  std::vector<float> logits(size_t(runner_->vocab_size()));
  EXPECT_FALSE(runner_->forward(b, logits.data()).is_ok());
  EXPECT_FALSE(runner_->allocate_kv({16, 16, KvDType::BF16}).is_ok());  // already allocated
}

}  // namespace
}  // namespace tern::test
