// The decoder of tokenizer.json -> DecoderSpec: Hugging Face's decoder chains, read as tern decodes (token by token,
// see tokenizer_spec.h); a chain that cannot be computed that way is an error naming the step.
#include <algorithm>

#include "formats/json_util.h"
#include "text/tokenizer/tokenizer_json_util.h"
#include "text/tokenizer/utf8.h"

namespace tern::tok {
namespace {

// One character of valid UTF-8 (Strip's content, Metaspace's replacement).
bool one_char(const std::string& s) {
  size_t len = 0;
  return !s.empty() &&
         utf8_step(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &len) == Utf8Step::kComplete &&
         len == s.size();
}

int get_count(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return 0;
  if (!j[key].is_number_unsigned() && !(j[key].is_number_integer() && j[key].get<int64_t>() >= 0))
    throw std::runtime_error(std::string("field '") + key + "' must be a non-negative integer");
  return int(std::min<uint64_t>(j[key].get<uint64_t>(), 1u << 30));
}

// Decoder steps in Hugging Face's order, nested Sequences flattened. tern decodes token by token, so a chain is:
// steps that map each token, at most one ByteFallback, then a join (Fuse, or ByteLevel, which also joins), then
// Strips of leading characters. Anything else is an error naming the step.
struct DecoderChain {
  DecoderSpec& out;
  enum class Stage { kPerToken, kAfterByteFallback, kJoined } stage = Stage::kPerToken;
};

Status add_decoder(const json& j, DecoderChain& c, int depth = 0) {
  using Stage = DecoderChain::Stage;
  const std::string type = type_of(j);
  const std::string named = type.empty() ? json_excerpt(j) : type;
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array())
      return Status::error("decoder Sequence needs a 'decoders' array");
    TERN_RETURN_IF_ERROR(check_nesting(depth, "decoder"));
    for (const auto& s : j["decoders"]) TERN_RETURN_IF_ERROR(add_decoder(s, c, depth + 1));
    return Status::ok();
  }
  if (type == "BPEDecoder")
    return Status::error("unsupported decoder type 'BPEDecoder' (it decodes the last token differently, which a "
                         "streaming decoder cannot know)");
  if (type == "CTC") return Status::error("unsupported decoder type 'CTC' (it merges repeated tokens)");
  if (type == "Fuse") {
    c.stage = Stage::kJoined;
    return Status::ok();
  }
  if (type == "Strip") {
    StripStep st;
    if (!j.contains("content") || !j["content"].is_string() || !one_char(j["content"].get<std::string>()))
      return Status::error("Strip decoder needs a one-character 'content'");
    st.content = j["content"].get<std::string>();
    st.start = get_count(j, "start");
    st.stop = get_count(j, "stop");
    if (c.stage == Stage::kPerToken) {
      c.out.per_token.push_back(std::move(st));
      return Status::ok();
    }
    if (c.stage == Stage::kAfterByteFallback)
      return Status::error("unsupported decoder chain: Strip after ByteFallback without Fuse between them");
    if (st.stop > 0)
      return Status::error("unsupported decoder chain: Strip with stop > 0 after Fuse or ByteLevel (it needs the end "
                           "of the whole text)");
    if (c.out.strip_start > 0 && st.start > 0 && st.content != c.out.strip_content)
      return Status::error("unsupported decoder chain: two Strip steps of different characters after Fuse");
    if (st.start > 0) c.out.strip_content = st.content;
    c.out.strip_start = std::min(c.out.strip_start + st.start, 1 << 30);
    return Status::ok();
  }
  if (c.stage == Stage::kJoined)
    return Status::error("unsupported decoder step '" + named + "' after Fuse or ByteLevel (it would work on the "
                         "whole text; only Strip of leading characters is supported there)");
  if (c.stage == Stage::kAfterByteFallback)
    return Status::error("unsupported decoder step '" + named + "' after ByteFallback (only Fuse may follow it: "
                         "ByteFallback merges runs of byte tokens)");
  if (type == "Replace") {
    const json& pat = field(j, "pattern");
    if (pat.is_object() && pat.contains("Regex"))
      return Status::error("unsupported Replace decoder with a Regex pattern (only String)");
    if (!pat.is_object() || !pat.contains("String") || !pat["String"].is_string() || !j.contains("content") ||
        !j["content"].is_string())
      return Status::error("Replace decoder needs a pattern {\"String\": ...} and a string 'content'");
    if (pat["String"].get<std::string>().empty()) return Status::error("Replace decoder with an empty pattern");
    c.out.per_token.push_back(ReplaceStep{pat["String"].get<std::string>(), j["content"].get<std::string>()});
    return Status::ok();
  }
  if (type == "ByteFallback") {
    c.out.per_token.push_back(ByteFallbackStep{});
    c.stage = Stage::kAfterByteFallback;
    return Status::ok();
  }
  if (type == "Metaspace") {
    // The replacement becomes a space, except in the first token, where it is dropped unless the scheme is
    // "never" (the prepended one is not text).
    TERN_ASSIGN_OR_RETURN(MetaspaceSpec m, parse_metaspace(j));
    c.out.per_token.push_back(MetaspaceStep{m.replacement, m.prepend_scheme != PrependScheme::kNever});
    return Status::ok();
  }
  if (type == "WordPiece") {
    WordPieceStep w;
    if (j.contains("prefix") && !j["prefix"].is_null()) {
      if (!j["prefix"].is_string()) return Status::error("WordPiece decoder 'prefix' must be a string");
      w.prefix = j["prefix"].get<std::string>();
    }
    w.cleanup = get_bool(j, "cleanup", true);
    c.out.per_token.push_back(std::move(w));
    return Status::ok();
  }
  if (type == "ByteLevel") {
    c.out.per_token.push_back(ByteLevelStep{});
    c.stage = Stage::kJoined;
    return Status::ok();
  }
  return Status::error("unsupported decoder type '" + named + "'");
}

}  // namespace

Status parse_decoder(const json& j, DecoderSpec& out) {
  if (j.is_null()) return Status::ok();
  out.present = true;
  DecoderChain chain{out};
  return add_decoder(j, chain);
}

}  // namespace tern::tok
