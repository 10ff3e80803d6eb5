// Pipeline parallelism under mpirun (issue 17): `tern run`, `tern eval ppl` and `tern bench offline`
// with --pp 2 (and TP × PP = 2 × 2 on 4 ranks, oversubscribed) give the single process's greedy
// tokens and perplexity; `tern serve --pp 2` answers concurrent requests like a single server, lives
// through a cancelled stream, reuses its prefix cache, and ends within seconds when a rank dies;
// a rank count that does not fit the layout is a one-line error. Expert parallelism inside the
// stages (--pp 2 --ep 2) on the tiny MoE archs, and --pp-layers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "mpi_server.h"
#include "mpi_test_util.h"
#include "serve_test_util.h"
#include "tiny_moe_model.h"

namespace tern::test {
namespace {

std::string docs_run(int n) {
  return "run -m '" + model_dir("docs-llama-28m") + "' -p 'The configuration file' -n " + std::to_string(n) +
         " --temp 0 --ignore-eos -q -t 1";
}

TEST(MpiPp, RunGreedyMatchesTheSingleProcessOnDocsLlama) {
  TERN_SKIP_WITHOUT_MPI();
  const CommandResult one = run_tern(docs_run(32));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const CommandResult pp = run_tern_mpi(2, docs_run(32) + " --pp 2");
  ASSERT_EQ(pp.exit_code, 0) << pp.err << pp.out;
  EXPECT_FALSE(one.out.empty());
  EXPECT_EQ(pp.out, one.out);
  // Each stage says how much of the run it computed (docs/parallel.md). The split is by bytes: the
  // last stage's 8.4 MB LM head weighs 1.4 layers of 5.9 MB, so 5 + 3 (parallel/pp_split.h).
  EXPECT_NE(pp.err.find("pp stage 0/2 rank 0 (layers 0..4)"), std::string::npos) << pp.err;
  EXPECT_NE(pp.err.find("pp stage 1/2 rank 1 (layers 5..7)"), std::string::npos) << pp.err;
}

TEST(MpiPp, TpTimesPpOnFourRanksMatchesTheSingleProcess) {
  TERN_SKIP_WITHOUT_MPI();
  const CommandResult one = run_tern(docs_run(16));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const CommandResult both = run_tern_mpi(4, docs_run(16) + " --tp 2 --pp 2");
  ASSERT_EQ(both.exit_code, 0) << both.err << both.out;
  EXPECT_EQ(both.out, one.out);
}

TEST(MpiPp, EvalPplMatchesTheSingleProcess) {
  TERN_SKIP_WITHOUT_MPI();
  const std::string args = "eval ppl -m '" + model_dir("docs-llama-28m") + "' -f '" + shared_dir() +
                           "/data/docs-val.txt' --ctx 128 --windows 4 --json -t 1";
  const CommandResult one = run_tern(args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const CommandResult pp = run_tern_mpi(2, args + " --pp 2");
  ASSERT_EQ(pp.exit_code, 0) << pp.err;
  const auto a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(pp.out);
  // The stages run the same layers on the same rows in the same order: the same numbers.
  EXPECT_NEAR(b["ppl"].get<double>(), a["ppl"].get<double>(), 1e-6 * a["ppl"].get<double>());
  EXPECT_EQ(b["tokens"], a["tokens"]);
}

TEST(MpiPp, BenchOfflineRunsOverTwoStages) {
  TERN_SKIP_WITHOUT_MPI();
  const CommandResult r = run_tern_mpi(
      2, "bench offline -m '" + model_dir("docs-llama-28m") + "' -t 1 --pp 2 --requests 4 --concurrency 4 --prompt-len 16 --output-len 8 --kv-memory 64MiB");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.err.find("pp stage 1/2"), std::string::npos) << r.err;
}

TEST(MpiPp, WrongRankCountIsOneLineError) {
  TERN_SKIP_WITHOUT_MPI();
  const CommandResult r = run_tern_mpi(2, docs_run(2) + " --tp 2 --pp 2");
  EXPECT_NE(r.exit_code, 0);
  const std::string line = "tern: error: --tp 2 --pp 2 needs 4 ranks but this job has 2 (launch with mpirun -np 4)";
  EXPECT_NE(r.err.find(line), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(line), r.err.rfind(line));  // once: only rank 0 says it
}

TEST(MpiPp, MoreStagesThanLayersIsAnError) {
  TERN_SKIP_WITHOUT_MPI();
  const CommandResult r = run_tern_mpi(4, "run -m '" + tiny_arch_dir("llama") + "' -p hi -n 2 -t 1 --pp 4");
  EXPECT_NE(r.exit_code, 0);
  // Every rank fails alike at load; the first to exit may end the job before rank 0 has written its
  // line, so any rank's line will do ("tern: error: [rank N: ]--pp 4: ...").
  EXPECT_NE(r.err.find("--pp 4: config.json num_hidden_layers = 2 is fewer than the stages"), std::string::npos)
      << r.err;
}

std::string bench_pp_path() { return std::string(TERN_BUILD_DIR) + "/bench_pp"; }

std::string greedy_line(const std::string& out) {
  const size_t at = out.find("tokens:");
  if (at == std::string::npos) return "";
  return out.substr(at, out.find('\n', at) - at);
}

// bench_pp's greedy tokens on a tiny arch: single process vs `mpirun -np N bench_pp ... layout`.
void expect_same_greedy(const char* arch, int np, const std::string& layout) {
  if (!std::filesystem::exists(bench_pp_path())) GTEST_SKIP() << "bench_pp not built (TERN_BUILD_BENCH=OFF)";
  const std::string dir = tiny_arch_dir(arch);
  const std::string args = "'" + dir + "' --reference-ids '" + dir + "/reference.json' --greedy 16 --threads 1";
  const CommandResult one = run_shell("'" + bench_pp_path() + "' " + args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const CommandResult par = run_shell(mpirun_prefix(np) + "'" + bench_pp_path() + "' " + args + " " + layout);
  ASSERT_EQ(par.exit_code, 0) << par.err;
  ASSERT_FALSE(greedy_line(one.out).empty()) << one.out;
  EXPECT_EQ(greedy_line(par.out), greedy_line(one.out)) << arch << " " << layout;
}

class MpiPpTiny : public ::testing::TestWithParam<const char*> {};

TEST_P(MpiPpTiny, GreedyTokensMatchTheSingleProcess) {
  TERN_SKIP_WITHOUT_MPI();
  expect_same_greedy(GetParam(), 2, "--pp 2");
}

INSTANTIATE_TEST_SUITE_P(All, MpiPpTiny,
                         ::testing::Values("llama", "llama_tied", "qwen2", "qwen3", "mistral_swa", "gemma2", "phi3",
                                           "glm4", "gpt2", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"));

TEST(MpiPp, TpTimesPpOnTinyArchs) {
  TERN_SKIP_WITHOUT_MPI();
  for (const char* arch : {"llama", "qwen3", "gemma2"}) expect_same_greedy(arch, 4, "--tp 2 --pp 2");
}

class MpiEpTiny : public ::testing::TestWithParam<const char*> {};

TEST_P(MpiEpTiny, ExpertParallelGreedyTokensMatchTheSingleProcess) {
  TERN_SKIP_WITHOUT_MPI();
  expect_same_greedy(GetParam(), 2, "--ep 2");
}

INSTANTIATE_TEST_SUITE_P(Moe, MpiEpTiny, ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"));

// --pp 2 --ep 2 on 4 ranks: two stages, each two expert groups of one rank (world rank r: stage r / 2,
// group r % 2). `tern run` on the tiny MoE archs with a byte-level tokenizer (tiny_moe_model.h).
class MpiPpEpTiny : public ::testing::TestWithParam<const char*> {};

TEST_P(MpiPpEpTiny, RunGreedyMatchesTheSingleProcess) {
  TERN_SKIP_WITHOUT_MPI();
  const TinyMoeModel m(GetParam());
  const std::string args = "run -m '" + m.path() + "' -p 'The configuration file' -n 16 --temp 0 --ignore-eos -q -t 1";
  const CommandResult one = run_tern(args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_FALSE(one.out.empty());
  const CommandResult par = run_tern_mpi(4, args + " --pp 2 --ep 2");
  ASSERT_EQ(par.exit_code, 0) << par.err << par.out;
  EXPECT_EQ(par.out, one.out);
  EXPECT_NE(par.err.find("pp stage 1/2 rank 3 (layers 1..1)"), std::string::npos) << par.err;
}

INSTANTIATE_TEST_SUITE_P(Moe, MpiPpEpTiny, ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"));

// --tp 2 --pp 2 --ep 2 on 8 ranks (oversubscribed): each stage two expert groups of two TP ranks, so
// a rank is in two group communicators over MPI (its TP pair and its stage's four ranks). Qwen2-MoE:
// its gated shared expert is cut by TP and added by the first group only.
TEST(MpiPpEp, TpTimesPpTimesEpOnEightRanks) {
  TERN_SKIP_WITHOUT_MPI();
  const TinyMoeModel m("qwen2_moe");
  const std::string args = "run -m '" + m.path() + "' -p 'The configuration file' -n 16 --temp 0 --ignore-eos -q -t 1";
  const CommandResult one = run_tern(args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const CommandResult par = run_tern_mpi(8, args + " --tp 2 --pp 2 --ep 2");
  ASSERT_EQ(par.exit_code, 0) << par.err << par.out;
  EXPECT_EQ(par.out, one.out);
}

// Perplexity under --pp 2 --ep 2 (the decoder's windows, not the engine): the same number. Qwen3-MoE's
// top-2 routing: each row's two experts add in expert order on whichever ranks hold them.
TEST(MpiPpEp, EvalPplMatchesTheSingleProcess) {
  TERN_SKIP_WITHOUT_MPI();
  const TinyMoeModel m("qwen3_moe");
  const std::string args = "eval ppl -m '" + m.path() + "' -f '" + shared_dir() +
                           "/data/docs-val.txt' --ctx 64 --windows 3 --json -t 1";
  const CommandResult one = run_tern(args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const CommandResult par = run_tern_mpi(4, args + " --pp 2 --ep 2");
  ASSERT_EQ(par.exit_code, 0) << par.err;
  const auto a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(par.out);
  EXPECT_NEAR(b["ppl"].get<double>(), a["ppl"].get<double>(), 1e-6 * a["ppl"].get<double>());
  EXPECT_EQ(b["tokens"], a["tokens"]);
}

TEST(MpiPpEp, WrongRankCountIsOneLineError) {
  TERN_SKIP_WITHOUT_MPI();
  const TinyMoeModel m("qwen3_moe");
  const CommandResult r = run_tern_mpi(2, "run -m '" + m.path() + "' -p hi -n 2 -t 1 --pp 2 --ep 2");
  EXPECT_NE(r.exit_code, 0);
  const std::string line = "tern: error: --tp 1 --pp 2 --ep 2 needs 4 ranks but this job has 2 (launch with mpirun -np 4)";
  EXPECT_NE(r.err.find(line), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(line), r.err.rfind(line));  // once: only rank 0 says it
}

// --pp-layers overrides the split by bytes (5 + 3 on docs-llama-28m): the same tokens, the stages
// say their layers; a list that does not fit the model or --pp is one line naming the flag.
TEST(MpiPp, PpLayersSetsTheStagesLayers) {
  TERN_SKIP_WITHOUT_MPI();
  const CommandResult one = run_tern(docs_run(16));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const CommandResult pp = run_tern_mpi(2, docs_run(16) + " --pp 2 --pp-layers 2,6");
  ASSERT_EQ(pp.exit_code, 0) << pp.err << pp.out;
  EXPECT_EQ(pp.out, one.out);
  EXPECT_NE(pp.err.find("pp stage 0/2 rank 0 (layers 0..1)"), std::string::npos) << pp.err;
  EXPECT_NE(pp.err.find("pp stage 1/2 rank 1 (layers 2..7)"), std::string::npos) << pp.err;
  struct Bad {
    std::string flags, line;
  };
  const Bad bad[] = {
      {"--pp 2 --pp-layers 4,5", "tern: error: --pp-layers 4,5 adds up to 9 layers but config.json num_hidden_layers = 8"},
      {"--pp 2 --pp-layers 8", "tern: error: --pp-layers 8 lists 1 stage(s) but --pp is 2 (one layer count per stage)"},
      {"--pp 2 --pp-layers 0,8", "tern: error: --pp-layers '0,8': '0' is not a layer count"},
      {"--pp 2 --pp-layers 4,x", "tern: error: --pp-layers '4,x': 'x' is not a layer count"},
      {"--tp 2 --pp-layers 4,4", "tern: error: --pp-layers 4,4 sets the layers of pipeline stages: it needs --pp 2 or more"},
  };
  for (const Bad& b : bad) {
    const CommandResult r = run_tern_mpi(2, docs_run(2) + " " + b.flags);
    EXPECT_NE(r.exit_code, 0) << b.flags;
    // The sum is checked at load, where every rank fails alike (and the first to exit may end the job
    // before rank 0 has written): any rank's line will do there; the others are rank 0's, once.
    EXPECT_NE(r.err.find(b.line.substr(std::string("tern: error: ").size())), std::string::npos) << b.flags << "\n" << r.err;
  }
  // Without mpirun, one process: the flag needs --pp.
  const CommandResult single = run_tern(docs_run(2) + " --pp-layers 4,4");
  EXPECT_EQ(single.exit_code, 1);
  EXPECT_NE(single.err.find("tern: error: --pp-layers 4,4 sets the layers of pipeline stages: it needs --pp 2 or more"),
            std::string::npos) << single.err;
}

TEST(MpiEp, DenseModelIsRefusedByName) {
  TERN_SKIP_WITHOUT_MPI();
  const CommandResult r = run_tern_mpi(2, docs_run(2) + " --ep 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--ep 2: config.json has no mixture-of-experts layers"), std::string::npos) << r.err;
}


// The third is 45 tokens: its first two 16-token blocks are cached for the repeat below.
const char* kPrompts[] = {"The configuration file", "To install the package",
                          "The configuration file of the server lists the models it serves, the port it listens on, "
                          "the number of threads each request may use, and the size of the key value cache in megabytes"};

// Three concurrent requests, a cancelled stream and a prefix-cache hit (mpi_server.h); the pipeline
// cuts each step in micro-batches.
TEST(MpiPpServe, ConcurrentRequestsCancellationAndPrefixCache) {
  TERN_SKIP_WITHOUT_MPI();
  expect_serves_like_one_process(2, "--pp 2");
}

// A completion of n greedy tokens (empty on any failure).
std::string complete_n(int port, const std::string& prompt, int n) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const nlohmann::json body = {{"model", "docs-llama-28m"}, {"prompt", prompt}, {"max_tokens", n},
                               {"temperature", 0}, {"ignore_eos", true}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r || r->status != 200) return "";
  return nlohmann::json::parse(r->body)["choices"][0]["text"];
}

// Steps in flight (docs/parallel.md): six requests of different lengths, four at once and two
// arriving while those decode, so groups fill, drain and refill and requests finish mid-run; the
// answers must be the single server's, with the pipeline kept full (default) and one step at a time.
TEST(MpiPpServe, StepsInFlightAnswerLikeTheSingleServer) {
  TERN_SKIP_WITHOUT_MPI();
  const std::string args = "--kv-dtype f32 --kv-memory-mb 64";
  const int lens[6] = {24, 6, 40, 12, 17, 3};
  auto prompt = [](int i) { return std::string(kPrompts[i % 3]) + (i >= 3 ? " again" : ""); };
  std::string want[6];
  {
    ServerProcess one("-t 1 " + args);
    ASSERT_GT(one.port(), 0) << one.log();
    for (int i = 0; i < 6; ++i) want[i] = complete_n(one.port(), prompt(i), lens[i]);
  }
  for (const std::string layout : {" --pp 2", " --pp 2 --pp-steps-in-flight 1", " --pp 2 --pp-micro-batches 1"}) {
    MpiServer pp(2, args + layout);
    ASSERT_GT(pp.port(), 0) << pp.log();
    std::string got[6];
    std::vector<std::thread> ts;
    for (int i = 0; i < 6; ++i) {
      if (i == 4) std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the last two arrive mid-run
      ts.emplace_back([&, i] { got[i] = complete_n(pp.port(), prompt(i), lens[i]); });
    }
    for (auto& t : ts) t.join();
    for (int i = 0; i < 6; ++i) {
      EXPECT_FALSE(want[i].empty());
      EXPECT_EQ(got[i], want[i]) << layout << ": request " << i;
    }
  }
}

TEST(MpiPpServe, ARankThatDiesEndsTheJobWithinSeconds) {
  TERN_SKIP_WITHOUT_MPI();
  MpiServer s(2, "--kv-memory-mb 64 --pp 2");
  ASSERT_GT(s.port(), 0) << s.log();
  ASSERT_FALSE(complete(s.port(), "Hello").empty());
  const std::vector<pid_t> ranks = s.ranks();
  ASSERT_EQ(ranks.size(), 2u) << s.log();
  // A request in flight while the last stage dies: it must not hang the server.
  std::thread inflight([&] { (void)complete(s.port(), "The configuration file"); });
  kill(ranks.back(), SIGKILL);  // the higher pid: rank 1, the last stage
  const int code = s.wait_exit(30);
  inflight.join();
  EXPECT_NE(code, -1) << "mpirun still running 30 s after a rank died\n" << s.log();
  EXPECT_NE(code, 0);
}

}  // namespace
}  // namespace tern::test
