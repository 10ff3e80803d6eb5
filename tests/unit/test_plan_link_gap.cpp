// The per-call cost's dependence on the compute before the call (issue 17 items 5-6): α(gap) fitted
// on synthetic points, bench_link's fits file written and read back (version 2 with alpha_gap rows,
// version 1 without), each call priced at its gap by --check and by the layout search, and the
// errors of a bad fits file.
#include <gtest/gtest.h>

#include <cmath>

#include "plan/comm_check.h"
#include "plan/comm_cost.h"
#include "plan/layouts.h"
#include "plan/link_fit.h"
#include "plan/link_fits_file.h"
#include "plan_test_util.h"
#include "test_support.h"

namespace tern::plan {
namespace {

Link wire(double gbps, double latency_us) {
  Link l;
  l.gbps = gbps, l.latency_us = latency_us;
  return l;
}

// α₀ = 10 µs back to back, 50 µs more after a long gap, levelling off over τ = 1 ms.
double synthetic_alpha(double gap_s) { return 10e-6 + 50e-6 * (1 - std::exp(-gap_s / 1e-3)); }

std::vector<GapPoint> synthetic_points() {
  std::vector<GapPoint> pts;
  for (double g : {0.0, 250e-6, 1e-3, 2e-3, 5e-3, 10e-3}) pts.push_back({g, synthetic_alpha(g)});
  return pts;
}

TEST(LinkGap, FitsTheWakeTermThatLevelsOff) {
  const GapFit f = fit_alpha_gap(synthetic_points());
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(f.points.size(), 6u);
  // τ comes from a grid (steps of 1.2×): the curve is recovered to a few percent, not exactly.
  EXPECT_NEAR(f.alpha0_s, 10e-6, 1e-6);
  EXPECT_NEAR(f.alpha0_s + f.wake_s, 60e-6, 2e-6);
  EXPECT_NEAR(f.tau_s, 1e-3, 0.2e-3);
  for (double g : {0.0, 100e-6, 500e-6, 3e-3, 20e-3}) EXPECT_NEAR(f.alpha(g), synthetic_alpha(g), 0.05 * synthetic_alpha(g)) << g;
  EXPECT_LT(f.max_rel_residual, 0.05);
  // Monotone, levelling off: past the last gap it stays at α₀ + w.
  EXPECT_NEAR(f.alpha(1.0), f.alpha0_s + f.wake_s, 1e-12);
  EXPECT_DOUBLE_EQ(f.alpha(-1), f.alpha(0));
}

TEST(LinkGap, ANearZeroPointDoesNotCarryTheFit) {
  // bench_link under load once measured α = 0.001 µs at two gaps (a noisy back-to-back line): the
  // curve still follows the other points instead of passing through those.
  std::vector<GapPoint> pts = synthetic_points();
  pts[1].alpha_s = 1e-9;
  const GapFit f = fit_alpha_gap(pts);
  EXPECT_NEAR(f.alpha(5e-3), synthetic_alpha(5e-3), 0.15 * synthetic_alpha(5e-3));
  EXPECT_NEAR(f.alpha(10e-3), synthetic_alpha(10e-3), 0.15 * synthetic_alpha(10e-3));
  EXPECT_GT(f.wake_s, 0);
}

TEST(LinkGap, APriceFallingWithTheGapNeverGoesBelowZero) {
  // A sweep under stress-ng (the e2e BenchLinkFits run) gave α falling with the gap; the best curve
  // then dived below zero past the sweep, where pipeline stages' millisecond gaps are priced.
  const GapFit f = fit_alpha_gap({{0, 40e-6}, {50e-6, 30e-6}, {200e-6, 4e-6}});
  ASSERT_FALSE(f.empty());
  for (double g : {0.0, 50e-6, 200e-6, 1e-3, 50e-3, 1.0}) EXPECT_GE(f.alpha(g), 0) << g;
  EXPECT_GE(f.alpha0_s + f.wake_s, 0);
  // A fits file from before the constraint: its curve is floored at 0 when read.
  GapFit old;
  old.alpha0_s = 10e-6, old.wake_s = -40e-6, old.tau_s = 100e-6;
  old.points = {{0, 10e-6}};
  EXPECT_EQ(old.alpha(1.0), 0);
}

TEST(LinkGap, FewOrFlatPointsGiveAConstant) {
  EXPECT_TRUE(fit_alpha_gap({}).empty());
  EXPECT_TRUE(fit_alpha_gap({{1e-3, 0}, {2e-3, -1}}).empty());  // no usable α
  const GapFit one = fit_alpha_gap({{2e-3, 40e-6}});
  EXPECT_NEAR(one.alpha(0), 40e-6, 1e-15);
  EXPECT_NEAR(one.alpha(1), 40e-6, 1e-15);
  const GapFit flat = fit_alpha_gap({{0, 20e-6}, {1e-3, 20e-6}, {10e-3, 20e-6}});
  for (double g : {0.0, 5e-3, 1.0}) EXPECT_NEAR(flat.alpha(g), 20e-6, 1e-9);
  // α at one gap with β held: the relative-weighted mean of t − β·b.
  EXPECT_NEAR(alpha_at_beta({{8, 10e-6 + 8e-9}, {8192, 10e-6 + 8192e-9}}, 1e-9), 10e-6, 1e-15);
  EXPECT_DOUBLE_EQ(alpha_at_beta({}, 1e-9), 0);
}

TEST(LinkGap, AlphaAtEachGapIsTheBackToBackLinePlusWhatTheGapAdds) {
  // t(b, g) = α(g) + 1 ns·b at 8 B, 2 KiB, 8 KiB after each gap: α recovered at each, β from gap 0.
  const std::vector<double> gaps = {0, 1e-3, 5e-3};
  std::vector<std::vector<LinkSample>> at;
  for (double g : gaps) {
    at.push_back({});
    for (double b : {8.0, 2048.0, 8192.0}) at.back().push_back({b, synthetic_alpha(g) + 1e-9 * b});
  }
  const GapAlphas a = alphas_by_gap(gaps, at);
  EXPECT_NEAR(a.beta_s_per_byte, 1e-9, 1e-15);
  ASSERT_EQ(a.points.size(), 3u);
  for (size_t i = 0; i < gaps.size(); ++i) {
    EXPECT_DOUBLE_EQ(a.points[i].gap_s, gaps[i]);
    EXPECT_NEAR(a.points[i].alpha_s, synthetic_alpha(gaps[i]), 1e-12);
  }
  // One size hit by a hiccup at one gap does not move that gap's α (the median over the sizes).
  std::vector<std::vector<LinkSample>> hiccup = at;
  hiccup[1][2].seconds += 5e-3;
  EXPECT_NEAR(alphas_by_gap(gaps, hiccup).points[1].alpha_s, synthetic_alpha(1e-3), 1e-12);
  // A gap whose sizes the back-to-back run lacks gives no point; mismatched inputs none at all.
  at[1] = {{4096, 1e-5}};
  EXPECT_EQ(alphas_by_gap(gaps, at).points.size(), 2u);
  EXPECT_TRUE(alphas_by_gap({0}, {}).points.empty());
}

// A fits file as bench_link writes it: a size row, the two ranges' lines at a 2 ms gap, α(gap), the summary.
std::string fits_file_v2() {
  RangedGapFit g{8, 32768, 1e-9, fit_alpha_gap(synthetic_points())};
  std::string text = "[mpirun banner]\n";
  text += R"({"kind":"all_reduce","bytes":8,"us":30.0,"mean_us":31.0,"reps":200,"gap_us":2000.0})" "\n";
  text += link_fit_row(CallKind::AllReduce, {8, 32768, {30e-6, 1e-9}}, 2000).dump() + "\n";
  text += link_fit_row(CallKind::AllReduce, {131072, 4194304, {100e-6, 2e-9}}, 2000).dump() + "\n";
  text += gap_fit_row(CallKind::AllReduce, g, "stream").dump() + "\n";
  text += R"({"latency_us":20.0,"bandwidth_gbps":4.0,"gap_us":2000.0,"fits_version":2})" "\n";
  return text;
}

TEST(LinkGap, FitsFileRoundTripAndTheOldFormat) {
  auto f = parse_link_fits(fits_file_v2(), "link.out", 0);
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  ASSERT_TRUE(f->has(CallKind::AllReduce));
  ASSERT_TRUE(f->has_gap(CallKind::AllReduce));
  EXPECT_FALSE(f->has(CallKind::Gather));
  const RangedGapFit& g = f->gap[int(CallKind::AllReduce)][0];
  EXPECT_EQ(g.alpha.points.size(), 6u);
  EXPECT_DOUBLE_EQ(g.max_bytes, 32768);
  // An 8 KiB call at each gap: α(gap) + β·b; with no gap known, the 2 ms line's α.
  for (double gap : {0.0, 1e-3, 10e-3}) {
    EXPECT_NEAR(f->call_seconds(CallKind::AllReduce, 8192, gap), g.alpha.alpha(gap) + 8192e-9, 1e-12);
  }
  EXPECT_NEAR(f->call_seconds(CallKind::AllReduce, 8192, 0), synthetic_alpha(0) + 8192e-9, 1e-6);
  EXPECT_NEAR(f->call_seconds(CallKind::AllReduce, 8192, -1), 30e-6 + 8192e-9, 1e-12);
  // A prompt's 4 MiB call is past the gap fit's range: the large line, whatever the gap.
  EXPECT_NEAR(f->call_seconds(CallKind::AllReduce, 4194304, 5e-3), 100e-6 + 4194304 * 2e-9, 1e-12);

  // Version 1 (no alpha_gap rows): every call at the line's α, the gap ignored.
  std::string v1;
  v1 += link_fit_row(CallKind::AllReduce, {8, 32768, {30e-6, 1e-9}}, 2000).dump() + "\n";
  v1 += R"({"latency_us":20.0,"bandwidth_gbps":4.0,"gap_us":2000.0})" "\n";
  auto old = parse_link_fits(v1, "old.out", 0);
  ASSERT_TRUE(old.is_ok()) << old.status().message();
  EXPECT_FALSE(old->has_gap(CallKind::AllReduce));
  EXPECT_NEAR(old->call_seconds(CallKind::AllReduce, 8192, 5e-3), 30e-6 + 8192e-9, 1e-12);

  // bench/netns_tp.sh's results.jsonl: link rows per rate, picked by rate.
  const std::string results =
      R"({"rate":"10gbit","kind":"link","rows":[{"fit":"all_reduce","min_bytes":8,"max_bytes":32768,"alpha_us":30,"beta_ns_per_byte":1}]})" "\n"
      R"({"rate":"1gbit","kind":"link","rows":[{"fit":"all_reduce","min_bytes":8,"max_bytes":32768,"alpha_us":70,"beta_ns_per_byte":8}]})" "\n";
  auto at1 = parse_link_fits(results, "results.jsonl", 1);
  ASSERT_TRUE(at1.is_ok()) << at1.status().message();
  EXPECT_DOUBLE_EQ(at1->at(CallKind::AllReduce, 8).alpha_s, 70e-6);
  auto either = parse_link_fits(results, "results.jsonl", 0);
  ASSERT_FALSE(either.is_ok());
  EXPECT_NE(either.status().message().find("--link-gbps"), std::string::npos) << either.status().message();
  EXPECT_FALSE(parse_link_fits(results, "results.jsonl", 25).is_ok());
}

TEST(LinkGap, BadFitsFilesAreErrorsThatSayWhere) {
  auto not_json = parse_link_fits(fits_file_v2() + "{oops\n", "link.out", 0);
  ASSERT_FALSE(not_json.is_ok());
  EXPECT_NE(not_json.status().message().find("link.out:7"), std::string::npos) << not_json.status().message();
  auto none = parse_link_fits("hello\n{\"latency_us\": 3}\n", "empty.out", 0);
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("no bench_link fits"), std::string::npos) << none.status().message();
  auto kind = parse_link_fits(R"({"fit":"teleport","alpha_us":1,"beta_ns_per_byte":1})" "\n", "k.out", 0);
  ASSERT_FALSE(kind.is_ok());
  EXPECT_NE(kind.status().message().find("teleport"), std::string::npos);
  auto missing = parse_link_fits(R"({"alpha_gap":"all_reduce","min_bytes":8})" "\n", "m.out", 0);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("m.out:1"), std::string::npos);
}

TEST(LinkGap, EachCallIsPricedAtTheComputeBeforeIt) {
  const ModelShape s = shape("llama-3.2-1b");
  LayoutComm c = decode_step_comm(s, {2, 1, 1}, 1, 4.0);
  // 32 all-reduces + 4 broadcasts + 1 gather share 74 ms of compute: 2 ms before each.
  set_compute_gaps(c, {2, 1, 1}, 37 * 2e-3);
  for (const CommCost* cost : {&c.tp, &c.protocol}) {
    for (const CallGroup& g : cost->groups) EXPECT_NEAR(g.gap_s, 2e-3, 1e-15);
  }
  // PP: the sends and the broadcasts wait a stage's compute, half the step.
  LayoutComm p = decode_step_comm(s, {1, 2, 1}, 1, 4.0);
  set_compute_gaps(p, {1, 2, 1}, 0.1);
  for (const CommCost* cost : {&p.pp, &p.protocol}) {
    for (const CallGroup& g : cost->groups) EXPECT_NEAR(g.gap_s, 0.05, 1e-15);
  }
  Link link = wire(10, 20);
  link.fits = *parse_link_fits(fits_file_v2(), "link.out", 0);
  const GapFit& a = link.fits.gap[int(CallKind::AllReduce)][0].alpha;
  EXPECT_NEAR(c.tp.seconds(link), 32 * (a.alpha(2e-3) + 8192e-9), 1e-12);
  // A longer gap costs more per call (the wake term), a shorter one less.
  LayoutComm fast = decode_step_comm(s, {2, 1, 1}, 1, 4.0);
  set_compute_gaps(fast, {2, 1, 1}, 37 * 100e-6);
  EXPECT_LT(fast.tp.seconds(link), c.tp.seconds(link));
  // Unknown compute: the line's α at bench_link's own gap.
  const LayoutComm unknown = decode_step_comm(s, {2, 1, 1}, 1, 4.0);
  EXPECT_NEAR(unknown.tp.seconds(link), 32 * (30e-6 + 8192e-9), 1e-12);
}

TEST(LinkGap, CheckPricesTheRunAtItsOwnCompute) {
  const ModelShape s = shape("llama-3.2-1b");
  const std::string results =
      R"({"rate":"10gbit","kind":"link","rows":[)" + link_fit_row(CallKind::AllReduce, {8, 32768, {30e-6, 1e-9}}, 2000).dump() + "," +
      gap_fit_row(CallKind::AllReduce, {8, 32768, 1e-9, fit_alpha_gap(synthetic_points())}, "stream").dump() + "]}\n" +
      R"({"ranks":2,"decode_tok_s":10.0,"all_reduce_link_s_per_token":0.002,"comm_s_per_token":0.026,"rate":"10gbit","layout":"tp2","kind":"decode"})" "\n";
  auto runs = parse_comm_measurements(results, "results.jsonl", "");
  ASSERT_TRUE(runs.is_ok()) << runs.status().message();
  const CommMeasurement& m = (*runs)[0];
  const MeasuredLayout ml = *measured_layout(m, 2048);
  // The step (100 ms) less rank 0's time in calls (26 ms): 74 ms over 37 collectives, 2 ms each.
  EXPECT_NEAR(measured_compute_s(m, ml), 0.074, 1e-12);
  Link link = wire(10, 20);
  link.fits = m.link_fits;
  const auto rows = check_comm(s, m, ml, link);
  ASSERT_FALSE(rows.empty());
  EXPECT_NEAR(rows[0].gap_s, 2e-3, 1e-12);
  const double alpha = link.fits.gap[int(CallKind::AllReduce)][0].alpha.alpha(2e-3);
  EXPECT_NEAR(rows[0].predicted_s, 32 * (alpha + 8192e-9), 1e-12);
}

TEST(LinkGap, LayoutSearchPricesWithTheFits) {
  LayoutRequest r;
  r.base.model = shape("llama-3.2-1b");
  r.base.weights = *parse_weight_precision("bf16");
  r.base.kv = *parse_kv_precision("bf16");
  r.base.device = *Catalog::shipped()->find("dev-epyc-2vcpu");
  r.base.context = 4096;
  r.devices = 2;
  r.link = wire(10, 20);
  auto plain = plan_layouts(r);
  ASSERT_TRUE(plain.is_ok()) << plain.status().message();
  r.link.fits = *parse_link_fits(fits_file_v2(), "link.out", 0);
  r.link_fits_source = "link.out";
  auto fitted = plan_layouts(r);
  ASSERT_TRUE(fitted.is_ok()) << fitted.status().message();
  bool saw_tp = false;
  for (const LayoutPlan& l : fitted->layouts) {
    if (l.layout.tp != 2) continue;
    saw_tp = true;
    // The roofline's step over the 37 collectives is the gap; the all-reduces are priced at it.
    const double gap = l.compute_s / 37;
    EXPECT_NEAR(l.call_gap_s, gap, 1e-12);
    const GapFit& a = r.link.fits.gap[int(CallKind::AllReduce)][0].alpha;
    EXPECT_NEAR(l.comm.tp.seconds(r.link), 32 * (a.alpha(gap) + 8192e-9), 1e-12);
  }
  EXPECT_TRUE(saw_tp);
  const std::string table = layouts_to_table(r, *fitted);
  EXPECT_NE(table.find("bench_link's fits (link.out)"), std::string::npos) << table;
  EXPECT_NE(table.find("call gap us"), std::string::npos) << table;
  EXPECT_NE(layouts_to_json(r, *fitted).find("bench_link_fits"), std::string::npos);
  // Without fits the table says rate and latency.
  r.link.fits = LinkFits{};
  r.link_fits_source.clear();
  EXPECT_EQ(layouts_to_table(r, *plain).find("call gap us"), std::string::npos);
}

}  // namespace
}  // namespace tern::plan
