#include "plan/link_fit.h"

#include <algorithm>
#include <cmath>

namespace tern::plan {

LinkFit fit_link(const std::vector<LinkSample>& samples) {
  double sw = 0, sb = 0, sbb = 0, st = 0, sbt = 0;
  int n = 0;
  double b0 = -1;
  bool one_size = true;
  for (const LinkSample& s : samples) {
    if (s.seconds <= 0 || s.bytes < 0) continue;
    const double w = 1.0 / (s.seconds * s.seconds);
    sw += w, sb += w * s.bytes, sbb += w * s.bytes * s.bytes, st += w * s.seconds, sbt += w * s.bytes * s.seconds;
    if (b0 >= 0 && s.bytes != b0) one_size = false;
    b0 = s.bytes;
    ++n;
  }
  LinkFit f;
  if (n == 0) return f;
  const double det = sw * sbb - sb * sb;
  if (one_size || det <= 0) {
    f.alpha_s = st / sw;  // the weighted mean time
  } else {
    f.beta_s_per_byte = (sw * sbt - sb * st) / det;
    f.alpha_s = (st - f.beta_s_per_byte * sb) / sw;
    if (f.alpha_s < 0) {  // through the origin
      f.alpha_s = 0;
      f.beta_s_per_byte = sbb > 0 ? sbt / sbb : 0;
    }
    if (f.beta_s_per_byte < 0) {  // flat
      f.beta_s_per_byte = 0;
      f.alpha_s = st / sw;
    }
  }
  for (const LinkSample& s : samples) {
    if (s.seconds <= 0 || s.bytes < 0) continue;
    f.max_rel_residual = std::max(f.max_rel_residual, std::fabs(f.seconds(s.bytes) - s.seconds) / s.seconds);
  }
  return f;
}

}  // namespace tern::plan

namespace tern::plan {

double alpha_at_beta(const std::vector<LinkSample>& samples, double beta) {
  double sw = 0, s = 0;
  for (const LinkSample& x : samples) {
    if (x.seconds <= 0 || x.bytes < 0) continue;
    const double w = 1.0 / (x.seconds * x.seconds);
    sw += w, s += w * (x.seconds - beta * x.bytes);
  }
  return sw > 0 ? std::max(0.0, s / sw) : 0.0;
}

GapAlphas alphas_by_gap(const std::vector<double>& gaps_s, const std::vector<std::vector<LinkSample>>& at_gap) {
  GapAlphas out;
  if (gaps_s.empty() || gaps_s.size() != at_gap.size()) return out;
  const size_t first = size_t(std::min_element(gaps_s.begin(), gaps_s.end()) - gaps_s.begin());
  const LinkFit line = fit_link(at_gap[first]);
  out.beta_s_per_byte = line.beta_s_per_byte;
  for (size_t g = 0; g < gaps_s.size(); ++g) {
    std::vector<double> excess;  // per size: this gap's time less the back-to-back line's
    for (const LinkSample& s : at_gap[g]) {
      bool timed_back_to_back = false;
      for (const LinkSample& b2b : at_gap[first]) timed_back_to_back = timed_back_to_back || (b2b.bytes == s.bytes && b2b.seconds > 0);
      if (timed_back_to_back && s.seconds > 0) excess.push_back(s.seconds - line.seconds(s.bytes));
    }
    if (excess.empty()) continue;
    std::sort(excess.begin(), excess.end());
    const size_t n = excess.size();
    const double mid = n % 2 ? excess[n / 2] : 0.5 * (excess[n / 2 - 1] + excess[n / 2]);
    out.points.push_back({gaps_s[g], std::max(1e-9, line.alpha_s + mid)});
  }
  return out;
}

double GapFit::alpha(double gap_s) const {
  if (tau_s <= 0) return std::max(0.0, alpha0_s);
  // Floored at 0 for fits files written before the fit kept α₀ + w ≥ 0.
  return std::max(0.0, alpha0_s + wake_s * (1.0 - std::exp(-std::max(0.0, gap_s) / tau_s)));
}

GapFit fit_alpha_gap(const std::vector<GapPoint>& points) {
  GapFit best;
  for (const GapPoint& p : points) {
    if (p.alpha_s > 0 && p.gap_s >= 0) best.points.push_back(p);
  }
  if (best.points.empty()) return best;
  auto residual = [&](GapFit& f) {
    f.max_rel_residual = 0;
    for (const GapPoint& p : f.points) f.max_rel_residual = std::max(f.max_rel_residual, std::fabs(f.alpha(p.gap_s) - p.alpha_s) / p.alpha_s);
  };
  // Relative weights, each α floored at a quarter of the median α for its weight: a point near zero
  // (a noisy back-to-back line under load) would otherwise carry all the weight and bend the curve.
  std::vector<double> sorted;
  for (const GapPoint& p : best.points) sorted.push_back(p.alpha_s);
  std::sort(sorted.begin(), sorted.end());
  const double floor_s = 0.25 * sorted[sorted.size() / 2];
  auto weight = [&](double a) { return 1.0 / std::pow(std::max(a, floor_s), 2); };
  bool one_gap = true;
  for (const GapPoint& p : best.points) one_gap = one_gap && p.gap_s == best.points.front().gap_s;
  if (one_gap) {
    double sw = 0, s = 0;
    for (const GapPoint& p : best.points) sw += weight(p.alpha_s), s += weight(p.alpha_s) * p.alpha_s;
    best.alpha0_s = s / sw;
    residual(best);
    return best;
  }
  double best_sse = -1;
  for (double tau = 20e-6; tau <= 50e-3 * 1.0001; tau *= 1.2) {
    // Basis [1, u = 1 − e^(−g/τ)], weights 1/α²: the 2 × 2 normal equations.
    double sw = 0, su = 0, suu = 0, sa = 0, sua = 0;
    for (const GapPoint& p : best.points) {
      const double w = weight(p.alpha_s), u = 1 - std::exp(-p.gap_s / tau);
      sw += w, su += w * u, suu += w * u * u, sa += w * p.alpha_s, sua += w * u * p.alpha_s;
    }
    const double det = sw * suu - su * su;
    if (det <= 1e-12 * sw * suu) continue;
    GapFit f = best;
    f.tau_s = tau;
    f.wake_s = (sw * sua - su * sa) / det;
    f.alpha0_s = (sa - f.wake_s * su) / sw;
    // α is a time: neither the back-to-back α₀ nor the curve's level past the sweep (α₀ + w, where a
    // pipeline stage's long gaps land) may be negative. Points that fall with the gap (a noisy sweep
    // under load) would otherwise give a w below −α₀ and a negative price at long gaps.
    if (f.alpha0_s < 0 || f.alpha0_s + f.wake_s < 0) continue;
    double sse = 0;
    for (const GapPoint& p : f.points) sse += weight(p.alpha_s) * std::pow(f.alpha(p.gap_s) - p.alpha_s, 2);
    if (best_sse < 0 || sse < best_sse) best_sse = sse, best = f;
  }
  if (best_sse < 0) {  // no τ gave a usable line: the mean
    double sw = 0, s = 0;
    for (const GapPoint& p : best.points) sw += weight(p.alpha_s), s += weight(p.alpha_s) * p.alpha_s;
    best.alpha0_s = s / sw, best.wake_s = 0, best.tau_s = 0;
  }
  residual(best);
  return best;
}

}  // namespace tern::plan
