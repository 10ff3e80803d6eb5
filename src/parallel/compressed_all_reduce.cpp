#include "parallel/compressed_all_reduce.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "parallel/communicator.h"

namespace tern {

Result<TpCommMode> parse_tp_comm(const std::string& s) {
  if (s == "auto" || s == "f32") return TpCommMode::Activation;
  if (s == "int8") return TpCommMode::Int8;
  return Status::error(fmt::format("--tp-comm '{}' is not one of auto, f32, int8", s));
}

const char* tp_comm_name(TpCommMode m) { return m == TpCommMode::Int8 ? "int8" : "f32"; }

int64_t tp_all_reduce_bytes(TpCommMode mode, int64_t rows, int64_t cols) {
  return mode == TpCommMode::Int8 ? rows * (cols + int64_t(sizeof(float))) : rows * cols * int64_t(sizeof(float));
}

void quantize_rows_int8(const float* x, int64_t rows, int64_t cols, int8_t* dst) {
  int8_t* codes = dst + rows * int64_t(sizeof(float));
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float amax = 0.f;
    bool finite = true;
    for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(xr[j])), finite = finite && std::isfinite(xr[j]);
    int8_t* q = codes + r * cols;
    if (!finite) {  // a row with inf / NaN stays NaN after the sum, as the f32 all-reduce would leave it
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(dst + r * int64_t(sizeof(float)), &nan, sizeof(float));
      std::fill(q, q + cols, int8_t(0));
      continue;
    }
    const float scale = amax / 127.f, inv = amax > 0.f ? 127.f / amax : 0.f;
    std::memcpy(dst + r * int64_t(sizeof(float)), &scale, sizeof(float));
    for (int64_t j = 0; j < cols; ++j) q[j] = int8_t(std::clamp(std::nearbyint(xr[j] * inv), -127.f, 127.f));
  }
}

void add_dequantized_rows_int8(const int8_t* src, int64_t rows, int64_t cols, float* acc) {
  const int8_t* codes = src + rows * int64_t(sizeof(float));
  for (int64_t r = 0; r < rows; ++r) {
    float scale;
    std::memcpy(&scale, src + r * int64_t(sizeof(float)), sizeof(float));
    const int8_t* q = codes + r * cols;
    float* a = acc + r * cols;
    for (int64_t j = 0; j < cols; ++j) a[j] += scale * float(q[j]);
  }
}

// A Communicator member (declared in communicator.h) so that it counts its bytes as an all-reduce and
// reaches every implementation's all-gather.
Status Communicator::all_reduce_sum_int8(float* data, int64_t rows, int64_t cols, std::vector<int8_t>& scratch) {
  if (rows < 0 || cols < 0 || (rows * cols > 0 && !data)) return Status::error("all_reduce_sum_int8: bad buffer");
  calls_++;
  const int64_t each = tp_all_reduce_bytes(TpCommMode::Int8, rows, cols);
  all_reduce_bytes_ += each;
  if (rows * cols == 0) return Status::ok();
  const int T = size();
  scratch.resize(size_t(each) * size_t(T + 1));
  int8_t* mine = scratch.data();
  int8_t* all = mine + each;  // [T, each] in rank order
  quantize_rows_int8(data, rows, cols, mine);
  TERN_RETURN_IF_ERROR(do_all_gather(mine, each, all));
  std::fill(data, data + rows * cols, 0.f);
  for (int p = 0; p < T; ++p) add_dequantized_rows_int8(all + int64_t(p) * each, rows, cols, data);
  return Status::ok();
}

}  // namespace tern
