#include "model/tokenizer/decoder.h"

#include "model/tokenizer/utf8.h"

namespace tern::tok {

Result<Decoder> Decoder::build(const DecoderSpec& spec, const std::vector<std::string>& tokens) {
  Decoder d;
  d.bytes_.resize(tokens.size());
  if (std::holds_alternative<ByteLevelDecoderSpec>(spec)) {
    // A token with a character outside the byte-level alphabet (e.g. an added token containing a space) decodes
    // to its own UTF-8 bytes, as in Hugging Face.
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (!byte_level_decode(tokens[i], d.bytes_[i])) d.bytes_[i] = tokens[i];
    }
  } else {
    d.bytes_ = tokens;
    d.join_with_space_ = true;
  }
  return d;
}

}  // namespace tern::tok
