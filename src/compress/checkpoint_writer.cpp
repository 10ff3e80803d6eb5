#include "compress/checkpoint_writer.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "compress/linear_sites.h"
#include "formats/quant/checkpoint_layouts.h"
#include "formats/quant/module_targets.h"
#include "core/mapped_file.h"
#include "formats/json_util.h"

namespace tern {

namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

Status write_config(const Model& model, const QuantConfig& layout, const std::string& out_dir) {
  const std::string src = model.dir() + "/config.json";
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(src));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::error(src + ": not a JSON object");
  j["quantization_config"] = quant_config_to_json(layout);
  std::ofstream out(out_dir + "/config.json");
  out << j.dump(2) << "\n";
  if (!out) return Status::error(out_dir + "/config.json: write failed");
  return Status::ok();
}

std::vector<float> to_f32(const TensorInfo& t) {
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = load_as_f32(t.data, t.dtype, i);
  return v;
}

OwnedTensor vector_as(const TensorInfo& like, const std::vector<float>& v) {
  OwnedTensor o{like.name, like.dtype, like.shape, std::vector<uint8_t>(like.bytes)};
  for (size_t i = 0; i < v.size(); ++i) {
    switch (like.dtype) {
      case DType::F16: reinterpret_cast<uint16_t*>(o.bytes.data())[i] = f32_to_f16(v[i]); break;
      case DType::BF16: reinterpret_cast<uint16_t*>(o.bytes.data())[i] = f32_to_bf16(v[i]); break;
      default: reinterpret_cast<float*>(o.bytes.data())[i] = v[i]; break;
    }
  }
  return o;
}

}  // namespace

Status copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "chat_template.jinja", "tokenizer.model"}) {
    std::error_code ec;
    if (!fs::exists(fs::path(from) / name)) continue;
    fs::copy_file(fs::path(from) / name, fs::path(to) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::error(fmt::format("copying {} to {}: {}", name, to, ec.message()));
    // Source files may be read-only (a shared model store); the copy belongs to the user.
    fs::permissions(fs::path(to) / name, fs::perms::owner_write, fs::perm_options::add, ec);
  }
  return Status::ok();
}

Result<std::vector<QuantizableModule>> quantizable_modules(const Model& model, const QuantConfig& layout) {
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model));
  std::vector<QuantizableModule> out;
  // Decoder linears as the layout says (a layout without config groups: every one it does not ignore,
  // whatever the architecture's prefix); the embedding only when a mixed-precision group names it.
  for (const auto& m : ml.modules) {
    if (layout.schemes.empty() ? !layout.ignores(m.name) : layout.targets(m.name)) out.push_back({m.name, m.conv1d});
  }
  if (!layout.schemes.empty() && layout.targets(kEmbedModule) && model.store().find(std::string(kEmbedModule) + ".weight"))
    out.push_back({kEmbedModule, false});
  return out;
}

Status write_quantized_checkpoint(const Model& model, const QuantConfig& layout, const LinearQuantizer& quantize,
                                  const CheckpointWriteOptions& options, const ProgressFn& progress) {
  if (model.quant_config().quantized()) return Status::error(model.dir() + ": the input checkpoint is already quantized");
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) return Status::error(fmt::format("{}: cannot create: {}", options.out_dir, ec.message()));
  TERN_ASSIGN_OR_RETURN(const std::vector<QuantizableModule> modules, quantizable_modules(model, layout));
  std::map<std::string, bool> is_quantized;  // tensor name -> stored [in, out] (Conv1D)
  for (const auto& m : modules) is_quantized[m.name + ".weight"] = m.conv1d;

  // Quantized tensors are produced up front (they are ~1/4 of the dense size); the rest is streamed
  // from the source mmap by the writer.
  std::vector<OwnedTensor> owned;
  owned.reserve(modules.size() * 4 + 64);
  std::vector<TensorToWrite> tensors;
  std::vector<std::pair<size_t, size_t>> owned_ranges;  // per store tensor: [begin, end) into owned
  int64_t done = 0;
  for (const auto& t : model.store().tensors()) {
    const size_t begin = owned.size();
    if (is_quantized.count(t.name)) {
      const std::string module = t.name.substr(0, t.name.size() - 7);
      if (t.shape.size() != 2) return Status::error(fmt::format("{}: not a matrix", t.name));
      std::vector<float> w = to_f32(t);
      int64_t rows = t.shape[0], cols = t.shape[1];
      if (is_quantized[t.name]) {  // Conv1D [in, out]: quantized (and written) as the linear [out, in]
        std::vector<float> wt(w.size());
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j) wt[size_t(j * rows + i)] = w[size_t(i * cols + j)];
        w = std::move(wt);
        std::swap(rows, cols);
      }
      TERN_ASSIGN_OR_RETURN(QuantizedLinear ql, quantize(module, w.data(), rows, cols));
      TERN_ASSIGN_OR_RETURN(std::vector<OwnedTensor> packed, pack_checkpoint_linear(ql, layout, module));
      for (auto& p : packed) owned.push_back(std::move(p));
      if (progress) progress(++done, int64_t(modules.size()));
    } else if (options.vectors && options.vectors->count(t.name)) {
      const auto& v = options.vectors->at(t.name);
      if (int64_t(v.size()) != t.numel()) return Status::error(fmt::format("{}: replacement has {} values, tensor {}", t.name, v.size(), t.numel()));
      owned.push_back(vector_as(t, v));
    }
    owned_ranges.emplace_back(begin, owned.size());
  }
  size_t i = 0;
  for (const auto& t : model.store().tensors()) {
    const auto [b, e] = owned_ranges[i++];
    if (b == e) {
      tensors.push_back(TensorToWrite{t.name, t.dtype, t.shape, t.data, t.bytes});
      continue;
    }
    for (size_t k = b; k < e; ++k)
      tensors.push_back(TensorToWrite{owned[k].name, owned[k].dtype, owned[k].shape, owned[k].bytes.data(), owned[k].bytes.size()});
  }
  TERN_RETURN_IF_ERROR(write_safetensors_sharded(options.out_dir, tensors, options.max_shard_bytes));
  TERN_RETURN_IF_ERROR(write_config(model, layout, options.out_dir));
  return copy_tokenizer_files(model.dir(), options.out_dir);
}

}  // namespace tern
