#include "compress/prune_writer.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "compress/checkpoint_writer.h"
#include "core/dtype.h"
#include "core/mapped_file.h"

namespace tern {

namespace {

// v [n] f32 as `dtype` bytes (f32, f16 or bf16).
Result<std::vector<uint8_t>> encode(const std::vector<float>& v, DType dtype, const std::string& name) {
  std::vector<uint8_t> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (dtype) {
      case DType::BF16: reinterpret_cast<uint16_t*>(out.data())[i] = f32_to_bf16(v[i]); break;
      case DType::F16: reinterpret_cast<uint16_t*>(out.data())[i] = f32_to_f16(v[i]); break;
      case DType::F32: reinterpret_cast<float*>(out.data())[i] = v[i]; break;
      default: return Status::error(fmt::format("{}: stored as {}, not a dense float type", name, dtype_name(dtype)));
    }
  }
  return out;
}

}  // namespace

Result<nlohmann::ordered_json> read_config_json(const Model& model) {
  const std::string src = model.dir() + "/config.json";
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(src));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::error(src + ": not a JSON object");
  return j;
}

Status write_dense_checkpoint(const Model& model, const std::vector<TensorToWrite>& tensors,
                              const nlohmann::ordered_json& config, const std::string& out_dir, size_t max_shard_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Status::error(fmt::format("{}: cannot create: {}", out_dir, ec.message()));
  TERN_RETURN_IF_ERROR(write_safetensors_sharded(out_dir, tensors, max_shard_bytes));
  std::ofstream out(out_dir + "/config.json");
  out << config.dump(2) << "\n";
  if (!out) return Status::error(out_dir + "/config.json: write failed");
  out.close();
  return copy_tokenizer_files(model.dir(), out_dir);
}

Status write_pruned_checkpoint(const Model& model, const PrunedModel& pm, const std::string& out_dir) {
  if (model.gguf()) return Status::error(model.dir() + ": prune writes safetensors checkpoints from safetensors ones");
  std::vector<std::vector<uint8_t>> owned;
  owned.reserve(pm.modules.size());
  std::vector<TensorToWrite> tensors;
  size_t replaced = 0;
  for (const auto& t : model.store().tensors()) {
    const std::string suffix = ".weight";
    const bool is_weight = t.name.size() > suffix.size() && t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0;
    auto it = is_weight ? pm.modules.find(t.name.substr(0, t.name.size() - suffix.size())) : pm.modules.end();
    if (it == pm.modules.end()) {
      tensors.push_back(TensorToWrite{t.name, t.dtype, t.shape, t.data, t.bytes});
      continue;
    }
    const PrunedModule& m = it->second;
    // A Conv1D module is stored [in, out]: written back transposed.
    const std::vector<int64_t> want = m.conv1d ? std::vector<int64_t>{m.cols, m.rows} : std::vector<int64_t>{m.rows, m.cols};
    if (t.shape != want) return Status::error(fmt::format("{}: pruned shape does not match the stored tensor", t.name));
    std::vector<float> v = m.w;
    if (m.conv1d) {
      for (int64_t r = 0; r < m.rows; ++r)
        for (int64_t c = 0; c < m.cols; ++c) v[size_t(c * m.rows + r)] = m.w[size_t(r * m.cols + c)];
    }
    TERN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, encode(v, t.dtype, t.name));
    owned.push_back(std::move(bytes));
    tensors.push_back(TensorToWrite{t.name, t.dtype, t.shape, owned.back().data(), owned.back().size()});
    ++replaced;
  }
  TERN_ASSIGN_OR_RETURN(nlohmann::ordered_json config, read_config_json(model));
  auto head = pm.modules.find("lm_head");
  if (head != pm.modules.end() && model.store().find("lm_head.weight") == nullptr) {
    // A head tied to the embedding: the pruned head is written as its own tensor (in the embedding's
    // dtype) and untied, so the embedding rows looked up stay dense.
    const WeightMatrix& h = model.weights().lm_head;
    TERN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, encode(head->second.w, h.dtype, "lm_head.weight"));
    owned.push_back(std::move(bytes));
    tensors.push_back(TensorToWrite{"lm_head.weight", h.dtype, {head->second.rows, head->second.cols},
                                    owned.back().data(), owned.back().size()});
    config["tie_word_embeddings"] = false;
    ++replaced;
  }
  if (replaced != pm.modules.size()) return Status::error("prune: a pruned module has no stored weight tensor");
  return write_dense_checkpoint(model, tensors, config, out_dir);
}

}  // namespace tern
