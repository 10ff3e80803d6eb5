#include "model/tokenizer/decoder.h"

#include <cctype>

#include "model/tokenizer/utf8.h"

namespace tern::tok {
namespace {

std::string replace_all(const std::string& t, const std::string& from, const std::string& to) {
  if (from.empty()) return t;
  std::string o;
  for (size_t k = 0; k < t.size();) {
    if (t.compare(k, from.size(), from) == 0) {
      o += to;
      k += from.size();
    } else {
      o += t[k++];
    }
  }
  return o;
}

}  // namespace

Result<Decoder> Decoder::build(const DecoderSpec& spec, const std::vector<std::string>& tokens) {
  Decoder d;
  d.bytes_.resize(tokens.size());
  if (std::holds_alternative<ByteLevelDecoderSpec>(spec)) {
    // A token with a character outside the byte-level alphabet (e.g. an added token containing a space) decodes
    // to its own UTF-8 bytes, as in Hugging Face.
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (!byte_level_decode(tokens[i], d.bytes_[i])) d.bytes_[i] = tokens[i];
    }
  } else if (const auto* p = std::get_if<PieceDecoderSpec>(&spec)) {
    if (p->drop_in_first) d.first_bytes_.resize(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string& t = tokens[i];
      // <0xXX>: one raw byte (several of them form a character, which Fuse joins).
      if (p->byte_fallback && t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
          std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]))) {
        d.bytes_[i] = std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
        if (p->drop_in_first) d.first_bytes_[i] = d.bytes_[i];
        continue;
      }
      d.bytes_[i] = replace_all(t, p->from, p->to);
      if (p->drop_in_first) d.first_bytes_[i] = replace_all(t, p->from, "");
    }
    d.strip_start_ = p->strip_start;
  } else {
    d.bytes_ = tokens;
    d.join_with_space_ = true;
  }
  return d;
}

}  // namespace tern::tok
