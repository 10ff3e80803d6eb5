// The sparse kernels (kernels/cpu/sparse_kernels.h) on every ISA path the host has, against a
// double-precision product of the dense expansion and against the scalar reference: unstructured
// (random masks, empty and full rows) and 2:4, bf16 and int8 values, k with and without a tail,
// m = 1..9 and a prefill m through the front door, 1 and 2 threads. The values end right before an
// inaccessible page, so a kernel that reads past the last value crashes the test.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/sparse_kernels.h"
#include "kernels/cpu/sparse_x16.h"
#include "ops/matmul.h"

namespace tern {
namespace {

// Bytes placed so that the byte after them is the first of a PROT_NONE page.
class GuardedBytes {
 public:
  explicit GuardedBytes(size_t n) : n_(n) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    len_ = (n + page - 1) / page * page + page;
    base_ = static_cast<char*>(mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    mprotect(base_ + len_ - page, page, PROT_NONE);
    data_ = base_ + len_ - page - n;
  }
  ~GuardedBytes() { munmap(base_, len_); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  char* data() { return data_; }

 private:
  size_t n_, len_;
  char* base_;
  char* data_;
};

// TwoFourMostly: 2:4 except every fourth row, which keeps 1 or 3 in one group (the 2:4 kernels must
// notice and take those rows through the bitmask kernel).
enum class Kind { Unstructured, TwoFour, TwoFourMostly };

struct SparseMatrix {
  int64_t n, k;
  std::vector<float> dense;  // [n, k] the exact weights (scales applied)
  std::vector<uint8_t> mask;
  std::vector<int64_t> offsets;
  std::vector<float> scales;
  std::unique_ptr<GuardedBytes> values;
  WeightMatrix w;
};

std::unique_ptr<SparseMatrix> make_sparse(int64_t n, int64_t k, Kind kind, bool i8, uint32_t seed) {
  auto s = std::make_unique<SparseMatrix>();
  s->n = n, s->k = k;
  const int64_t stride = (k + 7) / 8;
  s->dense.assign(size_t(n * k), 0.f);
  s->mask.assign(size_t(n * stride), 0);
  s->offsets.resize(size_t(n));
  s->scales.resize(size_t(n));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<uint16_t> bf;
  std::vector<int8_t> q;
  for (int64_t r = 0; r < n; ++r) {
    s->offsets[size_t(r)] = i8 ? int64_t(q.size()) : int64_t(bf.size());
    s->scales[size_t(r)] = 0.01f * float(1 + r % 5);
    for (int64_t c = 0; c < k; ++c) {
      bool keep;
      if (kind != Kind::Unstructured) {
        // Two of every four: which two from the seed (the group's pattern index 0..5).
        static const int kPairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
        const int pat = int((uint32_t(r * 131 + (c / 4) * 7) ^ seed) % 6), pos = int(c % 4);
        keep = pos == kPairs[pat][0] || pos == kPairs[pat][1];
        // One group in the middle of every fourth row: one more (r % 8 == 1) or one fewer (r % 8 == 5).
        if (kind == Kind::TwoFourMostly && r % 4 == 1 && c / 4 == k / 8) {
          const int unkept = kPairs[pat][0] != 0 ? 0 : kPairs[pat][1] == 1 ? 2 : 1;
          keep = r % 8 == 1 ? keep || pos == unkept : keep && pos == kPairs[pat][0];
        }
      } else {
        keep = r % 7 == 3 ? false : r % 7 == 5 ? true : (rng() & 1);  // empty rows, full rows, half
      }
      if (!keep) continue;
      s->mask[size_t(r * stride + c / 8)] |= uint8_t(1u << (c % 8));
      if (i8) {
        const int8_t v = int8_t(int(rng() % 255) - 127);
        q.push_back(v);
        s->dense[size_t(r * k + c)] = float(v) * s->scales[size_t(r)];
      } else {
        const uint16_t h = f32_to_bf16(u(rng));
        bf.push_back(h);
        s->dense[size_t(r * k + c)] = bf16_to_f32(h);
      }
    }
  }
  const size_t nnz = i8 ? q.size() : bf.size();
  const size_t bytes = i8 ? q.size() : 2 * bf.size();
  s->values = std::make_unique<GuardedBytes>(bytes);
  if (bytes) std::memcpy(s->values->data(), i8 ? static_cast<const void*>(q.data()) : bf.data(), bytes);
  WeightMatrix& w = s->w;
  w.format = WeightFormat::SparseBitmask;
  w.dtype = i8 ? DType::I8 : DType::BF16;
  w.data = s->values->data();
  w.rows = n, w.cols = k;
  w.mask = s->mask.data();
  w.row_offsets = s->offsets.data();
  w.nnz = int64_t(nnz);
  w.scales = i8 ? s->scales.data() : nullptr;
  w.quant_bytes = bytes + s->mask.size();
  return s;
}

std::vector<float> random_floats(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(count);
  for (auto& f : v) f = u(rng);
  return v;
}

// x16: the kernel multiplies int8 weights by x rounded to int16 per block of cpu::kSparseX16Block
// columns (sparse_x16.h), each x within 1/65534 of its block's max|x|: the bound adds Σ_j |w_j| · that.
int count_mismatches(const SparseMatrix& s, const std::vector<float>& x, int64_t m, const float* bias,
                     const std::vector<float>& y, const std::string& what, bool x16 = false) {
  int bad = 0;
  const int64_t blk = cpu::kSparseX16Block;
  for (int64_t i = 0; i < m; ++i) {
    std::vector<double> bmax(size_t((s.k + blk - 1) / blk), 0.0);
    for (int64_t j = 0; j < s.k; ++j) bmax[size_t(j / blk)] = std::max(bmax[size_t(j / blk)], double(std::fabs(x[size_t(i * s.k + j)])));
    for (int64_t r = 0; r < s.n; ++r) {
      double ref = bias ? bias[r] : 0.0, mag = bias ? std::fabs(bias[r]) : 0.0, xround = 0.0;
      for (int64_t j = 0; j < s.k; ++j) {
        const double p = double(x[size_t(i * s.k + j)]) * double(s.dense[size_t(r * s.k + j)]);
        ref += p;
        mag += std::fabs(p);
        xround += std::fabs(double(s.dense[size_t(r * s.k + j)])) * bmax[size_t(j / blk)] / 65534.0;
      }
      const double err = std::fabs(double(y[size_t(i * s.n + r)]) - ref);
      if (!(err <= 2e-5 * mag + 1e-6 + (x16 ? 1.01 * xround : 0.0)) && ++bad <= 3)
        ADD_FAILURE() << what << " y[" << i << "," << r << "] = " << y[size_t(i * s.n + r)] << " want " << ref;
    }
  }
  return bad;
}

struct Path {
  const char* name;
  cpu::SparseFn gemv;
  cpu::SparseExpandFn expand;
  bool available;
  bool i8_on_x16;  // its int8 products use int16 x (sparse_x16.h)
  bool i8_only;    // an int8 kernel (bf16 is not its input)
};

// The 2:4 AVX-512 kernel's index decode needs VBMI (not a CpuFeatures level of its own).
bool host_has_vbmi() {
  const CpuFeatures host = CpuFeatures::detect();
  return host.avx512 && host.avx512_vbmi2 && host.avx512_vnni && __builtin_cpu_supports("avx512vbmi");
}

std::vector<Path> paths() {
  const CpuFeatures host = CpuFeatures::detect();
  const bool avx512 = host.avx512 && host.avx512_vbmi2 && host.avx512_vnni;
  return {{"scalar", cpu::sparse_gemv_scalar, cpu::sparse_expand_rows_scalar, true, false, false},
          {"avx2", cpu::sparse_gemv_avx2, cpu::sparse_expand_rows_avx2, host.avx2, true, false},
          {"avx2-bitmask", cpu::sparse_gemv_bitmask_avx2, cpu::sparse_expand_rows_avx2, host.avx2, false, false},
          {"avx512", cpu::sparse_gemv_avx512, cpu::sparse_expand_rows_avx512, avx512, true, false},
          {"avx512-bitmask", cpu::sparse_gemv_bitmask_avx512, cpu::sparse_expand_rows_avx512, avx512, true, false},
          {"avx512-24", cpu::sparse24_gemv_i8_avx512, cpu::sparse_expand_rows_avx512, host_has_vbmi(), true, true}};
}

struct Shape {
  int64_t n, k;
  Kind kind;
};

// The 2:4 AVX-512 kernel steps 128 columns (blocks of 2 steps): k = 128, 384 (a block of one step),
// 1000 and 2117 (tails of 104 and 69 columns); 14 rows TwoFourMostly ends on a row with one value fewer.
const Shape kShapes[] = {{37, 61, Kind::Unstructured},  {19, 256, Kind::Unstructured}, {33, 8, Kind::Unstructured},
                         {21, 100, Kind::TwoFour},       {40, 64, Kind::TwoFour},       {13, 1000, Kind::Unstructured},
                         {17, 548, Kind::TwoFour},       {26, 96, Kind::TwoFourMostly}, {11, 300, Kind::TwoFourMostly},
                         {6, 28, Kind::TwoFour},         {9, 128, Kind::TwoFour},       {23, 384, Kind::TwoFour},
                         {15, 1000, Kind::TwoFour},      {14, 256, Kind::TwoFourMostly}, {19, 640, Kind::TwoFourMostly},
                         {7, 2117, Kind::TwoFour}};

TEST(SparseKernels, EveryIsaPathMatchesTheDenseProduct) {
  int ran = 0;
  for (const Path& p : paths()) {
    if (!p.available) continue;
    ++ran;
    for (const Shape& sh : kShapes) {
      for (bool i8 : {false, true}) {
        if (p.i8_only && !i8) continue;
        auto s = make_sparse(sh.n, sh.k, sh.kind, i8, uint32_t(sh.n * 1000 + sh.k));
        for (int64_t m = 1; m <= 9; ++m) {
          const std::vector<float> x = random_floats(size_t(m * sh.k), uint32_t(m)), b = random_floats(size_t(sh.n), 7);
          std::vector<float> y(size_t(m * sh.n), std::nanf(""));
          const bool bias = m % 2 == 1;
          // Two calls on split row ranges, as threads would make them.
          p.gemv(x.data(), m, s->w, y.data(), bias ? b.data() : nullptr, 0, sh.n / 3);
          p.gemv(x.data(), m, s->w, y.data(), bias ? b.data() : nullptr, sh.n / 3, sh.n);
          const std::string what = std::string(p.name) + (i8 ? " i8" : " bf16") + " m=" + std::to_string(m) +
                                   " n=" + std::to_string(sh.n) + " k=" + std::to_string(sh.k);
          // The AVX-512 int8 kernels and the AVX2 2:4 int8 kernel run on int16 x.
          const bool x16 = i8 && p.i8_on_x16;
          EXPECT_EQ(count_mismatches(*s, x, m, bias ? b.data() : nullptr, y, what, x16), 0) << what;
        }
      }
    }
  }
  EXPECT_GE(ran, 1);
}

// The 2:4 AVX-512 kernel on row sub-ranges [n0, n1) that start and end inside its 4-row and 2-row
// blocks: y inside the range matches the dense product (and the scalar reference within the int16-x
// bound), y outside is left as it was; with rows that are not 2:4 (fallback rows) spread over the range.
TEST(SparseKernels, TwoFourAvx512SubRangesAndFallbackRows) {
  if (!host_has_vbmi()) GTEST_SKIP() << "no AVX-512 VBMI + VBMI2 + VNNI";
  for (const Shape& sh : {Shape{45, 384, Kind::TwoFour}, Shape{45, 384, Kind::TwoFourMostly},
                          Shape{30, 1152, Kind::TwoFourMostly}, Shape{21, 2117, Kind::TwoFour}}) {
    auto s = make_sparse(sh.n, sh.k, sh.kind, true, uint32_t(sh.n + sh.k));
    for (int64_t m = 1; m <= 8; ++m) {
      const std::vector<float> x = random_floats(size_t(m * sh.k), uint32_t(100 + m)), b = random_floats(size_t(sh.n), 9);
      for (const auto& [n0, n1] : {std::pair<int64_t, int64_t>{0, sh.n}, {3, sh.n - 2}, {1, 6}, {sh.n - 1, sh.n}}) {
        std::vector<float> y(size_t(m * sh.n), std::nanf("")), ref(size_t(m * sh.n), std::nanf(""));
        const float* bias = (m + n0) % 2 ? b.data() : nullptr;
        cpu::sparse24_gemv_i8_avx512(x.data(), m, s->w, y.data(), bias, n0, n1);
        cpu::sparse_gemv_scalar(x.data(), m, s->w, ref.data(), bias, n0, n1);
        const std::string what = "avx512-24 m=" + std::to_string(m) + " n=" + std::to_string(sh.n) + " k=" +
                                 std::to_string(sh.k) + " rows " + std::to_string(n0) + ".." + std::to_string(n1);
        int outside = 0, far = 0;
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t r = 0; r < sh.n; ++r) {
            const float got = y[size_t(i * sh.n + r)], want = ref[size_t(i * sh.n + r)];
            if (r < n0 || r >= n1) {
              outside += !std::isnan(got);
              continue;
            }
            // Against the reference: the int16 rounding of x moves a product by <= 1/65534 of its block's
            // max|x| times |w|; 1e-3 of the row's magnitude is far above that and far below a wrong column.
            double mag = bias ? std::fabs(bias[r]) : 0.0;
            for (int64_t j = 0; j < sh.k; ++j)
              mag += std::fabs(double(x[size_t(i * sh.k + j)]) * double(s->dense[size_t(r * sh.k + j)]));
            far += !(std::fabs(double(got) - double(want)) <= 1e-3 * mag + 1e-6);
          }
        }
        EXPECT_EQ(outside, 0) << what << ": wrote outside its rows";
        EXPECT_EQ(far, 0) << what << ": differs from the scalar reference";
        // Rows outside the range are NaN in both: the exact bound on the range's rows.
        for (int64_t i = 0; i < m; ++i)
          for (int64_t r = 0; r < sh.n; ++r)
            if (r < n0 || r >= n1) y[size_t(i * sh.n + r)] = ref[size_t(i * sh.n + r)] = 0.f;
        SparseMatrix rows{sh.n, sh.k, s->dense, {}, {}, {}, nullptr, s->w};
        std::vector<float> bz(size_t(sh.n), 0.f);
        if (bias) std::copy(b.begin() + n0, b.begin() + n1, bz.begin() + n0);
        for (int64_t r = 0; r < sh.n; ++r)
          if (r < n0 || r >= n1) std::fill(rows.dense.begin() + r * sh.k, rows.dense.begin() + (r + 1) * sh.k, 0.f);
        EXPECT_EQ(count_mismatches(rows, x, m, bz.data(), y, what, true), 0) << what;
      }
    }
  }
}

// A matrix whose first row of the range is not 2:4 takes the bitmask kernel for the whole range.
TEST(SparseKernels, TwoFourAvx512OnAnUnstructuredMatrix) {
  if (!host_has_vbmi()) GTEST_SKIP() << "no AVX-512 VBMI + VBMI2 + VNNI";
  auto s = make_sparse(33, 512, Kind::Unstructured, true, 4);
  for (int64_t m : {1, 4, 8}) {
    const std::vector<float> x = random_floats(size_t(m * 512), uint32_t(m));
    std::vector<float> y(size_t(m * 33), std::nanf(""));
    cpu::sparse24_gemv_i8_avx512(x.data(), m, s->w, y.data(), nullptr, 0, 33);
    EXPECT_EQ(count_mismatches(*s, x, m, nullptr, y, "avx512-24 unstructured", true), 0) << m;
  }
}

TEST(SparseKernels, ExpandRowsIsExactOnEveryIsaPath) {
  for (const Path& p : paths()) {
    if (!p.available) continue;
    for (const Shape& sh : kShapes) {
      for (bool i8 : {false, true}) {
        auto s = make_sparse(sh.n, sh.k, sh.kind, i8, 11);
        std::vector<float> got(size_t(sh.n * sh.k), std::nanf(""));
        p.expand(s->w, 0, 5, got.data());
        p.expand(s->w, 5, sh.n - 5, got.data() + 5 * sh.k);
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_EQ(got[i], s->dense[i]) << p.name << (i8 ? " i8" : " bf16") << " n=" << sh.n << " k=" << sh.k
                                         << " element " << i;
        }
      }
    }
  }
}

// The front door picks the kernel from ctx.cpu(): every capped level, decode and prefill m, 1 and 2 threads.
TEST(SparseKernels, FrontDoorAtEveryLevel) {
  const CpuFeatures host = CpuFeatures::detect();
  for (const char* level : {"scalar", "avx2", "avx512"}) {
    const CpuFeatures cpu = host.capped(level);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      ExecContext ctx(pool, cpu);
      for (bool i8 : {false, true}) {
        auto s = make_sparse(300, 256, i8 ? Kind::TwoFour : Kind::Unstructured, i8, 5);
        for (int64_t m : {1, 3, 8, 9, 40}) {
          const std::vector<float> x = random_floats(size_t(m * 256), uint32_t(m)), b = random_floats(300, 3);
          std::vector<float> y(size_t(m * 300), std::nanf(""));
          matmul(ctx, x.data(), m, s->w, y.data(), b.data());
          const std::string what = std::string(matmul_kernel_name(ctx, m, s->w)) + " t=" + std::to_string(threads) +
                                   " m=" + std::to_string(m);
          const bool x16 = i8 && m <= 8 && std::string(level) != "scalar";
          EXPECT_EQ(count_mismatches(*s, x, m, b.data(), y, what, x16), 0) << what;
        }
      }
    }
  }
}

// The kernels' vectorized int16 x (sparse_x16_avx2) is the scalar SparseX16 code for code.
TEST(SparseKernels, X16Avx2MatchesTheScalarCodes) {
  if (!CpuFeatures::detect().avx2) GTEST_SKIP() << "no AVX2";
  for (int64_t k : {1, 8, 17, 256, 300, 1000}) {
    const int64_t m = 3;
    std::vector<float> x = random_floats(size_t(m * k), uint32_t(k));
    for (int64_t j = 0; j < k; j += 7) x[size_t(j)] *= 100.f;  // block maxima that are not 1
    if (k >= 256) std::fill(x.begin() + k, x.begin() + k + 256, 0.f);  // an all-zero block (row 1)
    const cpu::SparseX16 ref(x.data(), m, k), got = cpu::sparse_x16_avx2(x.data(), m, k);
    ASSERT_EQ(got.blocks, ref.blocks);
    EXPECT_EQ(got.d, ref.d) << "k=" << k;
    EXPECT_EQ(got.q, ref.q) << "k=" << k;
  }
}

TEST(SparseKernels, KernelNamesFollowTheLevel) {
  const CpuFeatures host = CpuFeatures::detect();
  auto s = make_sparse(16, 64, Kind::Unstructured, false, 1);
  ThreadPool pool(1);
  ExecContext scalar(pool, host.capped("scalar"));
  EXPECT_STREQ(matmul_kernel_name(scalar, 1, s->w), "sparse_gemv_scalar_bf16");
  EXPECT_STREQ(matmul_kernel_name(scalar, 64, s->w), "sparse_panel_gemm_scalar_bf16");
  if (host.avx2) {
    ExecContext avx2(pool, host.capped("avx2"));
    EXPECT_STREQ(matmul_kernel_name(avx2, 4, s->w), "sparse_gemv_avx2_bf16");
  }
  if (host.avx512_vbmi2) {
    ExecContext full(pool, host);
    EXPECT_STREQ(matmul_kernel_name(full, 1, s->w), "sparse_gemv_avx512_bf16");
  }
}

}  // namespace
}  // namespace tern
