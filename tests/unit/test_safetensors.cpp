// safetensors: malformed files built byte by byte must fail with one-line errors naming the file
// and tensor; written files must read back identically; the shared checkpoints must load.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <numeric>

#include "formats/safetensors.h"
#include "test_support.h"

namespace tern {
namespace {

using test::TempDir;
using test::write_file;

// 8-byte little-endian header length, header text, data section.
std::string st_bytes(const std::string& header, const std::string& data, uint64_t len_override = UINT64_MAX) {
  uint64_t n = len_override == UINT64_MAX ? header.size() : len_override;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

struct Malformed {
  const char* what;
  std::string file_bytes;
  const char* tensor;       // must appear in the message ("" = none)
  const char* expect_text;  // another fragment the message must contain
};

std::vector<Malformed> malformed_cases() {
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::string d8(8, '\x01');
  return {
      {"empty file", "", "", "too short"},
      {"5 bytes", std::string("\x02\0\0\0\0", 5), "", "too short"},
      {"header length past end", st_bytes("{}", "", 4096), "", "past the end"},
      {"absurd header length", st_bytes("{}", "", uint64_t(1) << 50), "", "absurd"},
      {"header not JSON", st_bytes("{\"a\": nope}", ""), "", "invalid JSON"},
      {"header is an array", st_bytes("[1,2]", ""), "", "expected an object"},
      {"unsupported dtype I16", st_bytes(R"({"w":{"dtype":"I16","shape":[1],"data_offsets":[0,2]}})", "ab"), "w",
       "I16"},
      {"unsupported dtype F64", st_bytes(R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", d8), "w", "F64"},
      {"unknown dtype", st_bytes(R"({"w":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", "abcd"), "w", "Q9"},
      {"missing dtype", st_bytes(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", d8), "w", "dtype"},
      {"missing shape", st_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", d8), "w", "shape"},
      {"negative dim", st_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8), "w", "non-negative"},
      {"fractional dim", st_bytes(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", d8), "w",
       "non-negative"},
      {"overflowing shape",
       st_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", d8), "w",
       "too many elements"},
      {"bytes overflow", st_bytes(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", d8),
       "w", "too large"},
      {"begin > end", st_bytes(R"({"w":{)" + f32x2 + R"(,"data_offsets":[8,0]}})", d8), "w", "begin > end"},
      {"offsets not a pair", st_bytes(R"({"w":{)" + f32x2 + R"(,"data_offsets":[0]}})", d8), "w", "data_offsets"},
      {"size mismatch", st_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8), "w", "needs 12"},
      {"past data section", st_bytes(R"({"w":{)" + f32x2 + R"(,"data_offsets":[4,12]}})", d8), "w", "past the data"},
      {"overlap",
       st_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[4,12]}})",
                d8 + "1234"),
       "b", "overlap"},
      {"gap", st_bytes(R"({"w":{)" + f32x2 + R"(,"data_offsets":[4,12]}})", d8 + "1234"), "w", "gap"},
      {"trailing bytes", st_bytes(R"({"w":{)" + f32x2 + R"(,"data_offsets":[0,8]}})", d8 + "xx"), "", "after the last"},
      {"duplicate name", st_bytes(R"({"w":{)" + f32x2 + R"(,"data_offsets":[0,8]},"w":{)" + f32x2 +
                                      R"(,"data_offsets":[0,8]}})",
                                  d8),
       "w", "duplicate"},
      {"metadata not a map", st_bytes(R"({"__metadata__":[1]})", ""), "", "__metadata__"},
      {"metadata non-string value", st_bytes(R"({"__metadata__":{"format":1}})", ""), "", "format"},
      {"entry not an object", st_bytes(R"({"w":[1,2]})", ""), "w", "expected an object"},
      {"name with newline", st_bytes(R"({"a\nb":{"dtype":"I16","shape":[1],"data_offsets":[0,2]}})", "xy"), "a\\x0ab",
       "I16"},
  };
}

TEST(Safetensors, MalformedFilesGiveOneLineErrorsNamingFileAndTensor) {
  TempDir dir;
  const auto cases = malformed_cases();
  ASSERT_GE(cases.size(), 15u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Malformed& c = cases[i];
    const std::string path = dir.file("bad" + std::to_string(i) + ".safetensors");
    write_file(path, c.file_bytes);
    auto r = SafetensorsStore::open_file(path);
    ASSERT_FALSE(r.is_ok()) << c.what;
    const std::string& msg = r.status().message();
    EXPECT_NE(msg.find(path), std::string::npos) << c.what << ": " << msg;
    if (*c.tensor) {
      EXPECT_NE(msg.find(std::string("'") + c.tensor + "'"), std::string::npos) << c.what << ": " << msg;
    }
    EXPECT_NE(msg.find(c.expect_text), std::string::npos) << c.what << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << c.what << ": " << msg;
  }
}

TEST(Safetensors, MissingFileAndDirectory) {
  TempDir dir;
  auto r = SafetensorsStore::open_file(dir.file("nope.safetensors"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("nope.safetensors"), std::string::npos);
  auto d = SafetensorsStore::open_dir(dir.path());
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("model.safetensors"), std::string::npos);
}

// A small checkpoint of every supported dtype, including a scalar and an empty tensor.
struct Fixture {
  std::vector<float> a = std::vector<float>(6);
  std::vector<uint16_t> b = std::vector<uint16_t>(5);
  std::vector<uint16_t> c = std::vector<uint16_t>(8);
  float scalar = 3.5f;
  std::vector<TensorToWrite> tensors;
  Fixture() {
    std::iota(a.begin(), a.end(), -2.0f);
    for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_f16(0.25f * float(i));
    for (size_t i = 0; i < c.size(); ++i) c[i] = f32_to_bf16(-1.5f * float(i));
    tensors = {
        {"z.weight", DType::F32, {2, 3}, a.data(), a.size() * 4},
        {"m.half", DType::F16, {5}, b.data(), b.size() * 2},
        {"a.bf16", DType::BF16, {2, 2, 2}, c.data(), c.size() * 2},
        {"scalar", DType::F32, {}, &scalar, 4},
        {"empty", DType::F32, {0, 4}, nullptr, 0},
    };
  }
};

void expect_same(const SafetensorsStore& s, const std::vector<TensorToWrite>& want) {
  ASSERT_EQ(s.tensors().size(), want.size());
  for (size_t i = 1; i < s.tensors().size(); ++i) EXPECT_LT(s.tensors()[i - 1].name, s.tensors()[i].name);
  size_t total = 0;
  for (const TensorToWrite& w : want) {
    const TensorInfo* t = s.find(w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->dtype, w.dtype) << w.name;
    EXPECT_EQ(t->shape, w.shape) << w.name;
    ASSERT_EQ(t->bytes, w.bytes) << w.name;
    if (w.bytes) {
      EXPECT_EQ(std::memcmp(t->data, w.data, w.bytes), 0) << w.name;
    }
    total += w.bytes;
  }
  EXPECT_EQ(s.total_bytes(), total);
  EXPECT_EQ(s.find("not.there"), nullptr);
}

TEST(Safetensors, RoundTripSingleFile) {
  TempDir dir;
  Fixture fx;
  const std::string path = dir.file("m.safetensors");
  ASSERT_TRUE(write_safetensors(path, fx.tensors, {{"format", "pt"}, {"note", "x y"}}).is_ok());
  // Header length is padded so the data section starts 8-byte aligned.
  auto raw = MappedFile::open(path);
  ASSERT_TRUE(raw.is_ok());
  uint64_t hlen = 0;
  std::memcpy(&hlen, raw->data(), 8);
  EXPECT_EQ((8 + hlen) % 8, 0u);
  auto s = SafetensorsStore::open_file(path);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  expect_same(*s, fx.tensors);
  EXPECT_EQ(s->metadata().at("note"), "x y");
  EXPECT_EQ(s->find("z.weight")->file, path);
  EXPECT_FLOAT_EQ(load_as_f32(s->find("a.bf16")->data, DType::BF16, 3), -4.5f);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Safetensors, FillCallbackStreamsTensorBytes) {
  TempDir dir;
  const size_t n = (size_t(9) << 20) + 3;  // over two fill chunks, odd tail
  TensorToWrite t{"big", DType::BF16, {int64_t(n)}, nullptr, n * 2};
  t.fill = [](size_t off, size_t len, void* dst) {
    for (size_t i = 0; i < len; ++i) static_cast<uint8_t*>(dst)[i] = uint8_t((off + i) * 7);
  };
  ASSERT_TRUE(write_safetensors(dir.file("big.safetensors"), {t}).is_ok());
  auto s = SafetensorsStore::open_file(dir.file("big.safetensors"));
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  const uint8_t* p = static_cast<const uint8_t*>(s->find("big")->data);
  for (size_t i : {size_t(0), size_t(1) << 22, (size_t(4) << 20) + 1, n * 2 - 1}) EXPECT_EQ(p[i], uint8_t(i * 7)) << i;
}

TEST(Safetensors, WriterRejectsBadTensors) {
  TempDir dir;
  float v[2] = {1, 2};
  auto bad_bytes = write_safetensors(dir.file("x.safetensors"), {{"w", DType::F32, {3}, v, 8}});
  ASSERT_FALSE(bad_bytes.is_ok());
  EXPECT_NE(bad_bytes.message().find("'w'"), std::string::npos);
  auto dup = write_safetensors(dir.file("x.safetensors"), {{"w", DType::F32, {2}, v, 8}, {"w", DType::F32, {2}, v, 8}});
  ASSERT_FALSE(dup.is_ok());
  EXPECT_NE(dup.message().find("duplicate"), std::string::npos);
  EXPECT_FALSE(write_safetensors_sharded(dir.file("d"), {{"w", DType::F32, {2}, v, 8}}, 0).is_ok());
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.safetensors")));
  auto unwritable = write_safetensors(dir.file("no/such/dir/x.safetensors"), {{"w", DType::F32, {2}, v, 8}});
  ASSERT_FALSE(unwritable.is_ok());
  EXPECT_NE(unwritable.message().find("no/such/dir"), std::string::npos) << unwritable.message();
}

TEST(Safetensors, RoundTripSharded) {
  TempDir dir;
  Fixture fx;
  // 24 + 10 + 16 + 4 + 0 bytes with at most 26 per shard: [z.weight], [m.half, a.bf16], [scalar, empty].
  ASSERT_TRUE(write_safetensors_sharded(dir.path(), fx.tensors, 26).is_ok());
  for (const char* f : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                        "model-00003-of-00003.safetensors", "model.safetensors.index.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.file(f))) << f;
  }
  auto s = SafetensorsStore::open_dir(dir.path());
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  expect_same(*s, fx.tensors);
  EXPECT_EQ(s->find("a.bf16")->file, dir.file("model-00002-of-00003.safetensors"));
  auto index = read_text_file(dir.file("model.safetensors.index.json"));
  ASSERT_TRUE(index.is_ok());
  EXPECT_NE(index->find("\"total_size\": 54"), std::string::npos) << *index;

  // Rewriting the same directory as one shard drops the stale index.
  ASSERT_TRUE(write_safetensors_sharded(dir.path(), fx.tensors, 1 << 20).is_ok());
  EXPECT_FALSE(std::filesystem::exists(dir.file("model.safetensors.index.json")));
  auto one = SafetensorsStore::open_dir(dir.path());
  ASSERT_TRUE(one.is_ok()) << one.status().message();
  expect_same(*one, fx.tensors);
}

}  // namespace
}  // namespace tern
