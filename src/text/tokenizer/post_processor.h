// Post-processing of a single encoded sequence: the ids a template puts around it (BOS, EOS, ...).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/status.h"
#include "text/tokenizer/tokenizer_spec.h"

namespace tern::tok {

class PostProcessor {
 public:
  static Result<PostProcessor> build(const PostProcessorSpec& spec, int64_t vocab_size);

  // tokenizer_config.json's add_bos_token / add_eos_token, when present, override what the template adds
  // (as transformers' Llama tokenizers rebuild their template from these flags).
  void override_bos(int32_t bos, bool add);
  void override_eos(int32_t eos, bool add);

  // ids: the encoded text; prefix/suffix are added only with add_special_tokens.
  void apply(std::vector<int32_t>& ids, bool add_special_tokens) const;

  const std::vector<int32_t>& prefix() const { return prefix_; }
  const std::vector<int32_t>& suffix() const { return suffix_; }

 private:
  std::vector<int32_t> prefix_, suffix_;
};

}  // namespace tern::tok
