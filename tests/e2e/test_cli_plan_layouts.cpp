// tern plan --devices N over a link (issue 17 item 6): every TP × PP × EP layout priced with its
// communication per token, as JSON; --check --measured against a namespace results file; the
// one-line errors of options given without what they go with.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace tern::test {
namespace {

std::string config(const std::string& name) {
  return "'" + std::string(TERN_SOURCE_DIR) + "/tests/data/plan_configs/" + name + ".json'";
}

void expect_one_line_error(const CommandResult& r, const std::string& must_mention) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tern: error: "), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << r.err;
}

TEST(CliPlanLayouts, MixtralOnFourDevicesPricesEveryLayout) {
  auto r = run_tern("plan -m " + config("mixtral-8x7b") +
                    " -d h100-sxm --ctx 4096 --devices 4 --link-gbps 400 --link-latency-us 5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  // tp4, pp4, ep4, tp2 x pp2, tp2 x ep2 and pp2 x ep2 (the engine runs --pp with --ep: each stage a --ep job).
  ASSERT_EQ(j["layouts"].size(), 6u);
  int pp_ep = 0;
  for (const auto& l : j["layouts"]) {
    EXPECT_EQ(l["tp"].get<int>() * l["pp"].get<int>() * l["ep"].get<int>(), 4) << l;
    if (l["pp"].get<int>() == 2 && l["ep"].get<int>() == 2) {
      ++pp_ep;
      // Its traffic: the MoE all-reduces between a stage's 2 ranks, one activation send, the logits back.
      EXPECT_EQ(l["name"].get<std::string>(), "pp2×ep2");
      EXPECT_EQ(l["comm_per_step"]["ep"]["messages"].get<double>(), 32) << l;
      EXPECT_EQ(l["comm_per_step"]["pp"]["messages"].get<double>(), 1) << l;
      EXPECT_EQ(l["comm_per_step"]["tp"]["messages"].get<double>(), 0) << l;
    }
    ASSERT_EQ(l["comm_s_added_latency"].size(), 2u);  // +50 µs and +200 µs per message
    EXPECT_GT(l["comm_s_added_latency"][1].get<double>(), l["comm_s_added_latency"][0].get<double>());
  }
  EXPECT_EQ(pp_ep, 1);
  EXPECT_TRUE(j["chosen"].is_string());
  // A dense model is offered no EP layout.
  auto dense = run_tern("plan -m " + config("llama-3.2-1b") + " -d dev-epyc-2vcpu --devices 4 --link-gbps 1 --json");
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  const auto d = nlohmann::json::parse(dense.out);
  ASSERT_EQ(d["layouts"].size(), 3u);  // tp4, tp2 x pp2, pp4
  for (const auto& l : d["layouts"]) EXPECT_EQ(l["ep"].get<int>(), 1) << l;

  auto table = run_tern("plan -m " + config("llama-3.2-1b") + " -d dev-epyc-2vcpu --ctx 1024 --devices 2 --link-gbps 1");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  for (const char* s : {"tp2", "pp2", "comm ms/tok", "+50us", "+200us", "chosen:"}) {
    EXPECT_NE(table.out.find(s), std::string::npos) << s << "\n" << table.out;
  }
}

TEST(CliPlanLayouts, CheckMeasuredComparesWithTheNamespaceRuns) {
  TempDir tmp;
  write_file(tmp.file("results.jsonl"),
             R"({"rate": "1gbit", "kind": "link", "rows": [{"latency_us": 21.0, "bandwidth_gbps": 0.95}], "burst_bytes": 0}
{"ranks": 2, "decode_tok_s": 10.0, "all_reduce_link_s_per_token": 0.003, "comm_s_per_token": 0.006, "rate": "1gbit", "layout": "tp2", "kind": "decode"}
)");
  auto r = run_tern("plan --check -m " + config("llama-3.2-1b") + " --measured '" + tmp.file("results.jsonl") + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["runs"].size(), 1u);
  const auto& row = j["runs"][0]["rows"][0];
  EXPECT_NEAR(row["predicted_s"].get<double>(), 32 * 21e-6 + 262144 * 8 / 1e9, 1e-9);
  EXPECT_TRUE(row["within"].get<bool>());
  EXPECT_TRUE(j["within_bounds"].get<bool>());
  // Every row priced again with 50 and 200 µs more per message (the issue's farther machines).
  EXPECT_NEAR(row["predicted_s_added_50us"].get<double>() - row["predicted_s"].get<double>(), 32 * 50e-6, 1e-9);
  EXPECT_NEAR(row["predicted_s_added_200us"].get<double>() - row["predicted_s"].get<double>(), 32 * 200e-6, 1e-9);
}

TEST(CliPlanLayouts, CheckMeasuredPricesTheLinkWithBenchLinksFits) {
  TempDir tmp;
  // bench_link's fits in the link row: 32 all-reduces of 8 KB at 50 µs + 1 ns a byte = 1.862 ms.
  write_file(tmp.file("results.jsonl"),
             R"({"rate": "10gbit", "kind": "link", "rows": [{"fit": "all_reduce", "min_bytes": 8, "max_bytes": 32768, "alpha_us": 50, "beta_ns_per_byte": 1.0}, {"latency_us": 12.0, "bandwidth_gbps": 4.5}]}
{"ranks": 2, "decode_tok_s": 10.0, "all_reduce_link_s_per_token": 0.0019, "comm_s_per_token": 0.006, "rate": "10gbit", "layout": "tp2", "kind": "decode"}
)");
  auto r = run_tern("plan --check -m " + config("llama-3.2-1b") + " --measured '" + tmp.file("results.jsonl") + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& row = j["runs"][0]["rows"][0];
  EXPECT_NEAR(row["predicted_s"].get<double>(), 32 * (50e-6 + 8192e-9), 1e-9);
  EXPECT_TRUE(row["within"].get<bool>());
  // The table names the fits it priced with.
  auto t = run_tern("plan --check -m " + config("llama-3.2-1b") + " --measured '" + tmp.file("results.jsonl") + "'");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("all_reduce"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("+200us/msg"), std::string::npos) << t.out;
}

TEST(CliPlanLayouts, DevicesPricedWithALinkFitsFile) {
  TempDir tmp;
  // bench_link's output (version 2): the all-reduce's line at a 2 ms gap and its α(gap).
  write_file(tmp.file("link.out"),
             R"([a banner mpirun prints]
{"fit":"all_reduce","min_bytes":8,"max_bytes":32768,"alpha_us":30,"beta_ns_per_byte":1.0,"gap_us":2000}
{"fit":"all_reduce","min_bytes":131072,"max_bytes":4194304,"alpha_us":100,"beta_ns_per_byte":2.0,"gap_us":2000}
{"alpha_gap":"all_reduce","min_bytes":8,"max_bytes":32768,"beta_ns_per_byte":1.0,"alpha0_us":10,"wake_us":50,"tau_us":1000,"points":[[0,10],[10000,60]]}
{"latency_us":20.0,"bandwidth_gbps":4.0,"fits_version":2}
)");
  const std::string base = "plan -m " + config("llama-3.2-1b") + " --devices 2 -d dev-epyc-2vcpu -c 1 --link-gbps 10";
  auto r = run_tern(base + " --link-fits '" + tmp.file("link.out") + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["link"]["priced_by"], "bench_link_fits");
  bool saw_tp = false;
  for (const auto& l : j["layouts"]) {
    if (l["tp"] != 2) continue;
    saw_tp = true;
    EXPECT_GT(l["call_gap_s"].get<double>(), 0);
  }
  EXPECT_TRUE(saw_tp);
  auto t = run_tern(base + " --link-fits '" + tmp.file("link.out") + "'");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("priced by bench_link's fits"), std::string::npos) << t.out;
  // A missing file, one that is not JSON, one without fits: one line each.
  expect_one_line_error(run_tern(base + " --link-fits '" + tmp.file("none.out") + "'"), "none.out");
  write_file(tmp.file("bad.out"), "{\"fit\": \"all_reduce\", \"alpha_us\": 1, \"beta_ns_per_byte\": 1}\n{oops\n");
  expect_one_line_error(run_tern(base + " --link-fits '" + tmp.file("bad.out") + "'"), "bad.out:2");
  write_file(tmp.file("empty.out"), "{\"latency_us\": 3}\n");
  expect_one_line_error(run_tern(base + " --link-fits '" + tmp.file("empty.out") + "'"), "no bench_link fits");
  // --link-fits prices layouts: without --devices it is an error.
  expect_one_line_error(run_tern("plan -m " + config("llama-3.2-1b") + " --link-fits '" + tmp.file("link.out") + "'"), "--devices");
}

TEST(CliPlanLayouts, OptionsWithoutWhatTheyGoWithAreErrors) {
  expect_one_line_error(run_tern("plan -m " + config("llama-3.2-1b") + " --tp-comm int8"), "--devices");
  expect_one_line_error(run_tern("plan -m " + config("llama-3.2-1b") + " --added-latency-us 10"), "--devices");
  expect_one_line_error(run_tern("plan -m " + config("llama-3.2-1b") + " --measured x.jsonl"), "--check");
  // 17 devices: 17 divides neither the 32 heads nor fits as stages of 16 layers.
  expect_one_line_error(run_tern("plan -m " + config("llama-3.2-1b") + " --devices 17 --link-gbps 1 -d dev-epyc-2vcpu"),
                        "no TP × PP × EP layout of 17 devices");
}

}  // namespace
}  // namespace tern::test
