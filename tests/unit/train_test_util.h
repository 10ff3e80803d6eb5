// Shared by the training tests: central finite differences of a scalar objective against an analytic gradient.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace tern::test {

// For `samples` indices of x (all of them when x is smaller), compares grad[i] with
// (L(x + eps·e_i) − L(x − eps·e_i)) / (2 eps); L is evaluated by `loss` from the current x.
// Tolerance: |g − fd| <= abs_tol + rel_tol · max(|g|, |fd|).
inline void expect_grad_matches(const std::string& what, std::vector<float>& x, const std::vector<float>& grad,
                                const std::function<double()>& loss, int samples = 24, float eps = 1e-2f,
                                double abs_tol = 2e-3, double rel_tol = 2e-2, uint32_t seed = 7) {
  ASSERT_EQ(x.size(), grad.size()) << what;
  std::vector<size_t> idx;
  if (x.size() <= size_t(samples)) {
    for (size_t i = 0; i < x.size(); ++i) idx.push_back(i);
  } else {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<size_t> d(0, x.size() - 1);
    for (int i = 0; i < samples; ++i) idx.push_back(d(rng));
  }
  for (size_t i : idx) {
    const float keep = x[i];
    x[i] = keep + eps;
    const double lp = loss();
    x[i] = keep - eps;
    const double lm = loss();
    x[i] = keep;
    const double fd = (lp - lm) / (2.0 * double(eps));
    const double g = grad[i];
    EXPECT_LE(std::abs(g - fd), abs_tol + rel_tol * std::max(std::abs(g), std::abs(fd)))
        << what << "[" << i << "]: analytic " << g << ", finite difference " << fd;
  }
}

// Σ y ⊙ r in double: the objective whose gradient with respect to y is r.
inline double dot(const std::vector<float>& y, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * r[i];
  return s;
}

}  // namespace tern::test
