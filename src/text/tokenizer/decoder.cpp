#include "text/tokenizer/decoder.h"

#include <cctype>

#include "text/tokenizer/utf8.h"

namespace tern::tok {
namespace {

std::string replace_all(const std::string& t, const std::string& from, const std::string& to, size_t max = SIZE_MAX) {
  if (from.empty()) return t;
  std::string o;
  size_t n = 0;
  for (size_t k = 0; k < t.size();) {
    if (n < max && t.compare(k, from.size(), from) == 0) {
      o += to;
      k += from.size();
      ++n;
    } else {
      o += t[k++];
    }
  }
  return o;
}

// Hugging Face's WordPiece cleanup (tokenization spaces before punctuation and contractions), in its order.
std::string wordpiece_cleanup(std::string s) {
  static const char* const kPairs[][2] = {{" .", "."},      {" ?", "?"},     {" !", "!"},     {" ,", ","},
                                          {" ' ", "'"},     {" n't", "n't"}, {" 'm", "'m"},   {" do not", " don't"},
                                          {" 's", "'s"},    {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& p : kPairs) s = replace_all(s, p[0], p[1]);
  return s;
}

// Byte offsets where the characters of a valid UTF-8 token start (the end included).
std::vector<size_t> char_starts(const std::string& t) {
  std::vector<size_t> b;
  for (size_t i = 0; i < t.size(); ++i)
    if ((static_cast<unsigned char>(t[i]) & 0xC0) != 0x80) b.push_back(i);
  b.push_back(t.size());
  return b;
}

std::string strip(const std::string& t, const StripStep& s) {
  const std::vector<size_t> c = char_starts(t);
  const size_t n = c.size() - 1;
  size_t begin = 0, end = n;
  auto is_content = [&](size_t k) { return t.compare(c[k], c[k + 1] - c[k], s.content) == 0; };
  while (begin < n && begin < size_t(s.start) && is_content(begin)) ++begin;
  while (end > begin && n - end < size_t(s.stop) && is_content(end - 1)) --end;
  return t.substr(c[begin], c[end] - c[begin]);
}

// One step on one token string; `first`: the token is the first of the decode.
std::string apply(const DecoderStep& step, const std::string& t, bool first) {
  if (const auto* r = std::get_if<ReplaceStep>(&step)) return replace_all(t, r->from, r->to);
  if (std::holds_alternative<ByteFallbackStep>(step)) {
    // <0xXX>: one raw byte (several of them form a character, which the join puts together).
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
        std::isxdigit(static_cast<unsigned char>(t[4])))
      return std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
    return t;
  }
  if (const auto* s = std::get_if<StripStep>(&step)) return strip(t, *s);
  if (const auto* m = std::get_if<MetaspaceStep>(&step))
    return replace_all(t, m->replacement, first && m->drop_in_first ? "" : " ");
  if (const auto* w = std::get_if<WordPieceStep>(&step)) {
    std::string out = t;
    if (!first) {
      const bool prefixed = !w->prefix.empty() && t.compare(0, w->prefix.size(), w->prefix) == 0;
      out = prefixed ? t.substr(w->prefix.size()) : " " + t;
    }
    return w->cleanup ? wordpiece_cleanup(out) : out;
  }
  // ByteLevel: a token with a character outside the byte-level alphabet (e.g. an added token containing a space)
  // decodes to its own UTF-8 bytes, as in Hugging Face.
  std::string raw;
  return byte_level_decode(t, raw) ? raw : t;
}

bool depends_on_position(const DecoderStep& step) {
  if (const auto* m = std::get_if<MetaspaceStep>(&step)) return m->drop_in_first;
  return std::holds_alternative<WordPieceStep>(step);
}

}  // namespace

Result<Decoder> Decoder::build(const DecoderSpec& spec, const std::vector<std::string>& tokens) {
  Decoder d;
  if (!spec.present) {
    d.bytes_ = tokens;
    d.join_with_space_ = true;
    return d;
  }
  bool positional = false;
  for (const DecoderStep& s : spec.per_token) positional = positional || depends_on_position(s);
  d.bytes_.resize(tokens.size());
  if (positional) d.first_bytes_.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string t = tokens[i], f = tokens[i];
    for (const DecoderStep& s : spec.per_token) {
      t = apply(s, t, false);
      if (positional) f = apply(s, f, true);
    }
    d.bytes_[i] = std::move(t);
    if (positional) d.first_bytes_[i] = std::move(f);
  }
  d.strip_content_ = spec.strip_content;
  d.strip_start_ = spec.strip_content.empty() ? 0 : spec.strip_start;
  return d;
}

}  // namespace tern::tok
