// Every CUDA kernel against the CPU implementation (ops/) or a plain host reference, on random
// inputs. Skipped with "no CUDA device: ..." where there is no GPU.
#include <cmath>

#include "formats/quant/pack_weights.h"
#include "formats/quant/quantized_linear.h"
#include "core/dtype.h"
#include "gpu_test_util.h"
#include "ops/activation.h"
#include "ops/matmul.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

#if TERN_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#endif

namespace tern::test {
namespace {

#if TERN_HAVE_CUDA
using namespace tern::cuda;

struct CpuCtx {
  ThreadPool pool{1};
  ExecContext ctx{pool, CpuFeatures::detect()};
};

void expect_near(const std::vector<float>& got, const std::vector<float>& want, float tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol * (1.f + std::fabs(want[i]))) << "at " << i;
}

TEST(CudaOps, RmsNormWithResidualMatchesCpu) {
  TERN_REQUIRE_CUDA();
  CpuCtx c;
  const int64_t m = 5, d = 1000;
  auto x = random_vec(size_t(m * d), 1), r = random_vec(size_t(m * d), 2), w = random_vec(size_t(d), 3);
  DevBuf<float> dx(x), dr(r), dw(w), dout(size_t(m * d));
  ASSERT_EQ(rms_norm(dx.get(), dr.get(), m, d, dw.get(), 1e-5f, dout.get(), nullptr), cudaSuccess);
  std::vector<float> out(size_t(m * d));
  rms_norm(c.ctx, x.data(), r.data(), m, d, w.data(), 1e-5f, out.data());
  expect_near(dout.host(), out, 1e-5f);
  expect_near(dx.host(), x, 1e-6f);  // x += residual, as the CPU op does in place
}

TEST(CudaOps, RopeLlama3ScalingMatchesCpu) {
  TERN_REQUIRE_CUDA();
  CpuCtx c;
  RopeConfig rc;
  rc.theta = 500000.0;
  rc.rotary_dim = 128;
  rc.llama3_factor = 8.0;
  const auto inv = rope_inv_freq(rc);
  const int64_t m = 6;
  const int heads = 4, hd = 128;
  auto x = random_vec(size_t(m * heads * hd), 4);
  std::vector<int32_t> pos = {0, 1, 17, 500, 4097, 30000};
  DevBuf<float> dx(x), dinv(inv);
  DevBuf<int32_t> dpos(pos);
  ASSERT_EQ(rope(dx.get(), m, heads, hd, hd, dpos.get(), dinv.get(), nullptr), cudaSuccess);
  rope_apply(c.ctx, x.data(), m, heads, hd, pos.data(), inv);
  expect_near(dx.host(), x, 2e-5f);
}

TEST(CudaOps, SwigluAndEmbeddingMatchHost) {
  TERN_REQUIRE_CUDA();
  CpuCtx c;
  auto g = random_vec(4096, 5, -6, 6), u = random_vec(4096, 6);
  DevBuf<float> dg(g), du(u), dout(4096);
  ASSERT_EQ(swiglu(dg.get(), du.get(), 4096, dout.get(), nullptr), cudaSuccess);
  std::vector<float> out(4096);
  swiglu(c.ctx, g.data(), u.data(), 1, 4096, out.data());
  expect_near(dout.host(), out, 1e-6f);

  const int64_t vocab = 50, d = 64;
  auto t = random_vec(size_t(vocab * d), 7);
  std::vector<uint16_t> tb(t.size());
  for (size_t i = 0; i < t.size(); ++i) tb[i] = f32_to_bf16(t[i]);
  std::vector<int32_t> ids = {3, 0, 49, 3};
  DevBuf<uint16_t> dt(tb);
  DevBuf<int32_t> di(ids);
  DevBuf<float> de(ids.size() * size_t(d));
  ASSERT_EQ(embedding(dt.get(), DenseType::BF16, di.get(), 4, d, de.get(), nullptr), cudaSuccess);
  const auto e = de.host();
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t j = 0; j < d; ++j) ASSERT_EQ(e[i * size_t(d) + size_t(j)], bf16_to_f32(tb[size_t(ids[i]) * size_t(d) + size_t(j)]));
}

TEST(CudaOps, ArgmaxTakesTheLowestIndexOnTies) {
  TERN_REQUIRE_CUDA();
  std::vector<float> l = random_vec(2 * 3000, 8);
  l[1234] = 5.f, l[2000] = 5.f, l[3000 + 2999] = 7.f;
  DevBuf<float> dl(l);
  DevBuf<int32_t> out(2);
  ASSERT_EQ(argmax_rows(dl.get(), 2, 3000, out.get(), nullptr), cudaSuccess);
  EXPECT_EQ(out.host(), (std::vector<int32_t>{1234, 2999}));
}

// GEMV in every format at batch 1..8 against the CPU matmul over the same weights.
void check_gemv(const WeightMatrix& cpu_w, GemvWeight gw, float tol) {
  CpuCtx c;
  const int64_t n = cpu_w.rows, k = cpu_w.cols;
  for (int64_t b : {1, 3, 8}) {
    auto x = random_vec(size_t(b * k), uint32_t(10 + b));
    auto bias = random_vec(size_t(n), 11);
    std::vector<float> want(size_t(b * n));
    matmul(c.ctx, x.data(), b, cpu_w, want.data(), bias.data());
    DevBuf<float> dx(x), db(bias), dy(size_t(b * n));
    ASSERT_EQ(gemv(gw, dx.get(), b, db.get(), dy.get(), nullptr), cudaSuccess);
    expect_near(dy.host(), want, tol);
  }
}

TEST(CudaOps, GemvBf16MatchesCpu) {
  TERN_REQUIRE_CUDA();
  const int64_t n = 136, k = 512;
  auto wf = random_vec(size_t(n * k), 12);
  std::vector<uint16_t> wb(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) wb[i] = f32_to_bf16(wf[i]);
  WeightMatrix w{wb.data(), DType::BF16, n, k};
  DevBuf<uint16_t> dw(wb);
  GemvWeight g;
  g.kind = GemvWeight::BF16, g.data = dw.get(), g.n = n, g.k = k;
  check_gemv(w, g, 1e-4f);
}

TEST(CudaOps, GemvQuantizedFormatsMatchDequantizedCpu) {
  TERN_REQUIRE_CUDA();
  const int64_t n = 72, k = 256;
  auto wf = random_vec(size_t(n * k), 13);
  struct Case { int bits, group; bool sym, fp8; };
  for (const Case cs : {Case{8, 0, true, false}, Case{4, 64, true, false}, Case{4, 32, false, false}, Case{8, 0, true, true}}) {
    SCOPED_TRACE(std::to_string(cs.bits) + "/" + std::to_string(cs.group) + (cs.fp8 ? " fp8" : ""));
    auto ql = cs.fp8 ? quantize_fp8(wf.data(), n, k) : quantize_rtn(wf.data(), n, k, cs.bits, cs.group, cs.sym).value();
    WeightArena arena;
    auto packed = pack_for_kernels(ql, false, arena, "test");
    ASSERT_TRUE(packed.is_ok()) << packed.status().message();
    const WeightMatrix& pw = *packed;
    // The reference is the dequantized weight in f32: the GPU keeps x in f32 (W8A16 / W4A16).
    const auto deq = dequantize(ql);
    WeightMatrix ref{deq.data(), DType::F32, n, k};
    const size_t code_bytes = pw.format == WeightFormat::Int4Group ? size_t(n * k / 2) : size_t(n * k);
    const size_t ns = pw.format == WeightFormat::Int4Group ? size_t(n * k / pw.group) : size_t(n);
    DevBuf<uint8_t> dq(std::vector<uint8_t>(static_cast<const uint8_t*>(pw.data), static_cast<const uint8_t*>(pw.data) + code_bytes));
    DevBuf<float> ds(std::vector<float>(pw.scales, pw.scales + ns));
    DevBuf<float> dz(pw.zeros ? std::vector<float>(pw.zeros, pw.zeros + ns) : std::vector<float>(1));
    GemvWeight g;
    g.kind = pw.format == WeightFormat::Int4Group ? GemvWeight::INT4
             : pw.format == WeightFormat::Fp8E4M3 ? GemvWeight::FP8 : GemvWeight::INT8;
    g.data = dq.get(), g.scales = ds.get(), g.zeros = pw.zeros ? dz.get() : nullptr, g.group = pw.group, g.n = n, g.k = k;
    check_gemv(ref, g, 1e-4f);
  }
}

// Paged attention (prefill chunk + decode with splits, GQA, sliding window) against a host loop
// over the same bf16-rounded keys and values.
TEST(CudaOps, PagedAttentionMatchesHostReference) {
  TERN_REQUIRE_CUDA();
  const int bs = 16, nkv = 2, nh = 8, hd = 64, nblocks = 12, max_blocks = 6;
  // seq 0: prefill chunk, positions 20..29 (keys 0..19 already cached); seq 1: decode at position 70.
  std::vector<int32_t> bt = {4, 9, -1, -1, -1, -1, 0, 1, 2, 3, 5, -1};
  std::vector<int32_t> pos, seq;
  for (int p = 20; p < 30; ++p) pos.push_back(p), seq.push_back(0);
  pos.push_back(70), seq.push_back(1);
  const int64_t T = int64_t(pos.size()), row = nkv * hd;
  for (int window : {0, 24}) {
    for (int splits : {1, 5}) {
      SCOPED_TRACE("window " + std::to_string(window) + " splits " + std::to_string(splits));
      std::vector<uint16_t> kc(size_t(nblocks * bs * row)), vc(kc.size());
      auto kf = random_vec(kc.size(), 20), vf = random_vec(kc.size(), 21);
      for (size_t i = 0; i < kc.size(); ++i) kc[i] = f32_to_bf16(kf[i]), vc[i] = f32_to_bf16(vf[i]);
      auto q = random_vec(size_t(T * nh * hd), 22), kn = random_vec(size_t(T * row), 23), vn = random_vec(size_t(T * row), 24);
      DevBuf<uint16_t> dk(kc), dv(vc);
      DevBuf<int32_t> dbt(bt), dpos(pos), dseq(seq);
      DevBuf<float> dq(q), dkn(kn), dvn(vn), dpart(size_t(T * nh * splits * (hd + 2))), dout(size_t(T * nh * hd));
      PagedKv kv{dk.get(), dv.get(), bs, nkv, hd};
      StepTokens st{dpos.get(), dseq.get(), dbt.get(), max_blocks, T};
      ASSERT_EQ(kv_write(kv, st, dkn.get(), dvn.get(), nullptr), cudaSuccess);
      const float scale = 0.125f;
      ASSERT_EQ(paged_attention(kv, st, dq.get(), nh, window, scale, splits, dpart.get(), dout.get(), nullptr), cudaSuccess);
      // Host: apply the same writes, then attend.
      for (int64_t t = 0; t < T; ++t) {
        const int32_t b = bt[size_t(seq[size_t(t)] * max_blocks + pos[size_t(t)] / bs)];
        for (int64_t j = 0; j < row; ++j) {
          kc[size_t((b * bs + pos[size_t(t)] % bs) * row + j)] = f32_to_bf16(kn[size_t(t * row + j)]);
          vc[size_t((b * bs + pos[size_t(t)] % bs) * row + j)] = f32_to_bf16(vn[size_t(t * row + j)]);
        }
      }
      std::vector<float> want(size_t(T * nh * hd), 0.f);
      for (int64_t t = 0; t < T; ++t) {
        const int p = pos[size_t(t)];
        const int lo = window > 0 ? std::max(0, p - window + 1) : 0;
        for (int h = 0; h < nh; ++h) {
          const int kh = h / (nh / nkv);
          std::vector<double> s;
          double mx = -1e30;
          for (int j = lo; j <= p; ++j) {
            const size_t off = size_t((bt[size_t(seq[size_t(t)] * max_blocks + j / bs)] * bs + j % bs) * row + kh * hd);
            double d = 0;
            for (int e = 0; e < hd; ++e) d += double(q[size_t((t * nh + h) * hd + e)]) * bf16_to_f32(kc[off + size_t(e)]);
            s.push_back(d * scale);
            mx = std::max(mx, s.back());
          }
          double l = 0;
          for (auto& v : s) l += (v = std::exp(v - mx));
          for (int j = lo; j <= p; ++j) {
            const size_t off = size_t((bt[size_t(seq[size_t(t)] * max_blocks + j / bs)] * bs + j % bs) * row + kh * hd);
            for (int e = 0; e < hd; ++e)
              want[size_t((t * nh + h) * hd + e)] += float(s[size_t(j - lo)] / l * bf16_to_f32(vc[off + size_t(e)]));
          }
        }
      }
      expect_near(dout.host(), want, 1e-4f);
    }
  }
}
#else
TEST(CudaOps, BuiltWithoutCuda) { GTEST_SKIP() << "no CUDA device: this tern was built without CUDA"; }
#endif

}  // namespace
}  // namespace tern::test
