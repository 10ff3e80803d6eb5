#include "text/tokenizer/post_processor.h"

#include <string>

namespace tern::tok {

Result<PostProcessor> PostProcessor::build(const PostProcessorSpec& spec, int64_t vocab_size) {
  PostProcessor p;
  if (const auto* t = std::get_if<TemplateSpec>(&spec)) {
    int sequences = 0;
    for (const TemplatePiece& piece : t->single) {
      if (piece.is_sequence) {
        ++sequences;
        continue;
      }
      for (int32_t id : piece.ids) {
        if (id < 0 || id >= vocab_size)
          return Status::error("TemplateProcessing id " + std::to_string(id) + " is outside the vocab");
        (sequences == 0 ? p.prefix_ : p.suffix_).push_back(id);
      }
    }
    if (sequences != 1)
      return Status::error("TemplateProcessing single template must contain $A exactly once, has " +
                           std::to_string(sequences));
  }
  return p;
}

void PostProcessor::override_bos(int32_t bos, bool add) {
  const bool has = !prefix_.empty() && prefix_.front() == bos;
  if (add && !has) prefix_.insert(prefix_.begin(), bos);
  if (!add && has) prefix_.erase(prefix_.begin());
}

void PostProcessor::override_eos(int32_t eos, bool add) {
  const bool has = !suffix_.empty() && suffix_.back() == eos;
  if (add && !has) suffix_.push_back(eos);
  if (!add && has) suffix_.pop_back();
}

void PostProcessor::apply(std::vector<int32_t>& ids, bool add_special_tokens) const {
  if (!add_special_tokens) return;
  if (!prefix_.empty()) ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
}

}  // namespace tern::tok
