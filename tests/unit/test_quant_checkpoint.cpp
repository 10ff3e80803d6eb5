// Quantized checkpoint layouts: packings computed by hand for tiny matrices (AutoAWQ, AutoGPTQ,
// compressed-tensors), pack -> safetensors -> unpack round trips, quantization_config parsing and its
// errors, and whole models written by tern and loaded back through Model::load.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "../model_test_util.h"
#include "../test_support.h"
#include "formats/quant/checkpoint_layouts.h"
#include "compress/checkpoint_writer.h"
#include "formats/quant/quant_config.h"
#include "formats/safetensors.h"

namespace tern {
namespace {

using test::TempDir;

QuantConfig cfg_of(const std::string& json_text) {
  auto r = parse_quant_config(nlohmann::json::parse(json_text), "config.json");
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? *r : QuantConfig{};
}

uint32_t u32(const OwnedTensor& t, size_t i) {
  uint32_t v;
  std::memcpy(&v, t.bytes.data() + 4 * i, 4);
  return v;
}

// Writes the tensors to one safetensors file and opens it.
SafetensorsStore store_of(const TempDir& dir, const std::vector<OwnedTensor>& ts) {
  std::vector<TensorToWrite> w;
  for (const auto& t : ts) w.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
  EXPECT_TRUE(write_safetensors(dir.file("m.safetensors"), w).is_ok());
  return SafetensorsStore::open_file(dir.file("m.safetensors")).value();
}

QuantizedLinear codes(int64_t rows, int64_t cols, int group, bool sym, std::function<int(int64_t, int64_t)> f) {
  QuantizedLinear ql;
  ql.bits = 4, ql.group = group, ql.symmetric = sym, ql.rows = rows, ql.cols = cols;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) ql.q.push_back(uint8_t(f(r, c)));
  ql.scales.assign(size_t(rows * ql.n_groups()), 0.5f);
  if (!sym) ql.zeros.assign(size_t(rows * ql.n_groups()), 3.0f);
  return ql;
}

TEST(QuantCheckpoint, AwqPackingByHand) {
  // out 8 x in 2: code[r, c] = r + 8c. AWQ packs 8 output columns per int32, nibble i = column order[i]
  // with order 0 2 4 6 1 3 5 7.
  const auto ql = codes(8, 2, 2, false, [](int64_t r, int64_t c) { return int(r + 8 * c); });
  const auto cfg = cfg_of(R"({"quant_method":"awq","bits":4,"group_size":2,"zero_point":true,"version":"gemm"})");
  auto ts = pack_checkpoint_linear(ql, cfg, "l").value();
  ASSERT_EQ(ts[0].name, "l.qweight");
  EXPECT_EQ(ts[0].shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(u32(ts[0], 0), 0x75316420u);
  EXPECT_EQ(u32(ts[0], 1), 0xfdb9eca8u);
  EXPECT_EQ(ts[1].name, "l.qzeros");
  EXPECT_EQ(u32(ts[1], 0), 0x33333333u);
  EXPECT_EQ(ts[2].name, "l.scales");
  EXPECT_EQ(ts[2].dtype, DType::F16);
  EXPECT_EQ(ts[2].shape, (std::vector<int64_t>{1, 8}));
  TempDir dir;
  const auto back = unpack_checkpoint_linear(store_of(dir, ts), cfg, "l", 8, 2).value();
  EXPECT_EQ(back.q, ql.q);
  EXPECT_EQ(back.zeros, ql.zeros);
  EXPECT_EQ(back.scales, ql.scales);
}

TEST(QuantCheckpoint, GptqPackingByHand) {
  // out 8 x in 8, symmetric: qweight [in/8, out], input t of a column in nibble t; zero 8 stored as 7.
  const auto ql = codes(8, 8, 8, true, [](int64_t r, int64_t c) { return int((r + c) % 16); });
  const auto cfg = cfg_of(R"({"quant_method":"gptq","bits":4,"group_size":8,"desc_act":false,"sym":true})");
  auto ts = pack_checkpoint_linear(ql, cfg, "l").value();
  EXPECT_EQ(ts[0].shape, (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(u32(ts[0], 0), 0x76543210u);
  EXPECT_EQ(u32(ts[0], 1), 0x87654321u);
  EXPECT_EQ(ts[1].shape, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(u32(ts[1], 0), 0x77777777u);  // the well-known symmetric GPTQ qzeros
  EXPECT_EQ(ts[3].name, "l.g_idx");
  TempDir dir;
  const auto back = unpack_checkpoint_linear(store_of(dir, ts), cfg, "l", 8, 8).value();
  EXPECT_TRUE(back.symmetric);
  EXPECT_TRUE(back.zeros.empty());
  EXPECT_TRUE(back.g_idx.empty());
  EXPECT_EQ(back.q, ql.q);
}

TEST(QuantCheckpoint, CompressedTensorsPackingByHand2x8) {
  // out 2 x in 8: weight_packed [2, 1]; row 0 codes 0..7 (signed -8..-1), row 1 codes 15..8.
  const auto ql = codes(2, 8, 8, true, [](int64_t r, int64_t c) { return int(r == 0 ? c : 15 - c); });
  auto cfg = cfg_of(R"({"quant_method":"compressed-tensors","format":"pack-quantized","quantization_status":"compressed",
    "config_groups":{"group_0":{"targets":["Linear"],"weights":{"num_bits":4,"type":"int","symmetric":true,
    "strategy":"group","group_size":8}}},"ignore":["lm_head"]})");
  auto ts = pack_checkpoint_linear(ql, cfg, "l").value();
  ASSERT_EQ(ts[0].name, "l.weight_packed");
  EXPECT_EQ(ts[0].shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(u32(ts[0], 0), 0x76543210u);
  EXPECT_EQ(u32(ts[0], 1), 0x89abcdefu);
  EXPECT_EQ(ts[2].name, "l.weight_shape");
  TempDir dir;
  const auto back = unpack_checkpoint_linear(store_of(dir, ts), cfg, "l", 2, 8).value();
  EXPECT_EQ(back.q, ql.q);
  const auto w = dequantize(back);
  EXPECT_EQ(w[0], -4.0f);  // (0 - 8) * 0.5
  EXPECT_EQ(w[8], 3.5f);   // (15 - 8) * 0.5
}

TEST(QuantCheckpoint, RandomRoundTripsEveryLayout) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.f, 0.1f);
  std::vector<float> w(64 * 128);
  for (auto& x : w) x = d(rng);
  struct Case {
    const char* json;
    int bits, group;
    bool sym, fp8;
  };
  const Case cases[] = {
      {R"({"quant_method":"awq","bits":4,"group_size":32,"zero_point":true,"version":"gemm"})", 4, 32, false, false},
      {R"({"quant_method":"gptq","bits":4,"group_size":64,"sym":false})", 4, 64, false, false},
      {R"({"quant_method":"gptq","bits":8,"group_size":-1,"sym":true})", 8, 0, true, false},
      {R"({"quant_method":"compressed-tensors","format":"int-quantized","config_groups":{"g":{"weights":
         {"num_bits":8,"type":"int","symmetric":true,"strategy":"channel"},"input_activations":{"num_bits":8,
         "type":"int","symmetric":true,"strategy":"token","dynamic":true}}}})", 8, 0, true, false},
      {R"({"quant_method":"compressed-tensors","format":"pack-quantized","config_groups":{"g":{"weights":
         {"num_bits":4,"type":"int","symmetric":false,"strategy":"group","group_size":32}}}})", 4, 32, false, false},
      {R"({"quant_method":"compressed-tensors","format":"float-quantized","config_groups":{"g":{"weights":
         {"num_bits":8,"type":"float","symmetric":true,"strategy":"channel"}}}})", 8, 0, true, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    const QuantConfig cfg = cfg_of(c.json);
    QuantizedLinear ql = c.fp8 ? quantize_fp8(w.data(), 64, 128) : quantize_rtn(w.data(), 64, 128, c.bits, c.group, c.sym).value();
    auto ts = pack_checkpoint_linear(ql, cfg, "m.x_proj");
    ASSERT_TRUE(ts.is_ok()) << ts.status().message();
    TempDir dir;
    const auto store = store_of(dir, *ts);
    ASSERT_TRUE(has_quantized_linear(store, cfg, "m.x_proj"));
    auto back = unpack_checkpoint_linear(store, cfg, "m.x_proj", 64, 128);
    ASSERT_TRUE(back.is_ok()) << back.status().message();
    EXPECT_EQ(back->q, ql.q);
    const auto a = dequantize(ql), b = dequantize(*back);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 2e-3f * std::fabs(a[i]) + 1e-6f);
    // A wrong shape in the config is an error naming the tensor, not a crash.
    auto bad = unpack_checkpoint_linear(store, cfg, "m.x_proj", 64, 96);
    EXPECT_FALSE(bad.is_ok());
  }
}

TEST(QuantCheckpoint, ConfigErrorsAreOneLine) {
  auto check = [](const std::string& text, const std::string& fragment) {
    auto r = parse_quant_config(nlohmann::json::parse(text), "dir/config.json");
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  };
  check(R"({"quant_method":"bitsandbytes"})", "'bitsandbytes' is not supported");
  check(R"({"bits":4})", "quant_method: missing");
  check(R"({"quant_method":"awq","bits":3,"group_size":128})", "bits");
  check(R"({"quant_method":"awq","bits":4,"group_size":128,"version":"gemv"})", "gemv");
  check(R"({"quant_method":"gptq","bits":4,"group_size":"128"})", "group_size");
  check(R"({"quant_method":"gptq","bits":4,"group_size":128,"checkpoint_format":"marlin"})", "marlin");
  check(R"({"quant_method":"compressed-tensors","format":"sparse-bitmask","config_groups":{}})", "sparse-bitmask");
  check(R"({"quant_method":"compressed-tensors","format":"pack-quantized","config_groups":{"a":{},"b":{}}})",
        "weights: missing");
}

// tiny llama (fp32) -> tern's writer in each layout -> Model::load -> logits close to the base model's.
void model_round_trip(const QuantConfig& layout, bool fp8, float max_rel_err) {
  auto base = Model::load(test::tiny_arch_dir("llama")).value();
  TempDir out;
  QuantSpec spec;
  spec.bits = layout.bits, spec.group = layout.group, spec.symmetric = layout.symmetric;
  int64_t calls = 0;
  LinearQuantizer q = [&](const std::string&, const float* w, int64_t rows, int64_t cols) -> Result<QuantizedLinear> {
    if (fp8) return quantize_fp8(w, rows, cols);
    return quantize_rtn(w, rows, cols, spec);
  };
  CheckpointWriteOptions wo;
  wo.out_dir = out.path();
  Status s = write_quantized_checkpoint(*base, layout, q, wo, [&](int64_t, int64_t) { ++calls; });
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(calls, 14);  // 2 layers x 7 linears
  auto loaded = Model::load(out.path());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ((*loaded)->quant_config().method, layout.method);
  EXPECT_NE((*loaded)->weights().layers[0].mlp.down.format, WeightFormat::Dense);
  EXPECT_LT((*loaded)->weight_bytes_per_token(), base->weight_bytes_per_token());
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  const std::vector<int32_t> ids = {5, 17, 300, 2, 999, 64, 8};
  const auto a = test::all_logits(*base, ctx, ids), b = test::all_logits(**loaded, ctx, ids);
  ASSERT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += a[i] * a[i];
  EXPECT_LT(std::sqrt(num / den), max_rel_err);
}

TEST(QuantCheckpoint, TinyLlamaGptqInt8LoadsBack) {
  QuantConfig c;
  c.method = QuantMethod::Gptq, c.bits = 8, c.group = 0, c.symmetric = true;
  model_round_trip(c, false, 0.02f);
}

TEST(QuantCheckpoint, TinyLlamaAwqInt4LoadsBack) {
  QuantConfig c;
  c.method = QuantMethod::Awq, c.bits = 4, c.group = 32, c.symmetric = false;
  model_round_trip(c, false, 0.25f);
}

TEST(QuantCheckpoint, TinyLlamaCompressedTensorsW8A8AndFp8LoadBack) {
  QuantConfig c;
  c.method = QuantMethod::CompressedTensors, c.bits = 8, c.group = 0, c.int8_activations = true;
  c.ct_format = "int-quantized", c.ignore = {"lm_head"};
  model_round_trip(c, false, 0.03f);
  QuantConfig f = c;
  f.fp8 = true, f.int8_activations = false, f.ct_format = "float-quantized";
  model_round_trip(f, true, 0.08f);
  QuantConfig p = c;
  p.bits = 4, p.group = 32, p.int8_activations = false, p.ct_format = "pack-quantized";
  model_round_trip(p, false, 0.25f);
}

TEST(QuantCheckpoint, InconsistentCheckpointIsAnError) {
  auto base = Model::load(test::tiny_arch_dir("llama")).value();
  TempDir out;
  QuantConfig c;
  c.method = QuantMethod::Gptq, c.bits = 4, c.group = 32, c.symmetric = true;
  LinearQuantizer q = [&](const std::string&, const float* w, int64_t rows, int64_t cols) {
    return quantize_rtn(w, rows, cols, 4, 32, true);
  };
  CheckpointWriteOptions wo;
  wo.out_dir = out.path();
  ASSERT_TRUE(write_quantized_checkpoint(*base, c, q, wo).is_ok());
  // Claim group 64 in config.json: 160 inputs of down_proj are not a multiple of it.
  auto text = read_text_file(out.file("config.json")).value();
  auto j = nlohmann::json::parse(text);
  j["quantization_config"]["group_size"] = 64;
  test::write_file(out.file("config.json"), j.dump());
  auto r = Model::load(out.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  // Unknown method: one line naming it.
  j["quantization_config"] = {{"quant_method", "hqq"}};
  test::write_file(out.file("config.json"), j.dump());
  r = Model::load(out.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("'hqq' is not supported"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace tern
