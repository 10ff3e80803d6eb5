#include "text/tokenizer/tokenizer_impl.h"
#include "text/tokenizer/utf8.h"

namespace tern {

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {
  const tok::Decoder::State st = tokenizer_.impl_->decoder.start();
  strip_left_ = st.strip_left;
}

std::string StreamingDecoder::push(int32_t id) {
  const Tokenizer::Impl& m = *tokenizer_.impl_;
  if (!m.emits(id, skip_special_)) return "";
  tok::Decoder::State st{first_, strip_left_};
  m.decoder.append(id, st, pending_);
  first_ = st.first;
  strip_left_ = st.strip_left;
  // Emit every whole character; replace invalid subparts as decode() does; keep an unfinished tail.
  std::string out;
  const auto* p = reinterpret_cast<const uint8_t*>(pending_.data());
  size_t i = 0;
  while (i < pending_.size()) {
    size_t len = 0;
    const tok::Utf8Step step = tok::utf8_step(p + i, pending_.size() - i, &len);
    if (step == tok::Utf8Step::kIncomplete) break;
    if (step == tok::Utf8Step::kComplete) out.append(pending_, i, len);
    else out += "\xEF\xBF\xBD";
    i += len;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamingDecoder::flush() {
  std::string out = tok::utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace tern
