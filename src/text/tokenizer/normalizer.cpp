#include "text/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include <algorithm>

#include "text/tokenizer/utf8.h"

namespace tern::tok {

namespace {

const icu::Normalizer2* icu_instance(UnicodeForm form) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case UnicodeForm::kNFC: n = icu::Normalizer2::getNFCInstance(err); break;
    case UnicodeForm::kNFD: n = icu::Normalizer2::getNFDInstance(err); break;
    case UnicodeForm::kNFKC: n = icu::Normalizer2::getNFKCInstance(err); break;
    case UnicodeForm::kNFKD: n = icu::Normalizer2::getNFKDInstance(err); break;
  }
  return U_SUCCESS(err) ? n : nullptr;
}

// Text that is ASCII is already in every normalization form; most input is, so it skips ICU entirely.
// Text that is not valid UTF-8 is left as it is: its bytes must round-trip (see tokenizer.h), and
// Hugging Face only ever normalizes valid strings.
void unicode_normalize(UnicodeForm form, std::string& text, std::string& tmp) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) return;
  if (!utf8_is_valid(text)) return;
  const icu::Normalizer2* n = icu_instance(form);
  if (!n) return;
  UErrorCode err = U_ZERO_ERROR;
  if (n->isNormalizedUTF8(icu::StringPiece(text.data(), int32_t(text.size())), err) && U_SUCCESS(err)) return;
  err = U_ZERO_ERROR;
  tmp.clear();
  icu::StringByteSink<std::string> sink(&tmp);
  n->normalizeUTF8(0, icu::StringPiece(text.data(), int32_t(text.size())), sink, nullptr, err);
  if (U_SUCCESS(err)) text.swap(tmp);
}

}  // namespace

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
    } else if (const auto* u = std::get_if<UnicodeNormSpec>(&step)) {
      unicode_normalize(u->form, text, tmp);
    }
  }
}

}  // namespace tern::tok
