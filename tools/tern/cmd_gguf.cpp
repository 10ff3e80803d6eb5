// tern gguf quantize: a Hugging Face checkpoint -> GGUF v3 in one of llama.cpp's mixes (Q4_K_M, ...) or,
// with --pure, one ggml block type (llama.cpp loads it); the same as `tern quantize --format gguf --type T`
// (export_gguf, gguf_export.h).
// tern gguf info: a GGUF file's metadata and tensors.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "cli_common.h"
#include "gguf_export.h"
#include "compress/gguf_quantize.h"

namespace tern::cli {

void export_gguf(const std::string& model_dir, const std::string& out, const std::string& type_name, bool pure,
                 bool quiet) {
  GgufMix mix = unwrap(gguf_mix_from_name(type_name));
  mix.pure = pure;
  auto model = unwrap(Model::load(model_dir));
  if (!std::filesystem::exists(model_dir + "/tokenizer.json")) {
    // tern runs such a file on token ids; llama.cpp refuses a GGUF without tokenizer.ggml.model.
    fmt::print(stderr, "[tern] note: {}/tokenizer.json is absent: the GGUF gets no tokenizer.ggml.* keys "
                       "(tern loads it, llama.cpp does not)\n", model_dir);
  }
  const auto start = std::chrono::steady_clock::now();
  auto progress = [&](size_t done, size_t total) {
    if (quiet) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta = done > 0 ? s * double(total - done) / double(done) : 0;
    fmt::print(stderr, "\r[tern] {}/{} tensors, {:.1f} s, ETA {:.0f} s   ", done, total, s, eta);
  };
  check(quantize_to_gguf(*model, out, mix, progress));
  if (quiet) return;
  // What the mix chose, read back from the written file: "Q4_K_M: 34 Q4_K, 9 Q6_K, 13 Q5_0 ...".
  const GgufFile g = unwrap(GgufFile::open(out));
  std::map<std::string, int> counts;
  for (const auto& t : g.tensors()) {
    if (t.shape().size() >= 2) ++counts[gguf_traits(t.type).name];
  }
  std::string summary;
  for (const auto& [name, n] : counts) summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, name);
  fmt::print(stderr, "\n[tern] wrote {} ({}{}: {} matrices)\n", out, mix.name, pure ? " --pure" : "", summary);
}

namespace {

struct GgufQuantizeOptions {
  std::string model, out, type = "Q4_K_M", format = "gguf";
  bool quiet = false, pure = false;
};

void info(const std::string& path) {
  const GgufFile g = unwrap(GgufFile::open(path));
  fmt::print("{}: GGUF v{}, {} metadata keys, {} tensors, alignment {}, data at {}\n", path, g.version(),
             g.metadata().size(), g.tensors().size(), g.alignment(), g.data_offset());
  for (const auto& [k, v] : g.metadata()) {
    std::string shown;
    if (v.type == GgufValueType::STRING) shown = v.s.size() > 60 ? fmt::format("\"{}...\" ({} bytes)", v.s.substr(0, 60), v.s.size()) : "\"" + v.s + "\"";
    else if (v.type == GgufValueType::ARRAY) shown = fmt::format("[{} x {}]", v.array_len, gguf_value_type_name(v.array_type));
    else if (v.is_float()) shown = fmt::format("{}", v.f);
    else shown = fmt::format("{}", v.i);
    fmt::print("  {:<45} {:<6} {}\n", k, gguf_value_type_name(v.type), shown);
  }
  for (const auto& t : g.tensors()) {
    std::string shape;
    for (int64_t d : t.shape()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    fmt::print("  {:<32} {:<5} [{}] {} bytes\n", t.name, gguf_traits(t.type).name, shape, t.bytes);
  }
}

}  // namespace

void register_gguf(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("gguf", "GGUF files: quantize a checkpoint to GGUF, show a GGUF file");
  cmd->require_subcommand(1);
  auto o = std::make_shared<GgufQuantizeOptions>();
  CLI::App* q = cmd->add_subcommand("quantize", "write a checkpoint as GGUF v3 in one of llama.cpp's mixes");
  add_model_option(*q, o->model);
  q->add_option("-o,--output", o->out, "output .gguf file")->required();
  q->add_option("--type", o->type, std::string("llama.cpp's mix (per-tensor types as llama-quantize chooses them; "
                                               "default Q4_K_M): ") + gguf_mix_names());
  q->add_flag("--pure", o->pure, "every matrix in the mix's base type (llama-quantize --pure)");
  q->add_option("--format", o->format, "gguf (for symmetry with tern quantize)");
  q->add_flag("-q,--quiet", o->quiet, "no progress on stderr");
  q->callback([o] {
    if (o->format != "gguf") fail("--format must be gguf here");
    export_gguf(o->model, o->out, o->type, o->pure, o->quiet);
  });
  auto path = std::make_shared<std::string>();
  CLI::App* i = cmd->add_subcommand("info", "print a GGUF file's metadata and tensors");
  i->add_option("file", *path, "a .gguf file")->required();
  i->callback([path] { info(*path); });
}

}  // namespace tern::cli
