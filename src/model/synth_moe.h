// The parts of `tern synth` for mixture-of-experts shapes (Mixtral, Qwen2-MoE, Qwen3-MoE,
// DeepSeek-V3 incl. its latent attention): the shape table entries, their config.json fields and
// their tensors, each in the family's Hugging Face names. Internal to synth.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/synth.h"

namespace tern {

struct SynthTensor {
  std::string name;
  std::vector<int64_t> shape;
  bool ones = false;  // norm weights start at 1 (as transformers initialises them)
};

void add_moe_synth_shapes(std::vector<SynthShape>& shapes);
// The family's MoE (and MLA) fields into a shape's config.json; nothing for a dense shape.
void add_moe_config_fields(const SynthShape& s, nlohmann::ordered_json& j);
// Layer `layer`'s attention tensors when the shape uses latent attention (returns false otherwise).
bool add_mla_tensors(const SynthShape& s, const std::string& prefix, std::vector<SynthTensor>& t);
// Layer `layer`'s feed-forward tensors when it is a MoE layer (returns false for a dense layer).
bool add_moe_tensors(const SynthShape& s, int layer, const std::string& prefix, std::vector<SynthTensor>& t);

}  // namespace tern
