// The median of timing repetitions (the upper middle for an even count; 0 for none). On a shared VM
// single runs swing both ways, so calibration probes and measured checks take the middle, not the best.
#pragma once

#include <algorithm>
#include <vector>

namespace tern {

inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace tern
