#include <cstring>

#include "core/dtype.h"
#include "op_test_util.h"
#include "ops/embedding.h"

namespace tern::test {
namespace {

// A [vocab, d] table in `dtype` with random values plus special bit patterns (subnormal, ±0,
// ±inf, largest finite) in row 0.
std::vector<uint8_t> make_table(DType dtype, int64_t vocab, int64_t d) {
  const auto vals = random_floats(size_t(vocab * d), -4.f, 4.f, uint32_t(d));
  std::vector<uint8_t> bytes(size_t(vocab * d) * dtype_size(dtype));
  for (size_t i = 0; i < vals.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &vals[i], 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(vals[i]) : f32_to_f16(vals[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  if (dtype != DType::F32) {
    const uint16_t specials[] = {0x0001, 0x8000, 0x0000, 0x7c00, 0xfc00, 0x7bff, 0x03ff, 0x7f80};
    for (size_t i = 0; i < std::size(specials) && i < size_t(d); ++i) std::memcpy(bytes.data() + 2 * i, &specials[i], 2);
  }
  return bytes;
}

using EmbeddingTest = IsaThreads;

TEST_P(EmbeddingTest, RowsConvertExactlyForEveryDtype) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    for (auto [vocab, d, m] : {std::tuple<int64_t, int64_t, int64_t>{50, 64, 1}, {30, 13, 9}, {100, 4096, 64}}) {
      const auto bytes = make_table(dtype, vocab, d);
      WeightMatrix table{bytes.data(), dtype, vocab, d};
      std::vector<int32_t> ids(static_cast<size_t>(m));
      for (int64_t i = 0; i < m; ++i) ids[size_t(i)] = int32_t((i * 7 + 3) % vocab);
      ids[0] = 0;  // the row with the special values
      std::vector<float> out(size_t(m * d), NAN);
      embedding_lookup(*ctx, table, ids.data(), m, out.data());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < d; ++j) {
          const float want = load_as_f32(table.row(ids[size_t(i)]), dtype, size_t(j));
          const float got = out[size_t(i * d + j)];
          ASSERT_EQ(0, std::memcmp(&got, &want, 4)) << dtype_name(dtype) << " row " << i << " col " << j;
        }
    }
  }
}

TERN_INSTANTIATE_ISA_THREADS(EmbeddingTest);

}  // namespace
}  // namespace tern::test
