// Which modules a quantization_config target names (compressed-tensors config_groups, tern's
// --int8-modules): a format rule the loader and the quantizers share.
#pragma once

#include <string>
#include <vector>

namespace tern {

constexpr const char* kEmbedModule = "model.embed_tokens";

// Whether `module` ("model.layers.3.mlp.down_proj") matches a compressed-tensors target:
//   "re:REGEX"   std::regex_match of the whole name (llm-compressor's convention);
//   "Linear"     any decoder linear ("..._proj"); "Embedding" the token embedding;
//   anything else: the exact module name, or a name ending in "." + target ("v_proj",
//   "layers.0.mlp.down_proj"), so that short forms work on the command line.
bool module_matches(const std::string& module, const std::string& target);
bool module_matches_any(const std::string& module, const std::vector<std::string>& targets);

// The layers llama.cpp's Q4_K_M / Q5_K_M give attn_v and ffn_down more bits ("use_more_bits"): the
// first and the last eighth of the n layers and every third layer between. Shared by the GGUF mixes and
// tern quantize's default int8 modules.
inline bool more_bits_layer(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

}  // namespace tern
