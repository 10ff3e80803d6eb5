#include "engine/speculative_config.h"

#include <fmt/format.h>

namespace tern {

Result<SpeculativeMethod> parse_speculative_method(const std::string& name) {
  if (name == "none") return SpeculativeMethod::kNone;
  if (name == "ngram") return SpeculativeMethod::kNgram;
  if (name == "draft") return SpeculativeMethod::kDraftModel;
  return Status::error(fmt::format("--speculative: unknown method '{}' (expected none, ngram or draft)", name));
}

const char* speculative_method_name(SpeculativeMethod m) {
  switch (m) {
    case SpeculativeMethod::kNone: return "none";
    case SpeculativeMethod::kNgram: return "ngram";
    case SpeculativeMethod::kDraftModel: return "draft";
  }
  return "?";
}

Status SpeculativeConfig::validate() const {
  if (num_speculative_tokens < 1 || num_speculative_tokens > 32)
    return Status::error(fmt::format("num_speculative_tokens = {} is invalid: must be in [1, 32]", num_speculative_tokens));
  if (prompt_lookup_min < 1 || prompt_lookup_max < prompt_lookup_min || prompt_lookup_max > 64)
    return Status::error(fmt::format("prompt_lookup_min = {}, prompt_lookup_max = {} are invalid: need 1 <= min <= max <= 64",
                                     prompt_lookup_min, prompt_lookup_max));
  if (disable_by_batch_size < 1 || disable_by_batch_size > 4096)
    return Status::error(fmt::format("speculative disable_by_batch_size = {} is invalid: must be in [1, 4096]",
                                     disable_by_batch_size));
  if (max_batch_rows < 2 || max_batch_rows > 4096)
    return Status::error(fmt::format("speculative max_batch_rows = {} is invalid: must be in [2, 4096]", max_batch_rows));
  return Status::ok();
}

}  // namespace tern
