#include "compress/sparse_checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "compress/checkpoint_writer.h"
#include "core/mapped_file.h"
#include "formats/quant/quant_config.h"
#include "formats/safetensors.h"

namespace tern {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A decoder linear's weight [out, in] (the MoE router stays dense: it is tiny and read as a dense matrix).
bool is_sparse_candidate(const TensorInfo& t) {
  return t.shape.size() == 2 && dtype_is_float(t.dtype) && !t.stored_transposed && t.name.rfind("model.layers.", 0) == 0 &&
         ends_with(t.name, ".weight") && !ends_with(t.name, ".mlp.gate.weight");
}

bool nonzero(const TensorInfo& t, size_t i) { return load_as_f32(t.data, t.dtype, i) != 0.f; }

// The first group of 4 along a row with more than 2 non-zeros, as "row R, columns C..C+3"; empty if 2:4.
std::string first_non_24(const TensorInfo& t) {
  const int64_t rows = t.shape[0], cols = t.shape[1];
  if (cols % 4) return fmt::format("{} columns are not a multiple of 4", cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; c += 4) {
      int n = 0;
      for (int q = 0; q < 4; ++q) n += nonzero(t, size_t(r * cols + c + q));
      if (n > 2) return fmt::format("row {}, columns {}..{} hold {} non-zeros", r, c, c + 3, n);
    }
  }
  return {};
}

struct Buffers {
  std::deque<std::vector<uint8_t>> owned;
  std::vector<uint8_t>& make(size_t bytes) { return owned.emplace_back(bytes); }
};

// One linear in the sparse layout: appends its tensors to `out` (data owned by `buf`).
void sparsify_linear(const TensorInfo& t, bool two_four, bool int8, Buffers& buf, std::vector<TensorToWrite>& out,
                     SparsifyReport& rep) {
  const int64_t rows = t.shape[0], cols = t.shape[1], stride = (cols + 7) / 8;
  const std::string module = t.name.substr(0, t.name.size() - std::string(".weight").size());
  std::vector<uint8_t>& mask = buf.make(size_t(rows * stride));
  std::vector<int64_t> offsets(static_cast<size_t>(rows));
  std::vector<float> kept;  // the kept values in order, f32
  kept.reserve(size_t(rows * cols / 2));
  std::vector<float> scales(static_cast<size_t>(rows), 1.f);
  int64_t zeros = 0;
  for (int64_t r = 0; r < rows; ++r) {
    offsets[size_t(r)] = int64_t(kept.size());
    uint8_t* m = mask.data() + r * stride;
    const size_t row0 = size_t(r * cols);
    for (int64_t c = 0; c < cols; ++c) {
      if (nonzero(t, row0 + size_t(c))) m[c >> 3] |= uint8_t(1u << (c & 7));
      else ++zeros;
    }
    if (two_four) {  // a group with fewer than 2 non-zeros keeps zeros to make 2 (its first free columns)
      for (int64_t c = 0; c < cols; c += 4) {
        int n = 0;
        for (int q = 0; q < 4; ++q) n += m[(c + q) >> 3] >> ((c + q) & 7) & 1;
        for (int q = 0; q < 4 && n < 2; ++q) {
          if (m[(c + q) >> 3] >> ((c + q) & 7) & 1) continue;
          m[(c + q) >> 3] |= uint8_t(1u << ((c + q) & 7));
          ++n;
        }
      }
    }
    float amax = 0.f;
    for (int64_t c = 0; c < cols; ++c) {
      if (!(m[c >> 3] >> (c & 7) & 1)) continue;
      const float v = load_as_f32(t.data, t.dtype, row0 + size_t(c));
      kept.push_back(v);
      amax = std::max(amax, std::fabs(v));
    }
    if (int8 && amax > 0.f) scales[size_t(r)] = amax / 127.f;
  }
  const size_t nnz = kept.size();
  std::vector<uint8_t>& values = buf.make(nnz * (int8 ? 1 : 2));
  for (int64_t r = 0; r < rows; ++r) {
    const size_t end = r + 1 < rows ? size_t(offsets[size_t(r + 1)]) : nnz;
    for (size_t i = size_t(offsets[size_t(r)]); i < end; ++i) {
      if (int8) {
        const float q = std::nearbyint(kept[i] / scales[size_t(r)]);
        values[i] = uint8_t(int8_t(std::clamp(q, -127.f, 127.f)));
      } else {
        const uint16_t b = f32_to_bf16(kept[i]);  // exact for bf16 input (kept[i] is its widened value)
        std::memcpy(values.data() + 2 * i, &b, 2);
      }
    }
  }
  std::vector<uint8_t>& shape = buf.make(16);
  const int64_t dims[2] = {rows, cols};
  std::memcpy(shape.data(), dims, 16);
  out.push_back({module + ".shape", DType::I64, two_four ? std::vector<int64_t>{2, 1} : std::vector<int64_t>{2},
                 shape.data(), 16});
  out.push_back({module + ".compressed", int8 ? DType::I8 : DType::BF16,
                 two_four ? std::vector<int64_t>{rows, cols / 2} : std::vector<int64_t>{int64_t(nnz)}, values.data(),
                 values.size()});
  out.push_back({module + ".bitmask", DType::U8, {rows, stride}, mask.data(), mask.size()});
  size_t bytes = values.size() + mask.size();
  if (!two_four) {
    std::vector<uint8_t>& off = buf.make(size_t(rows) * 8);
    std::memcpy(off.data(), offsets.data(), off.size());
    out.push_back({module + ".row_offsets", DType::I64, {rows}, off.data(), off.size()});
    bytes += off.size();
  }
  if (int8) {
    std::vector<uint8_t>& s = buf.make(size_t(rows) * 4);
    std::memcpy(s.data(), scales.data(), s.size());
    out.push_back({module + ".weight_scale", DType::F32, {rows, 1}, s.data(), s.size()});
    bytes += s.size();
  }
  rep.linears += 1;
  rep.dense_bytes += t.bytes;
  rep.sparse_bytes += bytes;
  rep.sparsity += double(zeros);  // summed here, divided by the weight count at the end
}

// untie: the LM head is stored sparse as its own module, so tie_word_embeddings must not point it at
// the embedding.
Status write_config(const std::string& in_dir, const std::string& out_dir, const QuantConfig& q, bool untie) {
  const std::string src = in_dir + "/config.json";
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(src));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::error(src + ": not a JSON object");
  j["quantization_config"] = quant_config_to_json(q);
  if (untie) j["tie_word_embeddings"] = false;
  std::ofstream out(out_dir + "/config.json");
  out << j.dump(2) << "\n";
  if (!out) return Status::error(out_dir + "/config.json: write failed");
  return Status::ok();
}

}  // namespace

Result<SparsifyReport> write_sparse_checkpoint(const SparsifyOptions& o) {
  TERN_ASSIGN_OR_RETURN(QuantConfig in_cfg, load_quant_config(o.in_dir));
  if (in_cfg.quantized() || in_cfg.sparsity.enabled())
    return Status::error(o.in_dir + "/config.json: quantization_config: the checkpoint is already quantized or sparse "
                                    "(tern sparsify reads a dense checkpoint with zeros)");
  TERN_ASSIGN_OR_RETURN(SafetensorsStore store, SafetensorsStore::open_dir(o.in_dir));
  const TensorInfo* head = nullptr;
  if (o.lm_head) {
    head = store.find("lm_head.weight");
    if (!head)
      return Status::error(store.source() + ": --sparse-lm-head: no lm_head.weight (the head is tied to the embedding); "
                                            "tern prune --prune-lm-head writes a pruned copy of it");
    if (head->shape.size() != 2 || !dtype_is_float(head->dtype) || head->stored_transposed)
      return Status::error(store.source() + ": --sparse-lm-head: lm_head.weight is not a float [vocab, hidden] matrix");
  }
  auto sparse = [&](const TensorInfo& t) { return is_sparse_candidate(t) || &t == head; };
  std::vector<const TensorInfo*> linears;
  for (const TensorInfo& t : store.tensors())
    if (sparse(t)) linears.push_back(&t);
  if (linears.empty()) return Status::error(store.source() + ": no decoder linear weights (model.layers.*.weight) to store sparse");

  SparsifyReport rep;
  bool two_four = o.structure != SparseStructure::Unstructured;
  for (const TensorInfo* t : linears) {
    if (!two_four) break;
    const std::string why = first_non_24(*t);
    if (why.empty()) continue;
    if (o.structure == SparseStructure::TwoFour)
      return Status::error(fmt::format("{}: tensor '{}' is not 2:4 sparse: {}", t->file, t->name, why));
    two_four = false;  // Auto: unstructured
  }
  rep.structure = two_four ? SparseStructure::TwoFour : SparseStructure::Unstructured;

  Buffers buf;
  std::vector<TensorToWrite> tensors;
  int64_t weights = 0;
  for (const TensorInfo& t : store.tensors()) {
    if (sparse(t)) {
      sparsify_linear(t, two_four, o.int8, buf, tensors, rep);
      weights += t.numel();
    } else {
      tensors.push_back({t.name, t.dtype, t.shape, t.data, t.bytes});
    }
  }
  rep.sparsity /= double(weights);

  QuantConfig q;
  if (o.int8) {
    q.method = QuantMethod::CompressedTensors;
    q.bits = 8, q.group = 0, q.symmetric = true;
    q.ct_format = "int-quantized";
    if (!head) q.ignore = {"lm_head"};
  }
  q.sparsity.format = two_four ? SparseFormat::Bitmask24 : SparseFormat::Bitmask;
  q.sparsity.targets = {"Linear"};
  if (!head) q.sparsity.ignore = {"lm_head"};
  q.sparsity.global_sparsity = rep.sparsity;

  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) return Status::error(fmt::format("{}: cannot create: {}", o.out_dir, ec.message()));
  TERN_RETURN_IF_ERROR(write_safetensors_sharded(o.out_dir, tensors, o.max_shard_bytes));
  TERN_RETURN_IF_ERROR(write_config(o.in_dir, o.out_dir, q, /*untie=*/head != nullptr));
  TERN_RETURN_IF_ERROR(copy_tokenizer_files(o.in_dir, o.out_dir));
  return rep;
}

}  // namespace tern
