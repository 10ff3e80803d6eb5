// The architectures tern reads and writes as GGUF, and how llama.cpp names their tensors: one table
// per architecture of Hugging Face tensor name <-> GGUF tensor name (src/llama-arch.cpp of llama.cpp,
// and what its convert_hf_to_gguf.py does to each tensor), used by both the loader
// (gguf_hf_view.h: a GGUF file seen under Hugging Face names) and the exporter
// (compress/gguf_quantize.h). Patterns: "{L}" is the layer, "{E}" the expert; GGUF stores the
// experts of a layer stacked in one 3-D tensor [E, rows, cols] ("blk.{L}.ffn_gate_exps.weight").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern {

// What llama.cpp's converter does to a tensor beyond renaming it (undone at load, redone at export).
enum class GgufQuirk : uint8_t {
  kNone,
  kRopeQ,       // arch llama: q rows interleaved per head of head_dim (see gguf_unpermute_row)
  kRopeK,       // arch llama: the same for k (heads: num_key_value_heads)
  kNormPlusOne, // gemma: the converter stores 1 + w for every RMSNorm weight
  kConv1D,      // gpt2: Hugging Face Conv1D [in, out], stored transposed [out, in]
  kRowVector,   // Hugging Face [1, n] (qwen2moe shared_expert_gate); GGUF [1, n] or [n]
};

struct GgufTensorName {
  std::string hf;    // "model.layers.{L}.self_attn.q_proj.weight"
  std::string gguf;  // "blk.{L}.attn_q.weight"
  GgufQuirk quirk = GgufQuirk::kNone;
};

struct GgufArch {
  const char* gguf;        // general.architecture
  const char* hf;          // config.json architectures[0]
  const char* model_type;  // config.json model_type
  std::vector<GgufTensorName> names;
};

// Every architecture tern maps (gguf name, Hugging Face name); llama appears twice: dense Llama and
// Mixtral (llama with experts, which llama.cpp tells apart by <arch>.expert_count).
const std::vector<GgufArch>& gguf_architectures();
const GgufArch* gguf_arch_for_hf(const std::string& hf_architecture);
// `has_experts`: <arch>.expert_count > 0 (llama -> Mixtral).
const GgufArch* gguf_arch_for_gguf(const std::string& gguf_architecture, bool has_experts);
// Mixtral, Qwen2-MoE, Qwen3-MoE: routed experts described by expert_count / expert_used_count /
// expert_feed_forward_length (DeepSeek has its own keys).
bool gguf_arch_qwen_style_moe(const GgufArch& a);
// "llama, qwen2, ..." for error messages.
std::string gguf_architecture_list();

// One tensor name resolved through the table.
struct GgufNameMatch {
  const GgufTensorName* entry = nullptr;
  int layer = -1;   // {L}, -1 when the pattern has none
  int expert = -1;  // {E} of a Hugging Face expert tensor, -1 otherwise
  std::string name; // the other side's name: {L} filled in; {E} left in a Hugging Face name
  bool experts() const;  // the Hugging Face side is per expert, the GGUF side stacked
};
// Hugging Face name -> GGUF name; false when the table has no entry for it.
bool gguf_name_from_hf(const GgufArch& arch, const std::string& hf, GgufNameMatch* out);
// GGUF name -> Hugging Face name (with "{E}" where experts are stacked, the expert filled in for a
// per-expert GGUF tensor); false when unknown.
bool hf_name_from_gguf(const GgufArch& arch, const std::string& gguf, GgufNameMatch* out);
// Replaces "{E}" in a Hugging Face pattern by the expert index.
std::string gguf_expert_name(const std::string& pattern, int expert);

// HF row of the converter's interleaved row r within a head of `head_dim` rows: r = 2i + j -> j*hd/2 + i
// (llama.cpp's converter views each head's rows as [2, hd/2] and stores them as [hd/2, 2]).
inline int64_t gguf_unpermute_row(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, w = r % head_dim;
  return h * head_dim + (w % 2) * (head_dim / 2) + w / 2;
}

}  // namespace tern
