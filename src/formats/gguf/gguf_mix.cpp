#include "formats/gguf/gguf_mix.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdio>

#include "formats/quant/module_targets.h"

namespace tern {

namespace {

// llama_ftype values (llama.h): what general.file_type says and what llama.cpp's tools print.
enum FileType : uint32_t {
  kAllF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10,
  kQ3_K_S = 11, kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17,
  kQ6_K = 18, kBF16 = 32,
};

struct MixRow {
  const char* name;
  FileType file_type;
  GgufType base;
};

constexpr MixRow kMixes[] = {
    {"F32", kAllF32, GgufType::F32},   {"F16", kF16, GgufType::F16},        {"BF16", kBF16, GgufType::BF16},
    {"Q8_0", kQ8_0, GgufType::Q8_0},   {"Q4_0", kQ4_0, GgufType::Q4_0},     {"Q4_1", kQ4_1, GgufType::Q4_1},
    {"Q5_0", kQ5_0, GgufType::Q5_0},   {"Q5_1", kQ5_1, GgufType::Q5_1},     {"Q2_K", kQ2_K, GgufType::Q2_K},
    {"Q3_K_S", kQ3_K_S, GgufType::Q3_K}, {"Q3_K_M", kQ3_K_M, GgufType::Q3_K}, {"Q3_K_L", kQ3_K_L, GgufType::Q3_K},
    {"Q4_K_S", kQ4_K_S, GgufType::Q4_K}, {"Q4_K_M", kQ4_K_M, GgufType::Q4_K}, {"Q5_K_S", kQ5_K_S, GgufType::Q5_K},
    {"Q5_K_M", kQ5_K_M, GgufType::Q5_K}, {"Q6_K", kQ6_K, GgufType::Q6_K},
};

// llama-quantize's short names for the _M mixes.
constexpr std::pair<const char*, const char*> kAliases[] = {{"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}};

enum class Role { kEmbed, kOutput, kAttnQ, kAttnK, kAttnV, kAttnOut, kGate, kUp, kDown, kOther };

Role role_of(const std::string& name, int* layer) {
  *layer = -1;
  if (name == "token_embd.weight") return Role::kEmbed;
  if (name == "output.weight") return Role::kOutput;
  if (std::sscanf(name.c_str(), "blk.%d.", layer) != 1) return Role::kOther;
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  // llama.cpp's attn_v-like category: the fused qkv and MLA's kv_b carry the values too.
  if (has(".attn_v.weight") || has(".attn_qkv.weight") || has(".attn_kv_b.weight")) return Role::kAttnV;
  if (has(".attn_k.weight")) return Role::kAttnK;
  if (has(".attn_q.weight")) return Role::kAttnQ;
  if (has(".attn_output.weight")) return Role::kAttnOut;
  if (has(".ffn_gate")) return Role::kGate;
  if (has(".ffn_up")) return Role::kUp;
  if (has(".ffn_down")) return Role::kDown;
  return Role::kOther;
}

bool quantized(GgufType t) { return gguf_traits(t).block_elems > 1; }

bool use_more_bits(int i, int n) { return more_bits_layer(i, n); }

// llama.cpp's 70B size class, which gives attn_v one more step: Llama with 80 layers and grouped
// heads (80 layers without them is the 65B), Qwen2 with 80 layers.
bool is_70b(const GgufMixModel& m) {
  if (m.n_layers != 80) return false;
  return m.arch == "qwen2" || (m.arch == "llama" && m.n_heads != m.n_kv_heads);
}

// The mix's choice before the shape fallback.
GgufType rule_type(const GgufMix& mix, const GgufMixModel& m, Role role, int i, int64_t cols) {
  const GgufType base = mix.base;
  const uint32_t ft = mix.file_type;
  const int n = m.n_layers;
  const int gqa = m.n_kv_heads > 0 ? m.n_heads / m.n_kv_heads : 0;
  if (role == Role::kOutput || (role == Role::kEmbed && m.tied_embeddings)) {
    if (cols % gguf_traits(base).block_elems != 0) return GgufType::Q8_0;
    return base == GgufType::Q8_0 ? base : GgufType::Q6_K;
  }
  switch (role) {
    case Role::kAttnV: {
      GgufType t = base;
      if (ft == kQ2_K) t = gqa >= 4 ? GgufType::Q4_K : GgufType::Q3_K;
      else if (ft == kQ3_K_M) t = i < 2 ? GgufType::Q5_K : GgufType::Q4_K;
      else if (ft == kQ3_K_L) t = GgufType::Q5_K;
      else if ((ft == kQ4_K_M || ft == kQ5_K_M) && use_more_bits(i, n)) t = GgufType::Q6_K;
      else if (ft == kQ4_K_S && i < 4) t = GgufType::Q5_K;
      if (is_70b(m) && (t == GgufType::Q3_K || t == GgufType::Q4_K)) t = GgufType::Q5_K;
      if (m.n_experts == 8) t = GgufType::Q8_0;  // "trades just ~128MB" on Mixtral 8x7B
      return t;
    }
    case Role::kAttnK:
      return m.n_experts == 8 ? GgufType::Q8_0 : base;
    case Role::kDown:
      if (ft == kQ2_K) return GgufType::Q3_K;
      if (ft == kQ3_K_M) return i < n / 16 ? GgufType::Q5_K : GgufType::Q4_K;
      if (ft == kQ3_K_L) return GgufType::Q5_K;
      if ((ft == kQ4_K_M || ft == kQ5_K_M) && use_more_bits(i, n)) return GgufType::Q6_K;
      if (ft == kQ4_K_S && i < n / 8) return GgufType::Q5_K;
      return base;
    case Role::kAttnOut:
      if (m.n_experts == 8) {
        const bool bump = ft == kQ2_K || ft == kQ3_K_S || ft == kQ3_K_M || ft == kQ4_K_S || ft == kQ4_K_M;
        return bump ? GgufType::Q5_K : base;
      }
      if (ft == kQ2_K) return GgufType::Q3_K;
      if (ft == kQ3_K_M) return GgufType::Q4_K;
      if (ft == kQ3_K_L) return GgufType::Q5_K;
      return base;
    default:
      return base;
  }
}

}  // namespace

Result<GgufMix> gguf_mix_from_name(const std::string& name) {
  std::string up = name;
  for (char& c : up) c = char(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& [alias, target] : kAliases) {
    if (up == alias) up = target;
  }
  for (const auto& r : kMixes) {
    if (up == r.name) return GgufMix{r.name, uint32_t(r.file_type), r.base, false};
  }
  if (up.rfind("IQ", 0) == 0 || up == "Q2_K_S" || up.rfind("TQ", 0) == 0 || up == "MXFP4_MOE") {
    return Status::error(fmt::format("GGUF type '{}' is not supported: tern writes no IQ/TQ block types, and Q2_K_S "
                                     "needs an importance matrix (supported: {})", name, gguf_mix_names()));
  }
  return Status::error(fmt::format("unknown GGUF type '{}' (supported: {})", name, gguf_mix_names()));
}

const char* gguf_mix_names() {
  return "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K "
         "(Q3_K, Q4_K, Q5_K: the _M mixes)";
}

GgufType gguf_type_for_row(GgufType wanted, int64_t cols) {
  if (cols % gguf_traits(wanted).block_elems == 0) return wanted;
  switch (wanted) {
    case GgufType::Q4_K: return cols % 32 == 0 ? GgufType::Q5_0 : GgufType::F16;
    case GgufType::Q5_K: return cols % 32 == 0 ? GgufType::Q5_1 : GgufType::F16;
    case GgufType::Q6_K: return cols % 32 == 0 ? GgufType::Q8_0 : GgufType::F16;
    case GgufType::Q2_K:
    case GgufType::Q3_K: return cols % 32 == 0 ? GgufType::Q4_0 : GgufType::F16;
    default: return GgufType::F16;
  }
}

GgufType gguf_mix_tensor_type(const GgufMix& mix, const GgufMixModel& model, const std::string& name, int64_t cols) {
  // Unquantized bases (F32 / F16 / BF16) and --pure take the base everywhere, as llama.cpp does.
  if (mix.pure || !quantized(mix.base)) return gguf_type_for_row(mix.base, cols);
  int layer = -1;
  const Role role = role_of(name, &layer);
  return gguf_type_for_row(rule_type(mix, model, role, layer, cols), cols);
}

}  // namespace tern
