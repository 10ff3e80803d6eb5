// Sharded safetensors: index.json validation (shard names, tensors in the shard they are listed
// in, no unlisted tensors) and the real checkpoints under ../shared/models.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "formats/safetensors.h"
#include "test_support.h"

namespace tern {
namespace {

using test::TempDir;
using test::write_file;

// Shards: a.safetensors holds "x", b.safetensors holds "y", c.safetensors holds "u" and "v" (all F32 [2]).
void write_two_shards(const TempDir& dir) {
  float v[2] = {1.f, 2.f};
  ASSERT_TRUE(write_safetensors(dir.file("a.safetensors"), {{"x", DType::F32, {2}, v, 8}}).is_ok());
  ASSERT_TRUE(write_safetensors(dir.file("b.safetensors"), {{"y", DType::F32, {2}, v, 8}}).is_ok());
  ASSERT_TRUE(
      write_safetensors(dir.file("c.safetensors"), {{"u", DType::F32, {2}, v, 8}, {"v", DType::F32, {2}, v, 8}})
          .is_ok());
}

std::string index_json(const std::string& weight_map) {
  return R"({"metadata": {"total_size": 16}, "weight_map": )" + weight_map + "}";
}

struct BadIndex {
  const char* what;
  std::string index;
  const char* file;    // file the message must name
  const char* tensor;  // tensor it must name ("" = none)
  const char* fragment;
};

TEST(SafetensorsSharded, ValidIndexLoads) {
  TempDir dir;
  write_two_shards(dir);
  write_file(dir.file("model.safetensors.index.json"), index_json(R"({"x": "a.safetensors", "y": "b.safetensors"})"));
  auto s = SafetensorsStore::open_dir(dir.path());
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  ASSERT_EQ(s->tensors().size(), 2u);
  EXPECT_EQ(s->find("y")->file, dir.file("b.safetensors"));
  EXPECT_EQ(load_as_f32(s->find("y")->data, DType::F32, 1), 2.f);
}

TEST(SafetensorsSharded, BadIndexesFailNamingFileAndTensor) {
  const std::vector<BadIndex> cases = {
      {"invalid JSON", "{\"weight_map\": ", "model.safetensors.index.json", "", "invalid JSON"},
      {"no weight_map", R"({"metadata": {}})", "model.safetensors.index.json", "", "weight_map"},
      {"weight_map not object", index_json("[1]"), "model.safetensors.index.json", "", "weight_map"},
      {"shard not a string", index_json(R"({"x": 3, "y": "b.safetensors"})"), "model.safetensors.index.json", "x",
       "shard"},
      {"escaping with ..", index_json(R"({"x": "../a.safetensors", "y": "b.safetensors"})"),
       "model.safetensors.index.json", "x", "plain file name"},
      {"escaping with /", index_json(R"({"x": "/etc/passwd", "y": "b.safetensors"})"), "model.safetensors.index.json",
       "x", "plain file name"},
      {"missing shard file", index_json(R"({"x": "a.safetensors", "y": "d.safetensors"})"), "d.safetensors", "",
       "cannot open"},
      {"tensor not in its shard",
       index_json(R"({"x": "a.safetensors", "y": "b.safetensors", "q": "b.safetensors"})"),
       "model.safetensors.index.json", "q", "not found"},
      {"tensor in another shard", index_json(R"({"x": "b.safetensors", "y": "a.safetensors"})"), "a.safetensors", "x",
       "b.safetensors"},
      {"tensor missing from weight_map", index_json(R"({"x": "a.safetensors", "u": "c.safetensors"})"),
       "c.safetensors", "v",
       "weight_map"},
      {"tensor listed twice", index_json(R"({"x": "a.safetensors", "x": "b.safetensors"})"),
       "model.safetensors.index.json", "x", "twice"},
      {"empty weight_map", index_json("{}"), "model.safetensors.index.json", "", "empty"},
  };
  for (const BadIndex& c : cases) {
    TempDir dir;
    write_two_shards(dir);
    write_file(dir.file("model.safetensors.index.json"), c.index);
    auto r = SafetensorsStore::open_dir(dir.path());
    ASSERT_FALSE(r.is_ok()) << c.what;
    const std::string& msg = r.status().message();
    EXPECT_NE(msg.find(dir.file(c.file)), std::string::npos) << c.what << ": " << msg;
    if (*c.tensor) {
      EXPECT_NE(msg.find(std::string("'") + c.tensor + "'"), std::string::npos) << c.what << ": " << msg;
    }
    EXPECT_NE(msg.find(c.fragment), std::string::npos) << c.what << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << c.what;
  }
}

TEST(SafetensorsSharded, CorruptShardIsNamed) {
  TempDir dir;
  write_two_shards(dir);
  write_file(dir.file("b.safetensors"), "garbage");
  write_file(dir.file("model.safetensors.index.json"), index_json(R"({"x": "a.safetensors", "y": "b.safetensors"})"));
  auto r = SafetensorsStore::open_dir(dir.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find(dir.file("b.safetensors")), std::string::npos) << r.status().message();
}

TEST(SafetensorsSharded, DocsLlamaCheckpoint) {
  auto s = SafetensorsStore::open_dir(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  // embed + final norm + 8 layers × 9 tensors (tied lm_head is not stored).
  EXPECT_EQ(s->tensors().size(), 74u);
  const TensorInfo* e = s->find("model.embed_tokens.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype, DType::BF16);
  EXPECT_EQ(e->shape, (std::vector<int64_t>{8192, 512}));
  EXPECT_EQ(e->bytes, size_t(8192) * 512 * 2);
  EXPECT_EQ(s->total_bytes(), 55591936u);  // metadata.total_size of the index
  const TensorInfo* k = s->find("model.layers.3.self_attn.k_proj.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->shape, (std::vector<int64_t>{256, 512}));  // 4 kv heads × 64
  // The norm weights of a trained model are finite and mostly near 1.
  const TensorInfo* norm = s->find("model.norm.weight");
  ASSERT_NE(norm, nullptr);
  double sum = 0;
  for (int64_t i = 0; i < norm->numel(); ++i) sum += load_as_f32(norm->data, norm->dtype, size_t(i));
  EXPECT_TRUE(std::isfinite(sum));
  EXPECT_GT(sum / double(norm->numel()), 0.1);
}

TEST(SafetensorsSharded, TinyArchCheckpointsLoad) {
  const std::string root = test::shared_dir() + "/models/tiny-archs";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    auto s = SafetensorsStore::open_dir(entry.path().string());
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    EXPECT_GT(s->tensors().size(), 5u) << entry.path();
    for (const TensorInfo& t : s->tensors()) EXPECT_EQ(t.dtype, DType::F32) << t.name;
    ++n;
  }
  EXPECT_GE(n, 13);
}

}  // namespace
}  // namespace tern
