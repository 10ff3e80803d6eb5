// The packed-weight cache (model/packed_cache.h): a quantized checkpoint's repacked layers and int8 LM
// head written beside it by the first load and mapped by the next give exactly the logits of a load
// that derives them; a corrupt, truncated, foreign or stale cache is rejected (and rebuilt), never
// used (a verification stamp saves hashing an unchanged cache only); a directory the cache cannot be
// written to still loads. The parallel LM head rounding gives the bytes of the serial one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "../model_test_util.h"
#include "../test_support.h"
#include "compress/checkpoint_writer.h"
#include "formats/quant/pack_weights.h"
#include "formats/quant/quantized_linear.h"
#include "model/model.h"

namespace tern {
namespace {

namespace fs = std::filesystem;

const std::vector<int32_t> kIds = {5, 17, 300, 2, 999, 64, 8};

struct Layout {
  const char* name;
  QuantMethod method;
  int bits, group;
  bool symmetric;
};

constexpr Layout kLayouts[] = {
    {"ct-int8", QuantMethod::CompressedTensors, 8, 0, true},  // tern quantize --bits 8
    {"gptq-int4-asym", QuantMethod::Gptq, 4, 32, false},
};

void write_checkpoint(const std::string& out, const Layout& l, float perturb = 0) {
  auto base = Model::load(test::tiny_arch_dir("llama_tied")).value();
  QuantConfig layout;
  layout.method = l.method, layout.bits = l.bits, layout.group = l.group, layout.symmetric = l.symmetric;
  if (l.method == QuantMethod::CompressedTensors) layout.ct_format = "pack-quantized";
  LinearQuantizer q = [&](const std::string&, const float* w, int64_t rows, int64_t cols) {
    std::vector<float> v(w, w + rows * cols);
    for (size_t i = 0; i < v.size(); i += 7) v[i] += perturb;
    return quantize_rtn(v.data(), rows, cols, l.bits, l.group, l.symmetric);
  };
  CheckpointWriteOptions wo;
  wo.out_dir = out;
  ASSERT_TRUE(write_quantized_checkpoint(*base, layout, q, wo, [](int64_t, int64_t) {}).is_ok());
}

struct Loaded {
  std::unique_ptr<Model> model;
  LoadReport report;
};

Loaded load(const std::string& dir, WeightCacheMode mode) {
  Loaded l;
  ModelLoadOptions o;
  o.weight_cache = mode;
  o.report = &l.report;
  auto m = Model::load(dir, o);
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (m.is_ok()) l.model = std::move(m).value();
  return l;
}

std::vector<float> logits(const Model& m) {
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  return test::all_logits(m, ctx, kIds);
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

void flip_byte(const std::string& path, std::streamoff at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x5a);
  f.seekp(at);
  f.write(&c, 1);
}

class PackedCacheTest : public ::testing::TestWithParam<Layout> {};

TEST_P(PackedCacheTest, WrittenOnceThenMappedWithIdenticalLogits) {
  test::TempDir dir;
  write_checkpoint(dir.path(), GetParam());
  const std::string cache = dir.file(kPackedCacheFile);
  Loaded off = load(dir.path(), WeightCacheMode::Off);
  EXPECT_EQ(off.report.cache, "off");
  EXPECT_FALSE(fs::exists(cache));
  const auto ref = logits(*off.model);
  EXPECT_EQ(off.model->weights().lm_head.format, WeightFormat::Int8Channel);

  Loaded first = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_TRUE(starts_with(first.report.cache, "written")) << first.report.cache;
  ASSERT_TRUE(fs::exists(cache));
  EXPECT_EQ(logits(*first.model), ref);

  Loaded second = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_EQ(second.report.cache, "used");
  EXPECT_EQ(second.model->repacked_bytes(), 0u);  // nothing derived: every layer and the head mapped
  EXPECT_EQ(second.model->weights().lm_head.format, WeightFormat::Int8Channel);
  EXPECT_EQ(logits(*second.model), ref);
  EXPECT_EQ(second.model->weight_bytes_per_token(), off.model->weight_bytes_per_token());
}

TEST_P(PackedCacheTest, CorruptOrTruncatedCacheIsRejectedAndRebuilt) {
  test::TempDir dir;
  write_checkpoint(dir.path(), GetParam());
  const std::string cache = dir.file(kPackedCacheFile);
  const auto ref = logits(*load(dir.path(), WeightCacheMode::Off).model);
  ASSERT_TRUE(starts_with(load(dir.path(), WeightCacheMode::Auto).report.cache, "written"));
  const auto size = std::streamoff(fs::file_size(cache));

  // A payload byte (the last weights), a header byte (an entry), then a truncated file, then garbage.
  for (std::streamoff at : {size - 70, std::streamoff(80)}) {
    flip_byte(cache, at);
    Loaded l = load(dir.path(), WeightCacheMode::Auto);
    EXPECT_TRUE(starts_with(l.report.cache, "written")) << l.report.cache;  // rejected, rebuilt, rewritten
    EXPECT_EQ(logits(*l.model), ref);
    EXPECT_EQ(load(dir.path(), WeightCacheMode::Auto).report.cache, "used");
  }
  fs::resize_file(cache, size_t(size) / 2);
  Loaded truncated = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_TRUE(starts_with(truncated.report.cache, "written")) << truncated.report.cache;
  EXPECT_EQ(logits(*truncated.model), ref);
  {
    std::ofstream garbage(cache, std::ios::binary | std::ios::trunc);
    garbage << "TERNPKW1 and then not a header at all";
  }
  Loaded g = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_TRUE(starts_with(g.report.cache, "written")) << g.report.cache;
  EXPECT_EQ(logits(*g.model), ref);
}

TEST_P(PackedCacheTest, ForeignOrStaleCacheIsNeverUsed) {
  test::TempDir a, b;
  write_checkpoint(a.path(), GetParam());
  write_checkpoint(b.path(), GetParam(), /*perturb=*/0.05f);  // the same shapes, other weights
  const auto ref_b = logits(*load(b.path(), WeightCacheMode::Off).model);
  ASSERT_TRUE(starts_with(load(a.path(), WeightCacheMode::Auto).report.cache, "written"));
  fs::copy_file(a.file(kPackedCacheFile), b.file(kPackedCacheFile));
  Loaded foreign = load(b.path(), WeightCacheMode::Auto);
  EXPECT_NE(foreign.report.cache.find("other checkpoint"), std::string::npos) << foreign.report.cache;
  EXPECT_EQ(logits(*foreign.model), ref_b);

  // A checkpoint rewritten in place (b's weights into a) makes a's cache stale.
  fs::copy_file(b.file("model.safetensors"), a.file("model.safetensors"), fs::copy_options::overwrite_existing);
  Loaded stale = load(a.path(), WeightCacheMode::Auto);
  EXPECT_NE(stale.report.cache.find("other checkpoint"), std::string::npos) << stale.report.cache;
  EXPECT_EQ(logits(*stale.model), ref_b);
}

// A full verification stamps the cache; while the cache file is unchanged later loads skip hashing it,
// and any change to it (a byte written in place, another file renamed over it) is hashed, caught and
// rebuilt; a stale checkpoint is refused by the key whatever the stamp says.
TEST_P(PackedCacheTest, VerifiedStampSkipsHashingUntilTheCacheChanges) {
  test::TempDir dir;
  write_checkpoint(dir.path(), GetParam());
  const std::string cache = dir.file(kPackedCacheFile), stamp = cache + kStampSuffix;
  const auto ref = logits(*load(dir.path(), WeightCacheMode::Off).model);
  ASSERT_TRUE(starts_with(load(dir.path(), WeightCacheMode::Auto).report.cache, "written"));
  // Just written: within a timestamp tick of now, so it is hashed and not stamped yet.
  Loaded fresh = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_EQ(fresh.report.cache, "used");
  EXPECT_TRUE(fresh.report.cache_hashed);
  EXPECT_FALSE(fs::exists(stamp));
  usleep(1'200'000);  // the cache's ctime now over a second old: a full check stamps it
  Loaded hashed = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_EQ(hashed.report.cache, "used");
  EXPECT_TRUE(hashed.report.cache_hashed);
  ASSERT_TRUE(fs::exists(stamp));
  Loaded stamped = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_EQ(stamped.report.cache, "used");
  EXPECT_FALSE(stamped.report.cache_hashed);
  EXPECT_EQ(logits(*stamped.model), ref);

  // A payload byte changed in place: the stamp no longer matches, the hash catches it, the cache is rebuilt.
  flip_byte(cache, std::streamoff(fs::file_size(cache)) - 70);
  Loaded flipped = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_TRUE(starts_with(flipped.report.cache, "written")) << flipped.report.cache;
  EXPECT_EQ(logits(*flipped.model), ref);

  // Another (valid) cache file renamed over it, the old stamp left beside it: hashed again.
  usleep(1'200'000);
  ASSERT_TRUE(load(dir.path(), WeightCacheMode::Auto).report.cache_hashed);  // stamps the rebuilt cache
  ASSERT_FALSE(load(dir.path(), WeightCacheMode::Auto).report.cache_hashed);
  fs::copy_file(cache, cache + ".copy");
  fs::rename(cache + ".copy", cache);
  Loaded renamed = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_EQ(renamed.report.cache, "used");
  EXPECT_TRUE(renamed.report.cache_hashed);

  // The checkpoint rewritten (other weights, same shapes): the key refuses the cache, stamp or not.
  test::TempDir other;
  write_checkpoint(other.path(), GetParam(), /*perturb=*/0.05f);
  const auto ref_other = logits(*load(other.path(), WeightCacheMode::Off).model);
  fs::copy_file(other.file("model.safetensors"), dir.file("model.safetensors"), fs::copy_options::overwrite_existing);
  Loaded stale = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_NE(stale.report.cache.find("other checkpoint"), std::string::npos) << stale.report.cache;
  EXPECT_EQ(logits(*stale.model), ref_other);
}

TEST_P(PackedCacheTest, UnwritableCacheStillLoads) {
  test::TempDir dir;
  write_checkpoint(dir.path(), GetParam());
  const auto ref = logits(*load(dir.path(), WeightCacheMode::Off).model);
  // The cache's name taken by a non-empty directory: it can be neither read nor replaced.
  fs::create_directory(dir.file(kPackedCacheFile));
  std::ofstream(dir.file(kPackedCacheFile) + "/x") << "x";
  Loaded l = load(dir.path(), WeightCacheMode::Auto);
  EXPECT_TRUE(starts_with(l.report.cache, "not written")) << l.report.cache;
  EXPECT_EQ(logits(*l.model), ref);
  EXPECT_FALSE(fs::exists(dir.file(kPackedCacheFile) + ".tmp." + std::to_string(getpid())));
  if (geteuid() == 0) return;  // root writes into read-only directories
  fs::remove_all(dir.file(kPackedCacheFile));
  fs::permissions(dir.path(), fs::perms::owner_write, fs::perm_options::remove);
  Loaded ro = load(dir.path(), WeightCacheMode::Auto);
  fs::permissions(dir.path(), fs::perms::owner_write, fs::perm_options::add);
  EXPECT_TRUE(starts_with(ro.report.cache, "not written")) << ro.report.cache;
  EXPECT_EQ(logits(*ro.model), ref);
}

INSTANTIATE_TEST_SUITE_P(Layouts, PackedCacheTest, ::testing::ValuesIn(kLayouts),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(PackedCache, ParsesTheModeAndRejectsUnknownValues) {
  EXPECT_EQ(parse_weight_cache_mode("auto").value(), WeightCacheMode::Auto);
  EXPECT_EQ(parse_weight_cache_mode("off").value(), WeightCacheMode::Off);
  auto bad = parse_weight_cache_mode("on");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("'on'"), std::string::npos);
}

TEST(PackedCache, DenseCheckpointWritesNoCache) {
  // The shared tiny checkpoints are dense: even an int8 head asked for writes nothing beside them.
  const std::string dir = test::tiny_arch_dir("llama_tied");
  ModelLoadOptions o;
  o.weight_cache = WeightCacheMode::Auto, o.lm_head = LmHeadFormat::Int8;
  ASSERT_TRUE(Model::load(dir, o).is_ok());
  EXPECT_FALSE(fs::exists(dir + "/" + kPackedCacheFile));
}

TEST(PackedCache, ParallelLmHeadRoundingMatchesSerial) {
  const int64_t rows = 1500, cols = 256;  // several row blocks, the last one partial
  std::vector<uint16_t> w(size_t(rows * cols));
  for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_bf16(std::sin(float(i) * 0.37f) * float(1 + i % 13));
  const WeightMatrix dense{w.data(), DType::BF16, rows, cols};
  ThreadPool pool(3);
  for (int bits : {8, 4}) {
    WeightArena a1, a2;
    auto serial = quantize_dense_for_kernels(dense, bits, 64, a1, "lm_head").value();
    auto parallel = quantize_dense_for_kernels(dense, bits, 64, a2, "lm_head", &pool).value();
    ASSERT_EQ(serial.quant_bytes, parallel.quant_bytes);
    const size_t code_bytes = size_t(rows * (bits == 8 ? cols : cols / 2));
    EXPECT_EQ(std::memcmp(serial.data, parallel.data, code_bytes), 0) << bits;
    const size_t n_scales = size_t(rows * (bits == 8 ? 1 : cols / 64));
    EXPECT_EQ(std::memcmp(serial.scales, parallel.scales, n_scales * sizeof(float)), 0) << bits;
  }
}

}  // namespace
}  // namespace tern
