// What --resume needs beyond the student's weights (which the checkpoint's model.safetensors holds):
// the step, where the data stream stands, AdamW's moments, and what the run was (so a resume with
// other data or another batch shape is refused instead of silently training something else).
//
// File OUT/trainer_state.bin (little-endian): char magic[8] = "TERNTRN1"; u64 step, steps, data_pos,
// epoch, tokens_hash, params, batch, seq, accum; f32 m[params]; f32 v[params].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern::train {

struct TrainState {
  uint64_t step = 0, steps = 0, data_pos = 0, epoch = 0, tokens_hash = 0, params = 0, batch = 0, seq = 0, accum = 0;
  std::vector<float> m, v;
};

// Written to path + ".tmp" and renamed.
Status save_train_state(const TrainState& s, const std::string& path);
Result<TrainState> load_train_state(const std::string& path);

// FNV-1a 64 over the token ids (the training text as tokenized).
uint64_t hash_token_ids(const std::vector<int32_t>& tokens);

}  // namespace tern::train
