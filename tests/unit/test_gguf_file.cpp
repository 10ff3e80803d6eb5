// GGUF reader / writer: every metadata type round-trips; malformed files (truncated at every byte,
// absurd counts, bad offsets, overlapping tensors, unknown types) are one-line errors; a fuzz loop of
// random byte edits never crashes the parser.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "formats/gguf/gguf_file.h"
#include "formats/gguf/gguf_writer.h"
#include "test_support.h"

namespace tern {
namespace {

// Hand-assembled GGUF bytes, for files the writer would never produce.
struct Builder {
  std::vector<uint8_t> b;
  template <typename T>
  Builder& put(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  Builder& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Builder& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put<uint32_t>(version).put<uint64_t>(tensors).put<uint64_t>(kvs);
  }
  // One tensor info: 1-D of n f32 values at `offset`.
  Builder& tensor(const std::string& name, uint64_t n, uint64_t offset, uint32_t type = 0) {
    return str(name).put<uint32_t>(1).put<uint64_t>(n).put<uint32_t>(type).put<uint64_t>(offset);
  }
  Builder& pad_to(size_t align) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
  Builder& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

Result<GgufFile> parse(const std::vector<uint8_t>& b) { return GgufFile::parse(b.data(), b.size(), "t.gguf"); }

std::vector<uint8_t> valid_file() {
  Builder x;
  x.header(2, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(32);
  x.tensor("a", 8, 0).tensor("b", 4, 32).pad_to(32).zeros(48);
  return x.b;
}

TEST(GgufFile, WriterRoundTripsEveryValueType) {
  test::TempDir dir;
  std::vector<std::pair<std::string, GgufValue>> kv;
  auto scalar = [](GgufValueType t, int64_t i) {
    GgufValue v;
    v.type = t;
    v.i = i;
    return v;
  };
  kv.emplace_back("u8", scalar(GgufValueType::U8, 200));
  kv.emplace_back("i8", scalar(GgufValueType::I8, -100));
  kv.emplace_back("u16", scalar(GgufValueType::U16, 60000));
  kv.emplace_back("i16", scalar(GgufValueType::I16, -30000));
  kv.emplace_back("u32", GgufValue::make_u32(4000000000u));
  kv.emplace_back("i32", GgufValue::make_i32(-2000000000));
  kv.emplace_back("u64", scalar(GgufValueType::U64, int64_t(1) << 40));
  kv.emplace_back("i64", scalar(GgufValueType::I64, -(int64_t(1) << 40)));
  kv.emplace_back("f32", GgufValue::make_f32(1.5f));
  GgufValue f64;
  f64.type = GgufValueType::F64;
  f64.f = 2.25;
  kv.emplace_back("f64", f64);
  kv.emplace_back("bool", GgufValue::make_bool(true));
  kv.emplace_back("str", GgufValue::make_string("héllo"));
  kv.emplace_back("strs", GgufValue::make_strings({"a", "", "ccc"}));
  kv.emplace_back("ints", GgufValue::make_ints(GgufValueType::I32, {1, -2, 3}));
  kv.emplace_back("floats", GgufValue::make_floats({0.5, -1.0}));
  std::vector<float> w(64);
  for (int i = 0; i < 64; ++i) w[size_t(i)] = float(i);
  std::vector<GgufTensorToWrite> t = {
      {"w", GgufType::F32, {2, 32}, [&](uint8_t* d) { std::memcpy(d, w.data(), 256); }},
      {"q", GgufType::Q8_0, {1, 64}, [&](uint8_t* d) { gguf_quantize_row(GgufType::Q8_0, w.data(), d, 64); }}};
  ASSERT_TRUE(write_gguf(dir.file("x.gguf"), kv, t).is_ok());
  auto g = GgufFile::open(dir.file("x.gguf"));
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->find("u8")->i, 200);
  EXPECT_EQ(g->find("i8")->i, -100);
  EXPECT_EQ(g->find("u16")->i, 60000);
  EXPECT_EQ(g->find("i16")->i, -30000);
  EXPECT_EQ(g->find("u32")->i, 4000000000);
  EXPECT_EQ(g->find("i32")->i, -2000000000);
  EXPECT_EQ(g->find("u64")->i, int64_t(1) << 40);
  EXPECT_EQ(g->find("i64")->i, -(int64_t(1) << 40));
  EXPECT_EQ(g->find("f32")->f, 1.5);
  EXPECT_EQ(g->find("f64")->f, 2.25);
  EXPECT_EQ(g->find("bool")->i, 1);
  EXPECT_EQ(*g->get_string("str"), "héllo");
  EXPECT_EQ(g->find("strs")->strings, (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(g->find("ints")->ints, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(g->find("floats")->floats, (std::vector<double>{0.5, -1.0}));
  const GgufTensor* tw = g->tensor("w");
  ASSERT_NE(tw, nullptr);
  EXPECT_EQ(tw->shape(), (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(static_cast<const float*>(tw->data)[33], 33.f);
  EXPECT_EQ(g->tensor("q")->bytes, 68u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(g->tensor("q")->data) % 32, 0u);
  EXPECT_FALSE(g->get_int("u8", 0, 100).is_ok());  // out of the caller's range
  EXPECT_FALSE(g->get_string("u8").is_ok());
  EXPECT_FALSE(g->get_string("missing").is_ok());
}

TEST(GgufFile, HandBuiltFileParses) {
  auto g = parse(valid_file());
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  EXPECT_EQ(g->tensors().size(), 2u);
  EXPECT_EQ(g->alignment(), 32u);
  EXPECT_EQ(g->data_offset() % 32, 0u);
  // v2 has the same little-endian layout.
  auto v2 = valid_file();
  v2[4] = 2;
  EXPECT_TRUE(parse(v2).is_ok());
}

void expect_error(const std::vector<uint8_t>& b, const std::string& needle) {
  auto g = parse(b);
  ASSERT_FALSE(g.is_ok()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(g.status().message().find(needle), std::string::npos) << g.status().message();
  EXPECT_EQ(g.status().message().find('\n'), std::string::npos) << "one line";
  EXPECT_EQ(g.status().message().rfind("t.gguf: ", 0), 0u) << "names the file";
}

TEST(GgufFile, TruncatedAtEveryByteIsAnError) {
  const auto full = valid_file();
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + long(n));
    EXPECT_FALSE(parse(cut).is_ok()) << "prefix of " << n << " bytes";
  }
}

TEST(GgufFile, MalformedFilesAreOneLineErrors) {
  expect_error({'G', 'G', 'M', 'L', 3, 0, 0, 0}, "not a GGUF file");
  expect_error(Builder().header(0, 0, 1).b, "version 1");
  expect_error(Builder().header(0, 0, 0x03000000).b, "big-endian");
  expect_error(Builder().header(uint64_t(1) << 60, 0).b, "tensor count");
  expect_error(Builder().header(0, uint64_t(1) << 60).b, "metadata count");
  expect_error(Builder().header(0, 1).str("k").put<uint32_t>(99).put<uint32_t>(0).b, "value type 99");
  expect_error(Builder().header(0, 1).str("k").put<uint32_t>(8).put<uint64_t>(1000).b, "exceeds the file");
  expect_error(Builder().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(uint64_t(1) << 40).b,
               "array of");
  expect_error(Builder().header(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2).b, "bool value 2");
  expect_error(Builder().header(0, 2).str("k").put<uint32_t>(4).put<uint32_t>(1).str("k").put<uint32_t>(4).put<uint32_t>(1).b,
               "duplicate metadata key");
  expect_error(Builder().header(0, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(24).b, "power of two");
  Builder x;
  x.header(1, 0).tensor("t", 8, 0, 20).pad_to(32).zeros(64);
  expect_error(x.b, "ggml type 20");
  expect_error(Builder().header(1, 0).tensor("t", 8, 16).pad_to(32).zeros(64).b, "not a multiple of the alignment");
  expect_error(Builder().header(1, 0).tensor("t", 8, 64).pad_to(32).zeros(64).b, "outside the data section");
  expect_error(Builder().header(1, 0).tensor("t", 8, uint64_t(-32)).pad_to(32).zeros(64).b, "outside the data section");
  expect_error(Builder().header(2, 0).tensor("a", 16, 0).tensor("b", 8, 32).pad_to(32).zeros(96).b, "overlap");
  expect_error(Builder().header(2, 0).tensor("a", 8, 0).tensor("a", 8, 32).pad_to(32).zeros(96).b, "duplicate tensor");
  expect_error(Builder().header(1, 0).tensor("t", 0, 0).pad_to(32).b, "dimension 0");
  expect_error(Builder().header(1, 0).tensor("t", 16, 0, 8).pad_to(32).zeros(64).b, "block size 32");
  expect_error(Builder().header(1, 0).tensor("t", 48, 0, 2).pad_to(32).zeros(64).b, "Q4_0 block size 32");
  expect_error(Builder().header(1, 0).str("t").put<uint32_t>(5).zeros(64).b, "5 dimensions");
}

TEST(GgufFile, FuzzedBytesNeverCrash) {
  const auto base = valid_file();
  std::mt19937 rng(1234);
  int parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = base;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % b.size();
      switch (rng() % 3) {
        case 0: b[at] = uint8_t(rng()); break;
        case 1: b[at] ^= uint8_t(1u << (rng() % 8)); break;
        default: b.resize(at); break;
      }
      if (b.empty()) break;
    }
    auto g = parse(b);
    if (!g.is_ok()) continue;
    ++parsed;
    for (const auto& t : g->tensors()) {  // whatever parsed must lie inside the buffer
      const auto* p = static_cast<const uint8_t*>(t.data);
      ASSERT_GE(p, b.data());
      ASSERT_LE(p + t.bytes, b.data() + b.size());
    }
  }
  EXPECT_GT(parsed, 0);  // some edits (e.g. in padding or tensor data) leave a valid file
}

}  // namespace
}  // namespace tern
