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
