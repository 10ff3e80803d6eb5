// Host-side logic of the CUDA backend, run on the CPU in every build (with or without nvcc):
// step packing and its argument checks, graph bucket choice, workspace / KV sizing, device probe.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "backend/cuda/cublaslt_library.h"
#include "backend/cuda/device.h"
#include "backend/cuda/graph_buckets.h"
#include "backend/cuda/memory_plan.h"
#include "backend/cuda/step_pack.h"

namespace tern::cuda {
namespace {

PackLimits limits() {
  PackLimits l;
  l.max_tokens = 64;
  l.max_seqs = 8;
  l.max_blocks = 4;
  l.block_size = 16;
  l.num_blocks = 10;
  l.vocab = 100;
  l.max_logit_rows = 8;
  return l;
}

TEST(CudaStepPack, RaggedBatchFlattensPositionsSequencesAndTables) {
  const int32_t bt0[] = {3, 7}, bt1[] = {5};
  StepBatch b;
  b.token_ids = {1, 2, 3, 4, 9};
  b.seqs = {{14, 4, bt0, 2, true}, {6, 1, bt1, 1, true}};  // seq 0: positions 14..17 cross into block 7
  PackedStep p;
  ASSERT_TRUE(pack_step(b, limits(), p).is_ok());
  EXPECT_EQ(p.pos, (std::vector<int32_t>{14, 15, 16, 17, 6}));
  EXPECT_EQ(p.seq, (std::vector<int32_t>{0, 0, 0, 0, 1}));
  EXPECT_EQ(p.block_tables, (std::vector<int32_t>{3, 7, -1, -1, 5, -1, -1, -1}));
  EXPECT_EQ(p.logit_rows, (std::vector<int32_t>{3, 4}));
  EXPECT_FALSE(p.decode_only);
}

// Speculative verification: a sequence of 1 + 3 drafts asks for the logits of its last 4 positions.
TEST(CudaStepPack, SeveralLogitRowsPerSequence) {
  const int32_t bt0[] = {3, 7}, bt1[] = {5};
  StepBatch b;
  b.token_ids = {1, 2, 3, 4, 9};
  b.seqs = {{14, 4, bt0, 2, true, 4}, {6, 1, bt1, 1, true, 1}};
  PackedStep p;
  ASSERT_TRUE(pack_step(b, limits(), p).is_ok());
  EXPECT_EQ(p.logit_rows, (std::vector<int32_t>{0, 1, 2, 3, 4}));
  b.seqs[0].n_logits = 5;  // more rows than tokens
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
  b.seqs[0].n_logits = 0;
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
}

TEST(CudaStepPack, RejectsEveryMalformedField) {
  const int32_t bt[] = {3, 7}, bad[] = {3, 10};
  PackedStep p;
  StepBatch b;
  b.token_ids = {1, 2};
  b.seqs = {{0, 1, bt, 1, true}};  // 2 ids, 1 token
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
  b.token_ids = {100};  // id out of vocab
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
  b.token_ids = {1};
  b.seqs = {{16, 1, bt, 1, false}};  // position 16 needs 2 blocks
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
  b.seqs = {{16, 1, bad, 2, false}};  // block id past the pool
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
  b.seqs = {{64, 1, bt, 2, false}};  // past max_blocks * block_size
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
  b.seqs = {{0, 1, nullptr, 1, false}};
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
  b.seqs = {{-1, 1, bt, 1, false}};
  EXPECT_FALSE(pack_step(b, limits(), p).is_ok());
  b.seqs = {{0, 1, bt, 1, true}};
  EXPECT_TRUE(pack_step(b, limits(), p).is_ok());
  EXPECT_TRUE(p.decode_only);
  StepBatch many;  // more sequences than the block-table matrix has rows
  for (int i = 0; i < 9; ++i) {
    many.token_ids.push_back(1);
    many.seqs.push_back({0, 1, bt, 1, false});
  }
  EXPECT_FALSE(pack_step(many, limits(), p).is_ok());
}

TEST(CudaStepPack, SplitStepKeepsOrderAndCutsLongPrompts) {
  const int32_t bt[] = {1, 2, 3};
  StepBatch b;
  b.seqs = {{0, 5, bt, 3, true}, {7, 1, bt, 1, true}, {0, 2, bt, 1, false}};
  for (int i = 0; i < 8; ++i) b.token_ids.push_back(i);
  const auto parts = split_step(b, 3);
  ASSERT_EQ(parts.size(), 3u);  // [0..2] of seq 0 | [3..4] of seq 0 + seq 1 | seq 2
  std::vector<int32_t> ids;
  int wanted = 0;
  for (const auto& p : parts) {
    int64_t n = 0;
    for (const auto& s : p.seqs) n += s.n_tokens, wanted += s.want_logits;
    EXPECT_LE(n, 3);
    EXPECT_EQ(n, int64_t(p.token_ids.size()));
    ids.insert(ids.end(), p.token_ids.begin(), p.token_ids.end());
  }
  EXPECT_EQ(ids, b.token_ids);
  EXPECT_EQ(wanted, 2);
  EXPECT_EQ(parts[1].seqs[0].pos0, 3);
  EXPECT_FALSE(parts[0].seqs[0].want_logits);
  EXPECT_TRUE(parts[1].seqs[0].want_logits);
  EXPECT_EQ(split_step(b, 100).size(), 1u);
}

TEST(CudaStepPack, DecodePaddingAddsInertRows) {
  const int32_t bt[] = {2};
  StepBatch b;
  b.token_ids = {5, 6, 7};
  b.seqs = {{3, 1, bt, 1, true}, {4, 1, bt, 1, false}, {5, 1, bt, 1, true}};
  PackedStep p;
  ASSERT_TRUE(pack_step(b, limits(), p).is_ok());
  ASSERT_TRUE(p.decode_only);
  pad_decode_step(p, 4, limits().max_blocks);
  EXPECT_EQ(p.n_seqs, 4);
  EXPECT_EQ(p.ids.size(), 4u);
  EXPECT_EQ(p.seq.back(), 3);
  EXPECT_EQ(p.block_tables.size(), 16u);
  for (int c = 0; c < 4; ++c) EXPECT_EQ(p.block_tables[size_t(12 + c)], -1);
  EXPECT_EQ(p.logit_rows, (std::vector<int32_t>{0, 2}));
}

TEST(CudaGraphBuckets, AscendingAndCoverEveryBatch) {
  const auto b = decode_graph_buckets(64);
  EXPECT_EQ(b, (std::vector<int64_t>{1, 2, 4, 8, 12, 16, 24, 32, 48, 64}));
  for (int64_t n = 1; n <= 64; ++n) {
    const int i = choose_graph_bucket(b, n);
    ASSERT_GE(i, 0);
    EXPECT_GE(b[size_t(i)], n);
    if (i > 0) {
      EXPECT_LT(b[size_t(i - 1)], n);
    }
  }
  EXPECT_EQ(choose_graph_bucket(b, 65), -1);
  EXPECT_EQ(choose_graph_bucket(b, 0), -1);
  EXPECT_EQ(decode_graph_buckets(6), (std::vector<int64_t>{1, 2, 4, 6}));
  EXPECT_EQ(decode_graph_buckets(100).back(), 100);
}

TEST(CudaGraphBuckets, AttentionSplitsFillTheGpuButNotBeyondTheContext) {
  EXPECT_EQ(decode_attention_splits(1, 32, 132, 131072), 64);  // batch 1: many splits
  EXPECT_EQ(decode_attention_splits(128, 32, 132, 131072), 1);  // 4096 warps already
  EXPECT_EQ(decode_attention_splits(1, 32, 132, 512), 2);      // short context caps it
  EXPECT_GE(decode_attention_splits(4, 8, 132, 8192), 1);
}

ModelConfig llama8b() {
  ModelConfig c;
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.n_layers = 32;
  c.n_heads = 32;
  c.n_kv_heads = 8;
  c.head_dim = 128;
  return c;
}

TEST(CudaMemoryPlan, KvBlockBytesMatchLlama8b) {
  // 2 (K,V) x 32 layers x 16 slots x 8 heads x 128 x 2 bytes = 2 MiB per block.
  EXPECT_EQ(cuda_kv_block_bytes(llama8b(), 16), size_t(2) << 20);
}

TEST(CudaMemoryPlan, WorkspaceIsAlignedDisjointAndSized) {
  WorkspaceSpec s;
  s.max_tokens = 512;
  s.max_logit_rows = 64;
  const WorkspaceLayout l = plan_workspace(llama8b(), s);
  const size_t offs[] = {l.ids, l.pos, l.seq, l.logit_rows, l.argmax, l.x, l.xn, l.q, l.k, l.v,
                         l.attn, l.gate, l.up, l.act_bf16, l.partial, l.sel, l.logits, l.gemm};
  for (size_t i = 0; i < std::size(offs); ++i) {
    EXPECT_EQ(offs[i] % ArenaPlan::kAlign, 0u);
    if (i > 0) {
      EXPECT_GT(offs[i], offs[i - 1]);
    }
  }
  EXPECT_EQ(l.up - l.gate, size_t(512) * 14336 * 4);               // gate: [T, inter] f32
  EXPECT_EQ(l.gemm - l.logits, size_t(64) * 128256 * 4);            // logits: [R, vocab] f32
  EXPECT_EQ(l.total, l.gemm + s.gemm_workspace);
  EXPECT_EQ(l.partial_units, 512 * 32 + 4096);
  EXPECT_EQ(l.sel - l.partial, size_t(l.partial_units) * 130 * 4);
  EXPECT_LT(l.total, size_t(1) << 30);  // well under a GiB next to 16 GB of weights
}

TEST(CudaMemoryPlan, CheckFitsNamesTheShortfall) {
  EXPECT_TRUE(check_fits("weights", 10, 10).is_ok());
  const Status s = check_fits("weights", size_t(3) << 30, size_t(1) << 30);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("3.00 GiB"), std::string::npos) << s.message();
}

TEST(CudaDevice, ProbeEitherFindsADeviceOrSaysNoCudaDevice) {
  auto d = probe_device(0);
  if (d.is_ok()) {
    EXPECT_TRUE(built_with_cuda());
    EXPECT_GE(d->cc_major, 8);
    EXPECT_FALSE(describe(*d).empty());
  } else {
    const std::string& m = d.status().message();
    EXPECT_TRUE(m.rfind("no CUDA device", 0) == 0 || m.rfind("no NVIDIA", 0) == 0 ||
                m.rfind("the NVIDIA driver", 0) == 0)
        << m;
    // A CUDA build on a machine with no driver at all says so, not "driver version is insufficient".
    void* lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (lib) dlclose(lib);
    if (built_with_cuda() && !lib) {
      EXPECT_EQ(m, "no NVIDIA driver / GPU found (no libcuda.so.1 on this machine)");
    }
  }
  EXPECT_FALSE(probe_device(-1).is_ok());
}

TEST(CudaDevice, ProbeFailuresSayWhatIsMissing) {
  const std::string runtime_msg = "CUDA driver version is insufficient for CUDA runtime version";
  EXPECT_EQ(describe_probe_failure(ProbeFailure::kInsufficientDriver, runtime_msg, false),
            "no NVIDIA driver / GPU found (no libcuda.so.1 on this machine)");
  const std::string old = describe_probe_failure(ProbeFailure::kInsufficientDriver, runtime_msg, true);
  EXPECT_NE(old.find("older"), std::string::npos) << old;
  EXPECT_NE(old.find(runtime_msg), std::string::npos) << old;
  EXPECT_EQ(describe_probe_failure(ProbeFailure::kNoDevice, "no CUDA-capable device is detected", true),
            "no NVIDIA GPU found (the driver reports none)");
  EXPECT_EQ(describe_probe_failure(ProbeFailure::kOther, "unknown error", true), "no CUDA device: unknown error");
}

bool maps_contain(const std::string& what) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find(what) != std::string::npos) return true;
  return false;
}

// cuBLASLt is opened by the CUDA backend when it first builds a GEMM, never by merely linking tern:
// mapped at start-up it held ~100 MiB of every CPU run's resident memory. This process links tern_lib
// as the tern binary does; the test comes before the one below that opens the library.
TEST(CudaCublasLt, NotMappedUntilTheBackendOpensIt) { EXPECT_FALSE(maps_contain("libcublasLt")); }

#if TERN_HAVE_CUDA
// Opening needs no GPU or driver, only the library (present wherever nvcc built this).
TEST(CudaCublasLt, OpensAndResolvesEveryEntryPoint) {
  CublasLtLibrary lt;
  ASSERT_TRUE(lt.open().is_ok());
  EXPECT_TRUE(lt.is_open());
  EXPECT_TRUE(maps_contain("libcublasLt"));
  for (const void* fn : {(const void*)lt.create, (const void*)lt.destroy, (const void*)lt.matmul,
                         (const void*)lt.algo_get_heuristic, (const void*)lt.desc_create, (const void*)lt.desc_destroy,
                         (const void*)lt.desc_set_attribute, (const void*)lt.preference_create,
                         (const void*)lt.preference_destroy, (const void*)lt.preference_set_attribute,
                         (const void*)lt.layout_create, (const void*)lt.layout_destroy})
    EXPECT_NE(fn, nullptr);
  EXPECT_TRUE(lt.open().is_ok());  // a second open is a no-op
}
#endif

}  // namespace
}  // namespace tern::cuda
