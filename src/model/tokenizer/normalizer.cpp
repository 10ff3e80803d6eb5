#include "model/tokenizer/normalizer.h"

namespace tern::tok {

void normalize(const std::vector<NormalizerStep>& steps, std::string& text, std::string& tmp) {
  for (const NormalizerStep& step : steps) {
    if (const auto* p = std::get_if<PrependSpec>(&step)) {
      if (!text.empty()) text.insert(0, p->prepend);  // Hugging Face leaves empty text empty
    } else if (const auto* r = std::get_if<ReplaceSpec>(&step)) {
      if (text.find(r->pattern) == std::string::npos) continue;
      tmp.clear();
      size_t pos = 0;
      for (size_t hit; (hit = text.find(r->pattern, pos)) != std::string::npos; pos = hit + r->pattern.size()) {
        tmp.append(text, pos, hit - pos);
        tmp += r->content;
      }
      tmp.append(text, pos);
      text.swap(tmp);
    }
  }
}

}  // namespace tern::tok
