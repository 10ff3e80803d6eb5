// llama.cpp's file types ("mixes", llama_ftype) by the names llama-quantize takes: a mix is a base
// block type plus per-tensor rules that give the sensitive tensors more bits. The rules follow
// llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for dense models without an importance
// matrix, restated here from what it does:
//   output.weight (or token_embd.weight when the embedding is tied): Q6_K for every quantized base
//     except Q8_0, Q8_0 when its rows do not fit the base's blocks;
//   attn_v / ffn_down: more bits in some layers, by mix (Q4_K_M / Q5_K_M: Q6_K in the first and last
//     eighth and in every third layer between, "use_more_bits"; Q3_K_M / Q3_K_L / Q4_K_S / Q2_K: see
//     the .cpp); attn_output for Q2_K / Q3_K_M / Q3_K_L;
//   then a type whose block does not divide the row length falls back (Q4_K -> Q5_0, Q6_K -> Q8_0, ...).
//   attn_qkv (fused, gpt2 / phi3) and attn_kv_b (DeepSeek MLA) follow the attn_v rules, as llama.cpp
//   counts them as attn_v-like; ffn_down_exps / ffn_down_shexp follow ffn_down by the layer in their name;
//   with exactly 8 experts (Mixtral) attn_v and attn_k get Q8_0 and attn_output Q5_K (Q2_K..Q4_K_M).
// Not supported: the IQ* mixes and Q2_K_S (tern writes no IQ block types; Q2_K_S needs an importance
// matrix) and Falcon's rules (tern exports no Falcon).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "kernels/cpu/gguf_blocks.h"

namespace tern {

struct GgufMix {
  std::string name;        // "Q4_K_M"
  uint32_t file_type = 0;  // general.file_type (llama_ftype: LLAMA_FTYPE_MOSTLY_Q4_K_M = 15)
  GgufType base = GgufType::F16;  // the type most matrices get
  bool pure = false;              // every matrix in `base` (llama-quantize --pure); file_type unchanged
};

// "Q4_K_M", "q5_k_s", "Q8_0", "F16", ...; "Q3_K" / "Q4_K" / "Q5_K" are llama-quantize's aliases of the
// _M mixes. Error names the unknown or unsupported mix and lists the supported ones.
Result<GgufMix> gguf_mix_from_name(const std::string& name);

// The names gguf_mix_from_name takes, for help texts: "F32 F16 BF16 Q8_0 ... Q6_K".
const char* gguf_mix_names();

// What the rules need to know about the model.
struct GgufMixModel {
  std::string arch;  // general.architecture: "llama", "qwen2", "qwen3moe", ...
  int n_layers = 0, n_heads = 0, n_kv_heads = 0;
  bool tied_embeddings = false;  // no output.weight in the file
  int n_experts = 0;             // routed experts (<arch>.expert_count); 0: dense
};

// The type of the 2-D tensor `name` (llama.cpp's tensor names: "blk.3.attn_v.weight",
// "token_embd.weight", "output.weight") whose rows hold `cols` values.
GgufType gguf_mix_tensor_type(const GgufMix& mix, const GgufMixModel& model, const std::string& name, int64_t cols);

// The type a matrix with rows of `cols` values gets when `wanted` is asked for (llama.cpp's fallback).
GgufType gguf_type_for_row(GgufType wanted, int64_t cols);

}  // namespace tern
