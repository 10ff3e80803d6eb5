// The planner's communication per decode step (issue 17 item 6): messages and bytes of TP, PP and EP
// on published configs, written out by hand; the link's time; the layouts of N devices; and the
// comparison with a namespace measurement (tern plan --check --measured).
#include <gtest/gtest.h>

#include <cmath>

#include "plan/comm_check.h"
#include "plan/comm_cost.h"
#include "plan/layouts.h"
#include "plan/planner.h"
#include "plan_test_util.h"
#include "test_support.h"

namespace tern::plan {
namespace {

TEST(PlanComm, TensorParallelIsTwoAllReducesPerLayer) {
  const ModelShape s = shape("llama-3.2-1b");  // 16 layers, hidden 2048, vocab 128256
  const LayoutComm c = decode_step_comm(s, {2, 1, 1}, 1, 4.0);
  EXPECT_DOUBLE_EQ(c.tp.messages, 32);          // 2 × 16, one exchange each between 2 ranks
  EXPECT_DOUBLE_EQ(c.tp.bytes, 2.0 * 16 * 2048 * 4);  // 262,144: what bench_tp counts per token
  // Rank 0's 4 broadcasts + the gather; the final rows [1, 2048] f32, 16 bytes of ids and tables, and
  // the other rank's half of the vocabulary in f32.
  EXPECT_DOUBLE_EQ(c.protocol.messages, 5);
  EXPECT_DOUBLE_EQ(c.protocol.bytes, 2048 * 4 + 16 + 64128.0 * 4);
  EXPECT_DOUBLE_EQ(c.pp.messages + c.ep.messages, 0);

  // Batch 8 multiplies the bytes, not the messages; bf16 halves the all-reduce.
  const LayoutComm b8 = decode_step_comm(s, {2, 1, 1}, 8, 2.0);
  EXPECT_DOUBLE_EQ(b8.tp.messages, 32);
  EXPECT_DOUBLE_EQ(b8.tp.bytes, 2.0 * 16 * 8 * 2048 * 2);

  // TP = 4: two exchanges per all-reduce (recursive doubling), 2·3/4 of the vector through each link.
  const LayoutComm t4 = decode_step_comm(s, {4, 1, 1}, 1, 4.0);
  EXPECT_DOUBLE_EQ(t4.tp.messages, 64);
  EXPECT_DOUBLE_EQ(t4.tp.bytes, 32 * 1.5 * 2048 * 4);
  EXPECT_DOUBLE_EQ(t4.protocol.bytes, 2048 * 4 + 16 + 3 * 32064.0 * 4);

  // The int8 all-reduce: a byte per element plus an f32 scale per row, exchanged by an all-gather.
  const LayoutComm q = decode_step_comm(s, {2, 1, 1}, 1, 4.0, 1.0 + 4.0 / 2048);
  EXPECT_DOUBLE_EQ(q.tp.bytes, 32.0 * (2048 + 4));
  ASSERT_EQ(q.tp.groups.size(), 2u);  // attention and feed-forward
  EXPECT_EQ(q.tp.groups[0].kind, CallKind::AllGather);

  // The calls by kind, what a measured link prices: 32 all-reduces of 8 KB; 4 broadcasts and the
  // gather of the other rank's logits slice.
  double ar_calls = 0, ar_payload = 0;
  for (const CallGroup& g : c.tp.groups) {
    EXPECT_EQ(g.kind, CallKind::AllReduce);
    ar_calls += g.calls, ar_payload += g.payload;
  }
  EXPECT_DOUBLE_EQ(ar_calls, 32);
  EXPECT_DOUBLE_EQ(ar_payload, 32.0 * 2048 * 4);
  ASSERT_EQ(c.protocol.groups.size(), 2u);
  EXPECT_EQ(c.protocol.groups[0].kind, CallKind::Broadcast);
  EXPECT_DOUBLE_EQ(c.protocol.groups[0].calls, 4);
  EXPECT_EQ(c.protocol.groups[1].kind, CallKind::Gather);
  EXPECT_DOUBLE_EQ(c.protocol.groups[1].payload, 64128.0 * 4);
}

TEST(LinkFit, RecoversALineAndWeighsEachSampleByItsOwnSize) {
  // t = 40 µs + 8 ns/byte (1 Gbit/s), 8 B .. 4 MiB: the line comes back exactly.
  std::vector<LinkSample> xs;
  for (double b : {8.0, 2048.0, 8192.0, 65536.0, 1048576.0, 4194304.0}) xs.push_back({b, 40e-6 + 8e-9 * b});
  LinkFit f = fit_link(xs);
  EXPECT_NEAR(f.alpha_s, 40e-6, 1e-12);
  EXPECT_NEAR(f.beta_s_per_byte, 8e-9, 1e-15);
  EXPECT_NEAR(f.max_rel_residual, 0, 1e-9);
  EXPECT_NEAR(f.seconds(8192), 40e-6 + 8e-9 * 8192, 1e-12);
  // Relative weights: one 4 MiB sample 10% off moves α little (an unweighted fit would move it by ms).
  xs.back().seconds *= 1.1;
  f = fit_link(xs);
  EXPECT_NEAR(f.alpha_s, 40e-6, 5e-6);
  EXPECT_GT(f.max_rel_residual, 0.01);
  // One size: its time is α, no β. Times that fall with size: a flat line (β ≥ 0).
  f = fit_link({{8192, 50e-6}, {8192, 52e-6}});
  EXPECT_NEAR(f.alpha_s, 51e-6, 1e-7);
  EXPECT_EQ(f.beta_s_per_byte, 0);
  f = fit_link({{8, 60e-6}, {8192, 50e-6}});
  EXPECT_EQ(f.beta_s_per_byte, 0);
  EXPECT_GT(f.alpha_s, 49e-6);
  // A line through the origin when the intercept would be negative (α ≥ 0).
  f = fit_link({{1000, 1e-6}, {2000, 5e-6}, {4000, 13e-6}});
  EXPECT_GE(f.alpha_s, 0);
  EXPECT_GT(f.beta_s_per_byte, 0);
  // Nothing usable: an empty fit.
  EXPECT_TRUE(fit_link({}).empty());
  EXPECT_TRUE(fit_link({{8, 0}, {16, -1}}).empty());
}

TEST(PlanComm, MeasuredLinkPricesCallsTimesAlphaPlusBytesTimesBeta) {
  const ModelShape s = shape("llama-3.2-1b");
  const LayoutComm c = decode_step_comm(s, {2, 1, 1}, 1, 4.0);
  Link link{1, 9};  // rate and latency: the fallback where a kind has no fit
  // All-reduce: 50 µs a call and 1 ns a byte up to 32 KiB, 100 µs and 8 ns a byte above.
  link.fits.add(CallKind::AllReduce, {32768, 4194304, {100e-6, 8e-9}});
  link.fits.add(CallKind::AllReduce, {8, 32768, {50e-6, 1e-9}});
  EXPECT_NEAR(c.tp.seconds(link), 32 * 50e-6 + 32 * 8192 * 1e-9, 1e-12);  // 8 KB calls: the small range
  EXPECT_TRUE(c.tp.priced_by_fits(link));
  // 50 µs more per message on top.
  Link far = link;
  far.added_latency_us = 50;
  EXPECT_NEAR(c.tp.seconds(far) - c.tp.seconds(link), 32 * 50e-6, 1e-12);
  // A 512-token prompt's all-reduces (4 MiB each) take the large range.
  const LayoutComm p = decode_step_comm(s, {2, 1, 1}, 512, 4.0);
  EXPECT_NEAR(p.tp.seconds(link), 32 * 100e-6 + 32 * 512.0 * 2048 * 4 * 8e-9, 1e-9);
  // Past the last range: the last; below the first: the first.
  EXPECT_DOUBLE_EQ(link.fits.at(CallKind::AllReduce, 1e9).alpha_s, 100e-6);
  EXPECT_DOUBLE_EQ(link.fits.at(CallKind::AllReduce, 1).alpha_s, 50e-6);
  // The protocol has broadcasts and a gather, which have no fit here: it keeps latency and rate.
  EXPECT_FALSE(c.protocol.priced_by_fits(link));
  EXPECT_NEAR(c.protocol.seconds(link), c.protocol.seconds(Link{1, 9}), 1e-15);
  // The int8 all-reduce is priced by the all-gather's fit, not the all-reduce's.
  const LayoutComm q = decode_step_comm(s, {2, 1, 1}, 1, 4.0, 1.0 + 4.0 / 2048);
  EXPECT_FALSE(q.tp.priced_by_fits(link));
  link.fits.add(CallKind::AllGather, {8, 4194304, {30e-6, 2e-9}});
  EXPECT_NEAR(q.tp.seconds(link), 32 * 30e-6 + 32 * 2052 * 2e-9, 1e-12);
}

TEST(PlanComm, PipelineSendsOnePerStageBoundary) {
  const ModelShape s = shape("llama-3.2-1b");
  const LayoutComm p2 = decode_step_comm(s, {1, 2, 1}, 1, 4.0);
  EXPECT_DOUBLE_EQ(p2.pp.messages, 1);
  EXPECT_DOUBLE_EQ(p2.pp.bytes, 2048 * 4);
  // The serving engine's fused step: rank 0 broadcasts the forward's header and ids, the last stage
  // sends the logits [1, vocab] f32 back to rank 0 (513 KB on this model: more than the activations).
  EXPECT_DOUBLE_EQ(p2.protocol.messages, 3);
  EXPECT_DOUBLE_EQ(p2.protocol.bytes, 16 + 128256.0 * 4);
  ASSERT_EQ(p2.pp.groups.size(), 1u);
  EXPECT_EQ(p2.pp.groups[0].kind, CallKind::P2p);
  EXPECT_DOUBLE_EQ(p2.pp.groups[0].calls, 1);
  // TP × PP: the same fused step (no LM-head broadcast); the last stage gathers its other TP rank's
  // half of the vocabulary before its first rank sends the whole row to rank 0.
  const LayoutComm tp2 = decode_step_comm(s, {2, 2, 1}, 1, 4.0);
  EXPECT_DOUBLE_EQ(tp2.protocol.messages, 4);
  EXPECT_DOUBLE_EQ(tp2.protocol.bytes, 16 + 64128.0 * 4 + 128256.0 * 4);
  EXPECT_DOUBLE_EQ(tp2.pp.bytes, 2048 * 4);
  const LayoutComm p4 = decode_step_comm(s, {1, 4, 1}, 3, 2.0);
  EXPECT_DOUBLE_EQ(p4.pp.messages, 3);
  EXPECT_DOUBLE_EQ(p4.pp.bytes, 3.0 * 3 * 2048 * 2);
}

// tern's expert parallelism (docs/parallel.md, model/decoder_ep.cpp): every rank runs every token, so
// a MoE layer ends in one f32 all-reduce of [B, hidden] over all tp·ep ranks — no all-to-all.
TEST(PlanComm, ExpertParallelIsOneAllReducePerMoeLayerOverAllRanks) {
  const ModelShape s = shape("mixtral-8x7b");  // 32 MoE layers, 8 experts, top 2, hidden 4096
  const LayoutComm e2 = decode_step_comm(s, {1, 1, 2}, 1, 2.0);
  EXPECT_DOUBLE_EQ(e2.ep.messages, 32);                 // one exchange per MoE layer between 2 ranks
  EXPECT_DOUBLE_EQ(e2.ep.bytes, 32 * 4096 * 4.0);       // f32 whatever the activations: 2(E−1)/E = 1
  EXPECT_DOUBLE_EQ(e2.tp.messages, 0);                  // attention replicated: no all-reduce
  EXPECT_DOUBLE_EQ(e2.protocol.messages, 2);            // the forward's header and payload; no gather
  EXPECT_DOUBLE_EQ(e2.protocol.bytes, 16);
  const LayoutComm e4 = decode_step_comm(s, {1, 1, 4}, 4, 2.0);
  EXPECT_DOUBLE_EQ(e4.ep.messages, 32 * 2);             // ⌈log₂ 4⌉
  EXPECT_DOUBLE_EQ(e4.ep.bytes, 32 * 1.5 * 4 * 4096 * 4.0);
  // A dense model has no experts to exchange.
  EXPECT_DOUBLE_EQ(decode_step_comm(shape("llama-3.2-1b"), {1, 1, 2}, 1, 2.0).ep.messages, 0);
}

TEST(PlanComm, MoeUnderTensorParallelism) {
  // Qwen3-30B-A3B: 48 layers, all MoE, hidden 2048. --tp 2: the MoE layer's all-reduce is the FFN's,
  // two per layer as for a dense model (and --tp-comm int8 compresses both).
  const ModelShape q = shape("qwen3-30b-a3b");
  const LayoutComm t2 = decode_step_comm(q, {2, 1, 1}, 1, 4.0, 1.0 + 4.0 / 2048);
  EXPECT_DOUBLE_EQ(t2.tp.messages, 96);
  EXPECT_DOUBLE_EQ(t2.tp.bytes, 96.0 * (2048 + 4));
  EXPECT_DOUBLE_EQ(t2.ep.messages, 0);
  // --tp 2 --ep 2: the attention all-reduce inside the group of 2 (int8), the MoE one over all 4 (f32).
  const LayoutComm te = decode_step_comm(q, {2, 1, 2}, 1, 4.0, 1.0 + 4.0 / 2048);
  EXPECT_DOUBLE_EQ(te.tp.messages, 48);
  EXPECT_DOUBLE_EQ(te.tp.bytes, 48.0 * (2048 + 4));
  EXPECT_DOUBLE_EQ(te.ep.messages, 48 * 2);
  EXPECT_DOUBLE_EQ(te.ep.bytes, 48 * 1.5 * 2048 * 4.0);
  EXPECT_DOUBLE_EQ(te.protocol.messages, 5);  // TP's protocol; the first group gathers the logits
  EXPECT_DOUBLE_EQ(te.protocol.bytes, 2048 * 4 + 16 + 151936 / 2 * 4.0);

  // DeepSeek-V3: 61 layers, the first 3 dense, hidden 7168. --tp 2 --ep 2: 61 attention + 3 dense
  // FFN all-reduces in the group, 58 MoE all-reduces over 4 ranks.
  const ModelShape d = shape("deepseek-v3");
  const LayoutComm de = decode_step_comm(d, {2, 1, 2}, 1, 4.0);
  EXPECT_DOUBLE_EQ(de.tp.messages, 64);
  EXPECT_DOUBLE_EQ(de.tp.bytes, 64 * 7168 * 4.0);
  EXPECT_DOUBLE_EQ(de.ep.messages, 58 * 2);
  EXPECT_DOUBLE_EQ(de.ep.bytes, 58 * 1.5 * 7168 * 4.0);
  // --tp 4 alone: 2 per layer, dense or MoE.
  EXPECT_DOUBLE_EQ(decode_step_comm(d, {4, 1, 1}, 1, 4.0).tp.messages, 2 * 61 * 2);
}

// What tensor parallelism does not cut (docs/parallel.md): routers, MLA's q_a and kv_a_proj_with_mqa,
// norms — every rank holds them whole; MLA's KV latent too (the KV per device does not shrink).
TEST(PlanComm, MoeAndMlaWeightsAndKvPerTensorParallelRank) {
  PlanRequest r;
  r.model = shape("deepseek-v3");
  r.weights = *parse_weight_precision("bf16");
  r.kv = *parse_kv_precision("bf16");
  r.device = *Catalog::shipped()->find("h200");
  r.context = 4096;
  const WeightBytes b = weight_bytes(r.model, r.weights);
  // 61 × (q_a [1536, 7168] + kv_a [576, 7168]) + 58 routers [256, 7168], bf16; plus the vectors.
  const double matrices = (61.0 * (1536 + 576) * 7168 + 58.0 * 256 * 7168) * 2;
  EXPECT_GT(b.tp_replicated, matrices);
  EXPECT_LT(b.tp_replicated, matrices * 1.01);
  for (int tp : {2, 8}) {
    EXPECT_NEAR(weights_per_device(r, b, b.total, tp, 1), (b.total - b.tp_replicated) / tp + b.tp_replicated, 1.0);
  }
  EXPECT_GT(weights_per_device(r, b, b.total, 8, 1) - b.total / 8, matrices * 7 / 8);  // 1.8 GB more per rank than 1/8
  PlanRequest t1 = r, t8 = r;
  t1.tp = 1, t1.pp = 1, t8.tp = 8, t8.pp = 1;
  auto p1 = make_plan(t1), p8 = make_plan(t8);
  ASSERT_TRUE(p1.is_ok() && p8.is_ok());
  EXPECT_DOUBLE_EQ(p8->memory.kv_per_token, p1->memory.kv_per_token);  // the latent on every rank
  EXPECT_DOUBLE_EQ(p1->memory.kv_per_token, 61.0 * (512 + 64) * 2);
  // Qwen3-30B-A3B (GQA, 4 KV heads): TP cuts the KV; its 48 routers [128, 2048] stay whole.
  PlanRequest q = r;
  q.model = shape("qwen3-30b-a3b");
  const WeightBytes qb = weight_bytes(q.model, q.weights);
  const double vectors = (48.0 * (2 * 2048 + 2 * 128) + 2048) * 2;  // 2 norms + q/k norms per layer, final norm
  EXPECT_DOUBLE_EQ(qb.tp_replicated, 48.0 * 128 * 2048 * 2 + vectors);
  PlanRequest q1 = q, q4 = q;
  q1.tp = 1, q1.pp = 1, q4.tp = 4, q4.pp = 1;
  auto pq1 = make_plan(q1), pq4 = make_plan(q4);
  ASSERT_TRUE(pq1.is_ok() && pq4.is_ok());
  EXPECT_DOUBLE_EQ(pq4->memory.kv_per_token * 4, pq1->memory.kv_per_token);
}

// The planner prices pipeline stages with the engine's split (pp_split_layers): Llama-3.2-1B in 2
// stages is 10 + 6 layers, the largest stage the first: 10 layers and the embedding table it holds.
TEST(PlanComm, PipelineMemoryIsTheLargestStageOfTheEnginesSplit) {
  PlanRequest r;
  r.model = shape("llama-3.2-1b");
  r.weights = *parse_weight_precision("bf16");
  r.kv = *parse_kv_precision("bf16");
  r.device = *Catalog::shipped()->find("h100-sxm");
  const WeightBytes b = weight_bytes(r.model, r.weights);
  const double layer = 60817408.0 * 2 + 2 * 2048 * 2, table = 128256.0 * 2048 * 2;
  EXPECT_NEAR(weights_per_device(r, b, b.total, 1, 2), 10 * layer + table, 1.0);
  // 4 stages (5, 5, 5, 1): the first's 5 layers and the table; the last's 1 layer and the head.
  EXPECT_NEAR(weights_per_device(r, b, b.total, 1, 4), 5 * layer + table, 1.0);
  // --tp 2 inside each stage: what TP cuts, halved; the stage's share of the norms stays whole.
  const double rep = b.tp_replicated / 2;
  EXPECT_NEAR(weights_per_device(r, b, b.total, 2, 2), (10 * layer + table - rep) / 2 + rep, 1.0);
  // The KV cache per device: the largest stage's layers (10 of 16), K and V of 8 heads × 64, bf16.
  r.tp = 1, r.pp = 2, r.context = 4096;
  auto p2 = make_plan(r);
  ASSERT_TRUE(p2.is_ok()) << p2.status().message();
  EXPECT_DOUBLE_EQ(p2->memory.kv_per_token, 10.0 * 2 * 8 * 64 * 2);
  // A step at batch 1 still reads every stage one after another: on a free link, the same time as one
  // device (all 16 layers' KV, not the largest stage's 10 twice).
  r.device.interconnect_gbs = 1e12, r.device.interconnect_latency_us = 0;
  const double one = decode_step(r, p2->bytes, 16.0 * 2 * 8 * 64 * 2, 1, 1, 1, 2048).seconds;
  EXPECT_NEAR(decode_step(r, p2->bytes, p2->memory.kv_per_token, 1, 2, 1, 2048).seconds, one, one * 1e-6);
}

TEST(PlanComm, LinkTimeIsMessagesTimesLatencyPlusBytesOverBandwidth) {
  const CommCost c{32, 262144};
  EXPECT_NEAR(c.seconds({1, 30}), 32 * 30e-6 + 262144 * 8 / 1e9, 1e-12);
  EXPECT_NEAR(c.seconds({10, 30}), 32 * 30e-6 + 262144 * 8 / 1e10, 1e-12);
  EXPECT_NEAR(c.seconds({10, 230}) - c.seconds({10, 30}), 32 * 200e-6, 1e-12);  // +200 µs per message
  // A shaper's bucket: each message's first burst bytes leave at once (8,192-byte all-reduces, 1,514-byte bucket).
  EXPECT_NEAR(c.seconds({1, 30, 1514}), 32 * 30e-6 + 32 * (8192 - 1514) * 8 / 1e9, 1e-12);
  EXPECT_NEAR((CommCost{2, 1000}).seconds({1, 0, 1514}), 0, 1e-15);  // messages within the bucket: latency only
  EXPECT_EQ((Layout{2, 2, 1}).name(), "tp2×pp2");
  EXPECT_EQ((Layout{1, 1, 1}).name(), "single");
}

LayoutRequest layout_request(const std::string& model, const std::string& dev, int n, Link link) {
  LayoutRequest r;
  r.base.model = shape(model);
  r.base.weights = *parse_weight_precision("bf16");
  r.base.kv = *parse_kv_precision("bf16");
  r.base.device = *Catalog::shipped()->find(dev);
  r.base.context = 4096;
  r.devices = n;
  r.link = link;
  return r;
}

TEST(PlanLayouts, EveryLayoutTheModelAllowsPricedAtEachLatency) {
  auto c = plan_layouts(layout_request("llama-3.2-1b", "dev-epyc-2vcpu", 2, {1, 30}));
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  ASSERT_EQ(c->layouts.size(), 2u);  // pp2 and tp2 (no experts: no ep)
  for (const LayoutPlan& l : c->layouts) {
    const CommCost t = l.comm.total();
    EXPECT_NEAR(l.comm_s, t.seconds({1, 30}), 1e-12);  // a wire: the kinds' sum is the total's
    ASSERT_EQ(l.comm_s_added.size(), 2u);
    EXPECT_NEAR(l.comm_s_added[0] - l.comm_s, t.messages * 50e-6, 1e-12);
    EXPECT_NEAR(l.comm_s_added[1] - l.comm_s, t.messages * 200e-6, 1e-12);
    EXPECT_GT(l.compute_s, 0);
    EXPECT_TRUE(l.fits);
  }
  // A 512-token prompt (one 512-row chunk on a CPU): 32 all-reduces of [512, 2048] f32, the protocol once.
  auto p512 = layout_request("llama-3.2-1b", "dev-epyc-2vcpu", 2, {1, 30});
  p512.base.prompt_tokens = 512;
  auto cp = plan_layouts(p512);
  ASSERT_TRUE(cp.is_ok());
  for (const LayoutPlan& l : cp->layouts) {
    if (l.layout.name() != "tp2") continue;
    EXPECT_EQ(l.prompt_tokens, 512);
    EXPECT_NEAR(l.prompt_comm_s, 32 * 30e-6 + 32 * 512.0 * 2048 * 4 * 8 / 1e9 + l.comm.protocol.seconds({1, 30}), 1e-9);
  }
  // Batch 1 on a CPU: PP's stages run one after another (twice TP's weight stream), TP wins.
  ASSERT_GE(c->chosen, 0);
  EXPECT_EQ(c->layouts[size_t(c->chosen)].layout.name(), "tp2");

  // Mixtral on 4 GPUs: tp, pp and ep combinations; EP splits only the experts.
  auto m = plan_layouts(layout_request("mixtral-8x7b", "h100-sxm", 4, {400, 5}));
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  // In (tp, pp, ep) order: ep4, pp2×ep2, pp4, tp2×ep2, tp2×pp2, tp4 (the engine runs --pp with --ep).
  std::vector<std::string> names;
  for (const LayoutPlan& l : m->layouts) names.push_back(l.layout.name());
  EXPECT_EQ(names, (std::vector<std::string>{"ep4", "pp2×ep2", "pp4", "tp2×ep2", "tp2×pp2", "tp4"}));
  double tp4 = 0, ep4 = 0, pp4 = 0, pp2ep2 = 0;
  for (const LayoutPlan& l : m->layouts) {
    if (l.layout.name() == "tp4") tp4 = l.weights_per_device;
    if (l.layout.name() == "ep4") ep4 = l.weights_per_device;
    if (l.layout.name() == "pp4") pp4 = l.weights_per_device;
    if (l.layout.name() == "pp2×ep2") pp2ep2 = l.weights_per_device;
  }
  EXPECT_GT(ep4, tp4);  // attention and the embedding stay whole on every EP rank
  EXPECT_LT(pp2ep2, ep4);  // half the layers per stage
  EXPECT_GT(pp2ep2, pp4);  // half the experts of twice the layers, and attention whole
  // A dense model gets no EP layout: Llama-3.2-1B on 4 devices is tp4, tp2×pp2, pp4 and nothing else.
  auto dense = plan_layouts(layout_request("llama-3.2-1b", "dev-epyc-2vcpu", 4, {1, 30}));
  ASSERT_TRUE(dense.is_ok());
  ASSERT_EQ(dense->layouts.size(), 3u);
  for (const LayoutPlan& l : dense->layouts) EXPECT_EQ(l.layout.ep, 1) << l.layout.name();

  // 3 devices: 32 heads do not split 3 ways, 16 layers do (pp3).
  auto three = plan_layouts(layout_request("llama-3.2-1b", "dev-epyc-2vcpu", 3, {1, 30}));
  ASSERT_TRUE(three.is_ok());
  ASSERT_EQ(three->layouts.size(), 1u);
  EXPECT_EQ(three->layouts[0].layout.name(), "pp3");
  // No link bandwidth: an error that names the flag.
  auto nolink = plan_layouts(layout_request("llama-3.2-1b", "dev-epyc-2vcpu", 2, {0, 30}));
  ASSERT_FALSE(nolink.is_ok());
  EXPECT_NE(nolink.status().message().find("--link-gbps"), std::string::npos);
}

// PP × EP (--pp P --ep E, each stage a --tp T --ep E job on its layers: parallel/pp_layout.h) on a
// small Qwen3-MoE shape, every number written out from the shape: hidden 64, 4 layers (layer 0 dense,
// mlp_only_layers), 4 heads and 2 KV heads of 16, vocab 256 untied, 8 experts of 32 (top 2), bf16.
TEST(PlanLayouts, PipelineTimesExpertParallelMemoryAndCommunication) {
  const char* config = R"({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256, "max_position_embeddings": 4096,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "num_experts": 8, "num_experts_per_tok": 2,
    "moe_intermediate_size": 32, "decoder_sparse_step": 1, "mlp_only_layers": [0], "norm_topk_prob": true})";
  auto sh = parse_model_shape(config, "small-qwen3-moe");
  ASSERT_TRUE(sh.is_ok()) << sh.status().message();
  ASSERT_EQ(sh->moe_layers(), 3);
  // Bytes (bf16: 2 per weight and per vector element).
  const double attention = (64.0 * 64 + 2 * 32 * 64 + 64 * 64) * 2;  // q [64, 64], k and v [32, 64], o [64, 64]
  const double vectors = (2 * 64 + 2 * 16) * 2.0;                    // 2 norms, q/k norms over head_dim
  const double dense_mlp = 3.0 * 128 * 64 * 2;                       // gate, up, down
  const double expert = 3.0 * 32 * 64 * 2;                           // one expert's gate, up, down
  const double router = 8.0 * 64 * 2;
  const double dense_layer = attention + vectors + dense_mlp;        // layer 0
  const double moe_layer = attention + vectors + 8 * expert + router;  // layers 1..3
  const double table = 256.0 * 64 * 2, head = 256.0 * 64 * 2 + 64 * 2;  // embedding; LM head + final norm
  const WeightPrecision bf16 = *parse_weight_precision("bf16");
  ASSERT_DOUBLE_EQ(weight_bytes(*sh, bf16).total, dense_layer + 3 * moe_layer + table + head);
  // The engine's split by bytes: 2 + 2 (largest stage 2·moe + head = 281,344 B; 1 + 3 and 3 + 1 are larger).
  EXPECT_EQ(pp_split_layers(pp_stage_bytes(*sh, bf16), 2), (std::vector<int>{0, 2, 4}));

  LayoutRequest r;
  r.base.model = *sh;
  r.base.weights = bf16;
  r.base.kv = *parse_kv_precision("bf16");
  r.base.device = *Catalog::shipped()->find("dev-epyc-2vcpu");  // a CPU: f32 activations on the link
  r.base.context = 1024;
  r.devices = 4;
  r.link = {1, 30};
  auto c = plan_layouts(r);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  const LayoutPlan* pe = nullptr;
  for (const LayoutPlan& l : c->layouts) {
    if (l.layout.tp == 1 && l.layout.pp == 2 && l.layout.ep == 2) pe = &l;
  }
  ASSERT_NE(pe, nullptr);
  EXPECT_EQ(pe->layout.name(), "pp2×ep2");
  // Memory per device: each stage's layers with half of its MoE layers' experts; stage 0 also holds
  // the embedding table, stage 1 the head. Stage 0: 181,888 B; stage 1: 183,040 B, the largest.
  const double stage0 = dense_layer + moe_layer + table - 1 * 4 * expert;
  const double stage1 = 2 * moe_layer + head - 2 * 4 * expert;
  EXPECT_DOUBLE_EQ(pe->weights_per_device, std::max(stage0, stage1));
  // Plus the KV of the stage's 2 layers (K and V of 2 heads × 16, bf16) for 1 sequence of 1024, the
  // CPU's 512-row workspace (3·hidden + 2·q_dim + 2·ffn f32 elements a row, ffn = the dense layer's
  // 128) and one f32 row of logits, and the runtime.
  const double kv = 2 * (2.0 * 2 * 16 * 2) * 1024;
  const double activations = 512.0 * (3 * 64 + 2 * 64 + 2 * 128) * 4 + 256 * 4;
  EXPECT_DOUBLE_EQ(pe->used_per_device, pe->weights_per_device + kv + activations + r.base.device.overhead_bytes());

  // Communication per decode token (B = 1, f32): 3 MoE all-reduces of [1, 64] over the stage's 2
  // ranks (one exchange each, 2(2−1)/2 of 256 B), one activation send between the stages, rank 0's
  // 2 broadcasts (16 B of ids) and the last stage's logits [1, 256] f32 back to rank 0.
  const LayoutComm& m = pe->comm;
  EXPECT_DOUBLE_EQ(m.tp.messages, 0);
  EXPECT_DOUBLE_EQ(m.ep.messages, 3);
  EXPECT_DOUBLE_EQ(m.ep.bytes, 3 * 64 * 4.0);
  EXPECT_DOUBLE_EQ(m.pp.messages, 1);
  EXPECT_DOUBLE_EQ(m.pp.bytes, 64 * 4.0);
  EXPECT_DOUBLE_EQ(m.protocol.messages, 3);
  EXPECT_DOUBLE_EQ(m.protocol.bytes, 16 + 256 * 4.0);
  EXPECT_NEAR(pe->comm_s, 7 * 30e-6 + (768 + 256 + 16 + 1024) * 8 / 1e9, 1e-12);
  EXPECT_NEAR(pe->comm_s_added[1] - pe->comm_s, 7 * 200e-6, 1e-12);

  // The same step on a link priced by bench_link's fits (what plan --check uses): calls × α + bytes × β.
  Link fitted{1, 30};
  fitted.fits.add(CallKind::AllReduce, {8, 4194304, {50e-6, 1e-9}});
  fitted.fits.add(CallKind::Broadcast, {8, 4194304, {10e-6, 0.5e-9}});
  fitted.fits.add(CallKind::P2p, {8, 4194304, {30e-6, 2e-9}});
  const double ep_s = 3 * 50e-6 + 768 * 1e-9, pp_s = 30e-6 + 256 * 2e-9;
  const double protocol_s = 2 * 2 * 10e-6 + 16 * 0.5e-9 + 30e-6 + 1024 * 2e-9;  // broadcasts span 4 ranks: 2 rounds
  EXPECT_NEAR(m.seconds(fitted), ep_s + pp_s + protocol_s, 1e-12);

  // --tp 2 --pp 2 --ep 2 (8 ranks): in each group of 2 the 4 attention all-reduces and the dense
  // layer's feed-forward one; the 3 MoE all-reduces over the stage's 4 ranks (2 rounds, 2·3/4 of the
  // vector); the last stage gathers the other TP rank's half of the logits before sending them.
  const LayoutComm t = decode_step_comm(*sh, {2, 2, 2}, 1, 4.0);
  EXPECT_DOUBLE_EQ(t.tp.messages, 5);
  EXPECT_DOUBLE_EQ(t.tp.bytes, 5 * 64 * 4.0);
  EXPECT_DOUBLE_EQ(t.ep.messages, 3 * 2);
  EXPECT_DOUBLE_EQ(t.ep.bytes, 3 * 1.5 * 64 * 4.0);
  EXPECT_DOUBLE_EQ(t.pp.bytes, 64 * 4.0);
  EXPECT_DOUBLE_EQ(t.protocol.messages, 4);
  EXPECT_DOUBLE_EQ(t.protocol.bytes, 16 + 128 * 4.0 + 256 * 4.0);
  r.devices = 8;
  auto c8 = plan_layouts(r);
  ASSERT_TRUE(c8.is_ok()) << c8.status().message();
  bool offered = false;
  for (const LayoutPlan& l : c8->layouts) offered = offered || l.layout.name() == "tp2×pp2×ep2";
  EXPECT_TRUE(offered);
}

constexpr const char* kResults =
    R"({"rate": "1gbit", "kind": "link", "load": 0.4, "rows": [{"bytes": 8, "one_way_us": 21.0}, {"latency_us": 21.0, "bandwidth_gbps": 0.95}], "burst_bytes": 1500}
{"ranks": 1, "decode_tok_s": 12.0, "rate": "none", "model": "llama-1b", "layout": "single", "kind": "decode"}
{"ranks": 2, "decode_tok_s": 10.0, "all_reduce_link_s_per_token": 0.0025, "comm_s_per_token": 0.006, "rate": "1gbit", "model": "llama-1b", "layout": "tp2", "kind": "decode", "load": 0.5}
{"ranks": 2, "decode_tok_s": 1.0, "all_reduce_link_s_per_token": 0.1, "comm_s_per_token": 0.2, "rate": "1gbit", "model": "llama-1b", "layout": "tp2", "kind": "ttft", "prompt_tokens": 512, "prefill_all_reduce_link_s": 1.2}
{"ranks": 2, "decode_tok_s": 9.0, "all_reduce_link_s_per_token": 0.002, "comm_s_per_token": 0.004, "rate": "1gbit", "model": "docs-llama-28m", "layout": "tp2-int8", "kind": "decode"}
)";

// bench/netns_tp.sh's file with bench_link's fits in the link row, a TP run that counts every
// collective and a PP run (bench_pp: the step less the stages' work).
constexpr const char* kFitted =
    R"({"rate": "10gbit", "kind": "link", "load": 0.3, "rows": [{"kind": "all_reduce", "bytes": 8, "us": 50}, {"fit": "all_reduce", "min_bytes": 8, "max_bytes": 32768, "alpha_us": 50, "beta_ns_per_byte": 1.0}, {"fit": "all_reduce", "min_bytes": 32768, "max_bytes": 4194304, "alpha_us": 200, "beta_ns_per_byte": 2.0}, {"fit": "broadcast", "min_bytes": 8, "max_bytes": 4194304, "alpha_us": 10, "beta_ns_per_byte": 0.5}, {"fit": "gather", "min_bytes": 8, "max_bytes": 4194304, "alpha_us": 20, "beta_ns_per_byte": 1.5}, {"fit": "p2p", "min_bytes": 8, "max_bytes": 4194304, "alpha_us": 30, "beta_ns_per_byte": 1.0}, {"latency_us": 12.0, "bandwidth_gbps": 4.5}]}
{"rate": "10gbit", "kind": "link", "model": "docs-llama-28m", "rows": [{"fit": "all_reduce", "min_bytes": 8, "max_bytes": 4194304, "alpha_us": 999, "beta_ns_per_byte": 9.0}]}
{"ranks": 2, "decode_tok_s": 14.0, "all_reduce_link_s_per_token": 0.0018, "comm_link_s_per_token": 0.0025, "comm_s_per_token": 0.006, "rate": "10gbit", "model": "llama-1b", "layout": "tp2", "kind": "decode"}
{"ranks": 2, "decode_tok_s": 8.0, "comm_critical_s_per_token": 0.0006, "comm_s_per_token": 0.06, "rate": "10gbit", "model": "llama-1b", "layout": "pp2", "kind": "decode"}
{"ranks": 2, "decode_tok_s": 1.0, "comm_critical_s_per_token": 0.001, "prompt_tokens": 512, "prefill_comm_critical_s": 0.006, "rate": "10gbit", "model": "llama-1b", "layout": "pp2", "kind": "ttft"}
)";

TEST(PlanCommCheck, PricesEachRunWithTheMeasuredLinksFits) {
  auto runs = parse_comm_measurements(kFitted, "results.jsonl", "llama-1b");
  ASSERT_TRUE(runs.is_ok()) << runs.status().message();
  ASSERT_EQ(runs->size(), 3u);
  const ModelShape s = shape("llama-3.2-1b");
  const CommMeasurement& tp = (*runs)[0];
  ASSERT_TRUE(tp.link_fits.has(CallKind::AllReduce));
  ASSERT_EQ(tp.link_fits.kind[int(CallKind::AllReduce)].size(), 2u);  // two size ranges
  // Another model's link row (bench_link with that model's compute between calls) is not this run's.
  EXPECT_DOUBLE_EQ(tp.link_fits.at(CallKind::AllReduce, 8192).alpha_s, 50e-6);
  auto other = parse_comm_measurements(std::string(kFitted) +
                                           R"({"ranks": 2, "decode_tok_s": 900.0, "all_reduce_link_s_per_token": 0.001, "rate": "10gbit", "model": "docs-llama-28m", "layout": "tp2", "kind": "decode"})" "\n",
                                       "results.jsonl", "docs-llama-28m");
  ASSERT_TRUE(other.is_ok()) << other.status().message();
  ASSERT_EQ(other->size(), 1u);
  EXPECT_DOUBLE_EQ((*other)[0].link_fits.at(CallKind::AllReduce, 8192).alpha_s, 999e-6);
  EXPECT_FALSE(tp.link_fits.has(CallKind::AllGather));
  Link link{10, tp.link_latency_us};
  link.fits = tp.link_fits;
  const auto rows = check_comm(s, tp, *measured_layout(tp, 2048), link);
  ASSERT_EQ(rows.size(), 3u);
  // 32 all-reduces of 8,192 bytes: 32 × (50 µs + 8,192 ns) = 1.862 ms against 1.8 measured: +3.5%.
  EXPECT_NEAR(rows[0].predicted_s, 32 * (50e-6 + 8192e-9), 1e-12);
  EXPECT_TRUE(rows[0].within());
  // Every collective: + 4 broadcasts (8,208 bytes in all) + the gather of 64,128 f32.
  EXPECT_EQ(rows[1].what, "all collectives per token (link)");
  EXPECT_NEAR(rows[1].predicted_s, 32 * (50e-6 + 8192e-9) + 4 * 10e-6 + 8208 * 0.5e-9 + 20e-6 + 64128 * 4 * 1.5e-9, 1e-12);
  EXPECT_DOUBLE_EQ(rows[1].measured_s, 0.0025);
  EXPECT_EQ(rows[2].bound, 0);
  // PP: 2 broadcasts (16 bytes), the activations [1, 2048] f32 and the logits [1, 128256] f32 sent.
  const CommMeasurement& pp = (*runs)[1];
  const auto prow = check_comm(s, pp, *measured_layout(pp, 2048), link);
  ASSERT_EQ(prow.size(), 2u);
  EXPECT_NEAR(prow[0].predicted_s, 2 * 10e-6 + 16 * 0.5e-9 + 2 * 30e-6 + (8192 + 128256 * 4) * 1e-9, 1e-12);
  EXPECT_DOUBLE_EQ(prow[0].measured_s, 0.0006);
  EXPECT_DOUBLE_EQ(prow[0].bound, 0.20);
  // PP's prompt: the activations [512, 2048] f32 once, the one row's logits after.
  const CommMeasurement& pt = (*runs)[2];
  const auto trow = check_comm(s, pt, *measured_layout(pt, 2048), link);
  ASSERT_EQ(trow.size(), 1u);
  EXPECT_NEAR(trow[0].predicted_s, 30e-6 + 512.0 * 2048 * 4 * 1e-9 + 2 * 10e-6 + 16 * 0.5e-9 + 30e-6 + 128256 * 4 * 1e-9, 1e-12);
  EXPECT_DOUBLE_EQ(trow[0].measured_s, 0.006);
}

TEST(PlanCommCheck, ReadsTheNamespaceRunsAndComparesWithThePrediction) {
  auto runs = parse_comm_measurements(kResults, "results.jsonl", "llama-1b");
  ASSERT_TRUE(runs.is_ok()) << runs.status().message();
  ASSERT_EQ(runs->size(), 2u);  // decode and TTFT; the single-process baseline and the other model are left out
  const CommMeasurement& m = (*runs)[0];
  EXPECT_EQ(m.layout, "tp2");
  EXPECT_DOUBLE_EQ(m.link_latency_us, 21.0);  // bench_link's, at the same rate
  EXPECT_DOUBLE_EQ(m.load, 0.5);
  EXPECT_DOUBLE_EQ(m.link_burst_bytes, 1500);
  auto ml = measured_layout(m, 2048);
  ASSERT_TRUE(ml.is_ok());
  EXPECT_EQ(ml->layout.tp, 2);
  const ModelShape s = shape("llama-3.2-1b");
  const Link link{*parse_rate_gbps(m.rate), m.link_latency_us, m.link_burst_bytes};
  const auto rows = check_comm(s, m, *ml, link);
  ASSERT_EQ(rows.size(), 2u);
  // 32 all-reduces × 21 µs + 32 × (8,192 − the 1,500-byte bucket) bytes at 1 Gbit/s = 0.672 + 1.713 ms.
  EXPECT_NEAR(rows[0].predicted_s, 32 * 21e-6 + 32 * (8192 - 1500) * 8 / 1e9, 1e-12);
  EXPECT_DOUBLE_EQ(rows[0].measured_s, 0.0025);
  EXPECT_DOUBLE_EQ(rows[0].bound, 0.20);
  EXPECT_NEAR(rows[0].error(), (rows[0].predicted_s - 0.0025) / 0.0025, 1e-12);
  EXPECT_TRUE(rows[0].within());  // 2.385 vs 2.5 ms: -4.6%
  CommCheckRow slow = rows[0];
  slow.measured_s = 0.003;  // -20.5%
  EXPECT_FALSE(slow.within());
  EXPECT_EQ(rows[1].bound, 0);    // rank 0's whole communication: report only

  // The TTFT run: the prompt's 32 all-reduces of [512, 2048] f32, each message past the bucket.
  const CommMeasurement& t = (*runs)[1];
  EXPECT_EQ(t.kind, "ttft");
  const auto prompt_rows = check_comm(s, t, *measured_layout(t, 2048), link);
  ASSERT_EQ(prompt_rows.size(), 1u);
  EXPECT_NEAR(prompt_rows[0].predicted_s, 32 * 21e-6 + 32 * (512.0 * 2048 * 4 - 1500) * 8 / 1e9, 1e-9);
  EXPECT_DOUBLE_EQ(prompt_rows[0].measured_s, 1.2);

  auto all = parse_comm_measurements(kResults, "results.jsonl", "");
  ASSERT_EQ(all->size(), 3u);
  auto q = measured_layout((*all)[2], 512);
  ASSERT_TRUE(q.is_ok());
  EXPECT_DOUBLE_EQ(q->tp_bytes_per_element, 1.0 + 4.0 / 512);
}

TEST(PlanCommCheck, BadInputIsAnErrorThatSaysWhere) {
  auto bad = parse_comm_measurements("{\"ranks\": 2}\n{oops\n", "r.jsonl", "");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("r.jsonl:2"), std::string::npos) << bad.status().message();
  auto none = parse_comm_measurements("mpirun says hello\n", "r.jsonl", "m");
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("bench/netns_tp.sh"), std::string::npos);
  EXPECT_DOUBLE_EQ(*parse_rate_gbps("10gbit"), 10);
  EXPECT_DOUBLE_EQ(*parse_rate_gbps("500mbit"), 0.5);
  EXPECT_FALSE(parse_rate_gbps("shm").is_ok());
  CommMeasurement m;
  m.ranks = 2, m.layout = "tp4";
  EXPECT_FALSE(measured_layout(m, 2048).is_ok());  // 4 ranks' layout for a 2-rank run
  m.layout = "zz2";
  EXPECT_FALSE(measured_layout(m, 2048).is_ok());
}

}  // namespace
}  // namespace tern::plan
