// Writes what `tern prune` produces as a dense Hugging Face checkpoint: safetensors shards in the
// source's dtypes, config.json, and the tokenizer / generation files copied (as quantize does).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/prune_model.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "model/model.h"

namespace tern {

// The source's config.json as an ordered object (keys keep their order when written back).
Result<nlohmann::ordered_json> read_config_json(const Model& model);

// `tensors` (names, dtypes, shapes and bytes as they go to disk), `config` as config.json, and the
// tokenizer files of `model` into out_dir (created when missing).
Status write_dense_checkpoint(const Model& model, const std::vector<TensorToWrite>& tensors,
                              const nlohmann::ordered_json& config, const std::string& out_dir,
                              size_t max_shard_bytes = size_t(5) << 30);

// Unstructured / N:M: every stored tensor as is, except the pruned modules' weights (zeros in place,
// the kept weights rounded to the stored dtype); config.json unchanged.
Status write_pruned_checkpoint(const Model& model, const PrunedModel& pm, const std::string& out_dir);

}  // namespace tern
