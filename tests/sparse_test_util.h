// Shared by the sparse-format tests: a magnitude-pruned dense copy of a checkpoint (the input
// tern sparsify reads), written without tern prune so these tests stand alone.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "compress/checkpoint_writer.h"
#include "formats/safetensors.h"

namespace tern::test {

enum class PrunePattern { Half, TwoFour };

// Every model.layers.*.weight matrix (not the MoE router) pruned by magnitude per row (Half: the
// smallest half of each row; TwoFour: the 2 smallest of every 4) and stored bf16; other tensors as stored.
inline void write_pruned_dense(const std::string& in_dir, const std::string& out_dir, PrunePattern pattern) {
  auto store = SafetensorsStore::open_dir(in_dir).value();
  std::vector<std::vector<uint16_t>> owned;
  owned.reserve(store.tensors().size());
  std::vector<TensorToWrite> out;
  for (const TensorInfo& t : store.tensors()) {
    const bool linear = t.shape.size() == 2 && t.name.rfind("model.layers.", 0) == 0 &&
                        t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0 &&
                        t.name.find(".mlp.gate.weight") == std::string::npos;
    if (!linear) {
      out.push_back({t.name, t.dtype, t.shape, t.data, t.bytes});
      continue;
    }
    const int64_t rows = t.shape[0], cols = t.shape[1];
    std::vector<uint16_t>& v = owned.emplace_back(size_t(rows * cols));
    std::vector<float> row(static_cast<size_t>(cols)), mag(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) row[size_t(c)] = bf16_to_f32(f32_to_bf16(load_as_f32(t.data, t.dtype, size_t(r * cols + c))));
      if (pattern == PrunePattern::Half) {
        for (int64_t c = 0; c < cols; ++c) mag[size_t(c)] = std::fabs(row[size_t(c)]);
        std::nth_element(mag.begin(), mag.begin() + cols / 2, mag.end());
        const float cut = mag[size_t(cols / 2)];
        int64_t dropped = 0;
        for (int64_t c = 0; c < cols && dropped < cols / 2; ++c)
          if (std::fabs(row[size_t(c)]) < cut) row[size_t(c)] = 0.f, ++dropped;
        for (int64_t c = 0; c < cols && dropped < cols / 2; ++c)
          if (row[size_t(c)] != 0.f && std::fabs(row[size_t(c)]) == cut) row[size_t(c)] = 0.f, ++dropped;
      } else {
        for (int64_t c = 0; c + 4 <= cols; c += 4) {
          int idx[4] = {0, 1, 2, 3};
          std::sort(idx, idx + 4, [&](int a, int b) { return std::fabs(row[size_t(c + a)]) < std::fabs(row[size_t(c + b)]); });
          row[size_t(c + idx[0])] = 0.f, row[size_t(c + idx[1])] = 0.f;
        }
      }
      for (int64_t c = 0; c < cols; ++c) v[size_t(r * cols + c)] = f32_to_bf16(row[size_t(c)]);
    }
    out.push_back({t.name, DType::BF16, t.shape, v.data(), v.size() * 2});
  }
  std::filesystem::create_directories(out_dir);
  if (!write_safetensors_sharded(out_dir, out, size_t(1) << 40).is_ok()) return;
  std::filesystem::copy_file(in_dir + "/config.json", out_dir + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  (void)copy_tokenizer_files(in_dir, out_dir);
}

}  // namespace tern::test
