// The sparse checkpoint format (formats/sparse/, compress/sparse_checkpoint.h): a pruned tiny Llama
// written by tern sparsify (unstructured, 2:4, int8) loads back as sparse weights equal to the dense
// pruned ones and gives the same logits; sparsity_config parsing; and every way the sparse metadata
// can disagree with the tensors is a one-line error naming the tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "../model_test_util.h"
#include "../sparse_test_util.h"
#include "../test_support.h"
#include "compress/prune_model.h"
#include "compress/prune_writer.h"
#include "compress/sparse_checkpoint.h"
#include "formats/quant/checkpoint_layouts.h"
#include "formats/quant/quant_config.h"
#include "kernels/cpu/sparse_kernels.h"

namespace tern {
namespace {

using test::TempDir;

ExecContext& ctx() {
  static ThreadPool pool(1);
  static ExecContext c(pool, CpuFeatures::detect());
  return c;
}

const std::vector<int32_t> kIds = {0, 5, 17, 99, 3, 42, 250, 8, 77, 130, 11};

// Pruned dense + its sparse form, under one temporary directory.
struct Pair {
  TempDir tmp;
  std::string dense, sparse;
  SparsifyReport rep;
};

std::unique_ptr<Pair> make_pair(test::PrunePattern pattern, SparseStructure structure, bool int8) {
  auto p = std::make_unique<Pair>();
  p->dense = p->tmp.file("dense");
  p->sparse = p->tmp.file("sparse");
  test::write_pruned_dense(test::tiny_arch_dir("llama"), p->dense, pattern);
  auto r = write_sparse_checkpoint({p->dense, p->sparse, structure, int8});
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  if (r.is_ok()) p->rep = *r;
  return p;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = a.size() == b.size() ? 0.f : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

std::vector<float> dense_rows(const WeightMatrix& w) {
  std::vector<float> d(size_t(w.rows * w.cols));
  if (w.format == WeightFormat::SparseBitmask) {
    cpu::sparse_expand_rows_scalar(w, 0, w.rows, d.data());
  } else {
    for (size_t i = 0; i < d.size(); ++i) d[i] = load_as_f32(w.data, w.dtype, i);
  }
  return d;
}

TEST(SparseFormat, UnstructuredRoundTrip) {
  auto p = make_pair(test::PrunePattern::Half, SparseStructure::Auto, false);
  EXPECT_EQ(p->rep.structure, SparseStructure::Unstructured);
  EXPECT_EQ(p->rep.linears, 2 * 7);
  EXPECT_NEAR(p->rep.sparsity, 0.5, 0.01);
  // bf16 in; out: half the values + 1 bit per weight + 8-byte row offsets: 0.5625 + 4 / cols of the
  // dense bytes (0.625 at 64 columns, 0.5875 at 160).
  EXPECT_LT(double(p->rep.sparse_bytes), 0.626 * double(p->rep.dense_bytes));
  EXPECT_GT(double(p->rep.sparse_bytes), 0.58 * double(p->rep.dense_bytes));
  auto cfg = load_quant_config(p->sparse).value();
  EXPECT_FALSE(cfg.quantized());
  EXPECT_EQ(cfg.sparsity.format, SparseFormat::Bitmask);
  auto dense = Model::load(p->dense).value();
  auto sparse = Model::load(p->sparse).value();
  for (size_t l = 0; l < dense->weights().layers.size(); ++l) {
    const auto& dl = dense->weights().layers[l];
    const auto& sl = sparse->weights().layers[l];
    for (auto [d, s] : {std::pair{&dl.attn.q, &sl.attn.q}, {&dl.attn.o, &sl.attn.o}, {&dl.mlp.down, &sl.mlp.down}}) {
      ASSERT_EQ(s->format, WeightFormat::SparseBitmask);
      EXPECT_EQ(dense_rows(*d), dense_rows(*s)) << "layer " << l;
    }
  }
  const auto a = test::all_logits(*dense, ctx(), kIds), b = test::all_logits(*sparse, ctx(), kIds);
  ASSERT_FALSE(a.empty());
  EXPECT_LT(max_abs_diff(a, b), 1e-3f);
  EXPECT_EQ(test::greedy(*dense, ctx(), kIds, 8), test::greedy(*sparse, ctx(), kIds, 8));
}

TEST(SparseFormat, TwoFourRoundTripBf16AndInt8) {
  auto p = make_pair(test::PrunePattern::TwoFour, SparseStructure::Auto, false);
  EXPECT_EQ(p->rep.structure, SparseStructure::TwoFour);
  EXPECT_EQ(load_quant_config(p->sparse).value().sparsity.format, SparseFormat::Bitmask24);
  auto dense = Model::load(p->dense).value();
  auto sparse = Model::load(p->sparse).value();
  EXPECT_EQ(dense_rows(dense->weights().layers[1].mlp.up), dense_rows(sparse->weights().layers[1].mlp.up));
  const auto a = test::all_logits(*dense, ctx(), kIds);
  EXPECT_LT(max_abs_diff(a, test::all_logits(*sparse, ctx(), kIds)), 1e-3f);

  auto q = write_sparse_checkpoint({p->dense, p->tmp.file("int8"), SparseStructure::TwoFour, true});
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  auto cfg = load_quant_config(p->tmp.file("int8")).value();
  EXPECT_TRUE(cfg.quantized());
  EXPECT_EQ(cfg.ct_format, "int-quantized");
  auto int8 = Model::load(p->tmp.file("int8")).value();
  const WeightMatrix& w = int8->weights().layers[0].attn.k;
  ASSERT_EQ(w.format, WeightFormat::SparseBitmask);
  EXPECT_EQ(w.dtype, DType::I8);
  // Per-channel int8 of the kept values: each weight within half a step of the dense one.
  const auto dd = dense_rows(dense->weights().layers[0].attn.k), sd = dense_rows(w);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c)
      ASSERT_LE(std::fabs(dd[size_t(r * w.cols + c)] - sd[size_t(r * w.cols + c)]), 0.5001f * w.scales[r]);
  EXPECT_LT(max_abs_diff(a, test::all_logits(*int8, ctx(), kIds)), 0.1f);  // measured 0.055
}

// tern prune --lm-head + tern sparsify --lm-head: the tied head of llama_tied gets its own pruned copy,
// stored sparse (bf16 and 2:4 int8) and multiplied by the sparse kernels; the embedding stays dense.
TEST(SparseFormat, SparseLmHead) {
  TempDir tmp;
  auto base = Model::load(test::tiny_arch_dir("llama_tied")).value();
  ASSERT_TRUE(base->config().tie_word_embeddings);
  PruneOptions o;
  o.spec = *parse_nm_pattern("2:4");
  o.lm_head = true;
  auto pm = prune_model(*base, ctx(), {}, o);
  ASSERT_TRUE(pm.is_ok()) << pm.status().message();
  ASSERT_TRUE(write_pruned_checkpoint(*base, *pm, tmp.file("dense")).is_ok());
  auto no_head = write_sparse_checkpoint({test::tiny_arch_dir("llama_tied"), tmp.file("x"), SparseStructure::Auto,
                                          false, /*lm_head=*/true});
  ASSERT_FALSE(no_head.is_ok());
  EXPECT_NE(no_head.status().message().find("tied"), std::string::npos) << no_head.status().message();
  auto dense = Model::load(tmp.file("dense")).value();
  const auto want = test::all_logits(*dense, ctx(), kIds);
  for (bool int8 : {false, true}) {
    const std::string out = tmp.file(int8 ? "int8" : "bf16");
    auto r = write_sparse_checkpoint({tmp.file("dense"), out, SparseStructure::Auto, int8, /*lm_head=*/true});
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->structure, SparseStructure::TwoFour);
    EXPECT_EQ(r->linears, 2 * 7 + 1);
    auto sparse = Model::load(out).value();
    EXPECT_FALSE(sparse->config().tie_word_embeddings);
    const WeightMatrix& head = sparse->weights().lm_head;
    ASSERT_EQ(head.format, WeightFormat::SparseBitmask) << (int8 ? "int8" : "bf16");
    EXPECT_EQ(head.dtype, int8 ? DType::I8 : DType::BF16);
    EXPECT_TRUE(sparse->weights().embed.dense());
    const auto hd = dense_rows(dense->weights().lm_head), hs = dense_rows(head);
    ASSERT_EQ(hd.size(), hs.size());
    for (size_t i = 0; i < hd.size(); ++i) {
      if (hd[i] == 0.f) {
        ASSERT_EQ(hs[i], 0.f) << "a pruned weight stays zero, element " << i;
      }
      ASSERT_NEAR(hs[i], hd[i], int8 ? 0.5001f * head.scales[i / size_t(head.cols)] : std::fabs(hd[i]) / 128.f) << i;
    }
    EXPECT_LT(max_abs_diff(want, test::all_logits(*sparse, ctx(), kIds)), 0.1f) << (int8 ? "int8" : "bf16");
  }
}

TEST(SparseFormat, ForcedTwoFourOnUnstructuredNamesTheTensor) {
  TempDir tmp;
  test::write_pruned_dense(test::tiny_arch_dir("llama"), tmp.file("dense"), test::PrunePattern::Half);
  auto r = write_sparse_checkpoint({tmp.file("dense"), tmp.file("out"), SparseStructure::TwoFour, false});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("is not 2:4 sparse"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("model.layers."), std::string::npos) << r.status().message();
}

TEST(SparseFormat, SparsifyRejectsAnAlreadySparseCheckpoint) {
  auto p = make_pair(test::PrunePattern::Half, SparseStructure::Auto, false);
  auto r = write_sparse_checkpoint({p->sparse, p->tmp.file("again"), SparseStructure::Auto, false});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("already quantized or sparse"), std::string::npos);
}

TEST(SparseFormat, SparsityConfigParsing) {
  auto parse = [](const std::string& text) { return parse_quant_config(nlohmann::json::parse(text), "config.json"); };
  auto ok = parse(R"({"quant_method":"compressed-tensors","format":"dense","sparsity_config":
      {"format":"sparse-bitmask","sparsity_structure":"unstructured","targets":["Linear"],"ignore":["lm_head"],
       "global_sparsity":0.5}})");
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_EQ(ok->method, QuantMethod::None);
  EXPECT_EQ(ok->sparsity.format, SparseFormat::Bitmask);
  EXPECT_EQ(ok->sparsity.ignore, std::vector<std::string>{"lm_head"});
  // What tern writes parses back.
  auto again = parse_quant_config(nlohmann::json::parse(quant_config_to_json(*ok).dump()), "config.json");
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->sparsity.format, SparseFormat::Bitmask);

  for (auto [text, want] : std::vector<std::pair<std::string, std::string>>{
           {R"({"quant_method":"compressed-tensors","sparsity_config":{"format":"sparse-foo"}})",
            "sparsity_config.format: 'sparse-foo' is not supported"},
           {R"({"quant_method":"compressed-tensors","sparsity_config":{"format":"sparse-24-bitmask","sparsity_structure":"unstructured"}})",
            "sparsity_config.sparsity_structure: 'unstructured' does not match"},
           {R"({"quant_method":"compressed-tensors","sparsity_config":{"format":"sparse-bitmask","sparsity_structure":"4:8"}})",
            "sparsity_config.sparsity_structure: '4:8' is not supported"},
           {R"({"quant_method":"compressed-tensors","sparsity_config":{"sparsity_structure":"2:4"}})",
            "sparsity_config.format: missing"},
           {R"({"quant_method":"compressed-tensors","sparsity_config":[1]})", "sparsity_config: expected an object"}}) {
    auto r = parse(text);
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
  }
}

// The sparse checkpoint's tensors, one of them changed by `edit`, written back over model.safetensors.
using Edit = std::function<void(std::map<std::string, OwnedTensor>&)>;

std::string load_error_after(const Pair& p, const Edit& edit) {
  auto store = SafetensorsStore::open_dir(p.sparse).value();
  std::map<std::string, OwnedTensor> ts;
  for (const TensorInfo& t : store.tensors()) {
    OwnedTensor o{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.bytes)};
    std::memcpy(o.bytes.data(), t.data, t.bytes);
    ts[t.name] = std::move(o);
  }
  edit(ts);
  std::vector<TensorToWrite> w;
  for (const auto& [name, t] : ts) w.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
  const std::string dir = p.tmp.file("edited");
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(write_safetensors(dir + "/model.safetensors", w).is_ok());
  std::filesystem::copy_file(p.sparse + "/config.json", dir + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  auto m = Model::load(dir);
  return m.is_ok() ? std::string("loaded") : m.status().message();
}

constexpr const char* kMod = "model.layers.0.self_attn.q_proj";

int64_t i64_at(const OwnedTensor& t, size_t i) {
  int64_t v;
  std::memcpy(&v, t.bytes.data() + 8 * i, 8);
  return v;
}
void set_i64(OwnedTensor& t, size_t i, int64_t v) { std::memcpy(t.bytes.data() + 8 * i, &v, 8); }

TEST(SparseFormat, MetadataThatDisagreesWithTheTensorsIsAnError) {
  auto p = make_pair(test::PrunePattern::Half, SparseStructure::Auto, false);
  const std::string m = kMod;
  const std::vector<std::pair<Edit, std::string>> cases = {
      {[&](auto& ts) { set_i64(ts[m + ".row_offsets"], 1, i64_at(ts[m + ".row_offsets"], 1) + 1); },
       "'" + m + ".row_offsets': row 1 starts at value"},
      {[&](auto& ts) { set_i64(ts[m + ".shape"], 0, i64_at(ts[m + ".shape"], 0) + 1); }, "'" + m + ".shape': ["},
      {[&](auto& ts) {
         auto& v = ts[m + ".compressed"];
         v.bytes.resize(v.bytes.size() - 2);
         v.shape[0] -= 1;
       },
       "'" + m + ".compressed': "},
      {[&](auto& ts) { ts[m + ".bitmask"].bytes[0] ^= 1; }, "'" + m + ".row_offsets': row 1 starts at value"},
      {[&](auto& ts) { ts[m + ".bitmask"].shape = {ts[m + ".bitmask"].shape[1], ts[m + ".bitmask"].shape[0]}; },
       "'" + m + ".bitmask': expected uint8"},
      {[&](auto& ts) { ts.erase(m + ".row_offsets"); }, "missing tensor '" + m + ".row_offsets'"},
      {[&](auto& ts) {
         auto& v = ts[m + ".compressed"];
         v.dtype = DType::F16;
       },
       "'" + m + ".compressed': dtype F16 is not supported"},
  };
  for (const auto& [edit, want] : cases) {
    const std::string err = load_error_after(*p, edit);
    EXPECT_NE(err.find(want), std::string::npos) << "want '" << want << "' in: " << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
}

TEST(SparseFormat, TwoFourMetadataErrors) {
  auto p = make_pair(test::PrunePattern::TwoFour, SparseStructure::Auto, false);
  const std::string m = kMod;
  // Three of the first four columns of row 0 kept (and one value short elsewhere: the count still matches).
  std::string err = load_error_after(*p, [&](auto& ts) {
    uint8_t& b = ts[m + ".bitmask"].bytes[0];
    b = uint8_t((b & 0xf0) | 0x07);
  });
  EXPECT_NE(err.find("not 2 of every 4 kept"), std::string::npos) << err;
  err = load_error_after(*p, [&](auto& ts) { ts[m + ".compressed"].shape = {ts[m + ".compressed"].shape[0] * 2, ts[m + ".compressed"].shape[1] / 2}; });
  EXPECT_NE(err.find("but 2:4 of"), std::string::npos) << err;
}

}  // namespace
}  // namespace tern
