// tokenizer.json -> TokenizerSpec. Every field that changes how text is tokenized is either understood or rejected;
// nothing is silently ignored.
#include <nlohmann/json.hpp>

#include "model/tokenizer/tokenizer_spec.h"
#include "model/tokenizer/utf8.h"

namespace tern::tok {
namespace {

using json = nlohmann::json;

std::string type_of(const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "";
  return j["type"].get<std::string>();
}

bool get_bool(const json& j, const char* key, bool dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean()) throw std::runtime_error(std::string("field '") + key + "' must be a boolean");
  return j[key].get<bool>();
}

// Metaspace, as a pre-tokenizer or a decoder (the same fields). The legacy add_prefix_space=true means "always";
// false means "never" and, as in Hugging Face, contradicts any other prepend_scheme (including the default).
Result<MetaspaceSpec> parse_metaspace(const json& j) {
  MetaspaceSpec m;
  if (!j.contains("replacement") || !j["replacement"].is_string())
    return Status::error("Metaspace needs a string 'replacement'");
  m.replacement = j["replacement"].get<std::string>();
  size_t len = 0;
  if (m.replacement.empty() || utf8_step(reinterpret_cast<const uint8_t*>(m.replacement.data()), m.replacement.size(),
                                         &len) != Utf8Step::kComplete || len != m.replacement.size())
    return Status::error("Metaspace 'replacement' must be exactly one character");
  std::optional<PrependScheme> scheme;
  if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
    const std::string s = j["prepend_scheme"].is_string() ? j["prepend_scheme"].get<std::string>() : j["prepend_scheme"].dump();
    if (s == "first") scheme = PrependScheme::kFirst;
    else if (s == "always") scheme = PrependScheme::kAlways;
    else if (s == "never") scheme = PrependScheme::kNever;
    else return Status::error("unsupported Metaspace prepend_scheme '" + s + "'");
  }
  if (j.contains("add_prefix_space") && !j["add_prefix_space"].is_null() && !get_bool(j, "add_prefix_space", true)) {
    if (scheme.value_or(PrependScheme::kAlways) != PrependScheme::kNever)
      return Status::error("Metaspace add_prefix_space=false does not match its prepend_scheme");
    scheme = PrependScheme::kNever;
  }
  m.prepend_scheme = scheme.value_or(PrependScheme::kAlways);
  m.split = get_bool(j, "split", true);
  return m;
}

Status parse_added_tokens(const json& j, TokenizerSpec& spec) {
  if (j.is_null()) return Status::ok();
  if (!j.is_array()) return Status::error("added_tokens must be an array");
  for (const auto& t : j) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string())
      return Status::error("added_tokens entry needs an integer id and a string content");
    AddedTokenSpec a;
    a.id = t["id"].get<int32_t>();
    if (a.id < 0) return Status::error("added token id " + std::to_string(a.id) + " is negative");
    a.content = t["content"].get<std::string>();
    a.single_word = get_bool(t, "single_word", false);
    a.lstrip = get_bool(t, "lstrip", false);
    a.rstrip = get_bool(t, "rstrip", false);
    a.normalized = get_bool(t, "normalized", false);
    a.special = get_bool(t, "special", false);
    spec.added_tokens.push_back(std::move(a));
  }
  return Status::ok();
}

Status parse_pre_tokenizer(const json& j, std::vector<PreTokenizerStep>& steps) {
  if (j.is_null()) return Status::ok();
  const std::string type = type_of(j);
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      return Status::error("pre_tokenizer Sequence needs a 'pretokenizers' array");
    for (const auto& p : j["pretokenizers"]) TERN_RETURN_IF_ERROR(parse_pre_tokenizer(p, steps));
    return Status::ok();
  }
  if (type == "Split") {
    SplitSpec s;
    const json& pat = j.value("pattern", json());
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
      s.pattern = pat["Regex"].get<std::string>();
    } else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
      s.pattern = pat["String"].get<std::string>();
      s.is_regex = false;
    } else {
      return Status::error("Split pre_tokenizer needs a pattern {\"Regex\": ...} or {\"String\": ...}");
    }
    const std::string b = j.value("behavior", std::string("Isolated"));
    if (b == "Removed") s.behavior = SplitBehavior::kRemoved;
    else if (b == "Isolated") s.behavior = SplitBehavior::kIsolated;
    else if (b == "MergedWithPrevious") s.behavior = SplitBehavior::kMergedWithPrevious;
    else if (b == "MergedWithNext") s.behavior = SplitBehavior::kMergedWithNext;
    else if (b == "Contiguous") s.behavior = SplitBehavior::kContiguous;
    else return Status::error("unsupported Split behavior '" + b + "'");
    s.invert = get_bool(j, "invert", false);
    steps.emplace_back(std::move(s));
    return Status::ok();
  }
  if (type == "ByteLevel") {
    ByteLevelPreSpec b;
    b.add_prefix_space = get_bool(j, "add_prefix_space", true);
    b.use_regex = get_bool(j, "use_regex", true);
    steps.emplace_back(b);
    return Status::ok();
  }
  if (type == "Metaspace") {
    TERN_ASSIGN_OR_RETURN(MetaspaceSpec m, parse_metaspace(j));
    steps.emplace_back(std::move(m));
    return Status::ok();
  }
  return Status::error("unsupported pre_tokenizer type '" + (type.empty() ? j.dump() : type) + "'");
}

Status parse_bpe(const json& m, BpeSpec& bpe) {
  const std::string type = type_of(m);
  if (type != "BPE") {
    // Older files omit model.type for BPE; accept that shape only when vocab and merges are both present.
    if (!(type.empty() && m.is_object() && m.contains("vocab") && m.contains("merges")))
      return Status::error("unsupported model type '" + (type.empty() ? std::string("(none)") : type) + "'");
  }
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].is_number() && m["dropout"].get<double>() > 0)
    return Status::error("unsupported BPE option: dropout");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && !m[key].is_null() && !(m[key].is_string() && m[key].get<std::string>().empty()))
      return Status::error(std::string("unsupported BPE option: ") + key);
  }
  if (!m.contains("vocab") || !m["vocab"].is_object()) return Status::error("BPE model needs a 'vocab' object");
  for (const auto& [tok, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      return Status::error("vocab entry '" + tok + "' has an invalid id");
    bpe.vocab.emplace_back(tok, id.get<int32_t>());
  }
  if (!m.contains("merges") || !m["merges"].is_array()) return Status::error("BPE model needs a 'merges' array");
  bpe.merges.reserve(m["merges"].size());
  for (const auto& e : m["merges"]) {
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        return Status::error("merge '" + s + "' is not two tokens separated by one space");
      bpe.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      bpe.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      return Status::error("merge entry " + e.dump() + " is neither \"a b\" nor [a, b]");
    }
  }
  bpe.ignore_merges = get_bool(m, "ignore_merges", false);
  bpe.byte_fallback = get_bool(m, "byte_fallback", false);
  bpe.fuse_unk = get_bool(m, "fuse_unk", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) bpe.unk_token = m["unk_token"].get<std::string>();
  return Status::ok();
}

Status parse_template_items(const json& items, const json& special, TemplateSpec& out) {
  if (!items.is_array()) return Status::error("TemplateProcessing 'single' must be an array");
  for (const auto& it : items) {
    TemplatePiece p;
    if (it.contains("Sequence")) {
      const std::string id = it["Sequence"].value("id", std::string());
      if (id != "A") return Status::error("TemplateProcessing single template uses sequence '" + id + "'");
      p.is_sequence = true;
    } else if (it.contains("SpecialToken") && it["SpecialToken"].contains("id")) {
      const std::string name = it["SpecialToken"]["id"].get<std::string>();
      if (!special.is_object() || !special.contains(name) || !special[name].contains("ids") ||
          !special[name]["ids"].is_array())
        return Status::error("TemplateProcessing special token '" + name + "' is not in special_tokens");
      for (const auto& id : special[name]["ids"]) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0)
          return Status::error("TemplateProcessing special token '" + name + "' has an invalid id");
        p.ids.push_back(id.get<int32_t>());
      }
    } else {
      return Status::error("unsupported TemplateProcessing item " + it.dump());
    }
    out.single.push_back(std::move(p));
  }
  return Status::ok();
}

Status parse_post_processor(const json& j, PostProcessorSpec& out) {
  if (j.is_null()) return Status::ok();
  const std::string type = type_of(j);
  if (type == "ByteLevel") return Status::ok();  // only adjusts offsets, which tern does not report
  if (type == "TemplateProcessing") {
    if (std::holds_alternative<TemplateSpec>(out))
      return Status::error("more than one TemplateProcessing post_processor");
    TemplateSpec t;
    TERN_RETURN_IF_ERROR(parse_template_items(j.value("single", json()), j.value("special_tokens", json()), t));
    out = std::move(t);
    return Status::ok();
  }
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array())
      return Status::error("post_processor Sequence needs a 'processors' array");
    for (const auto& p : j["processors"]) TERN_RETURN_IF_ERROR(parse_post_processor(p, out));
    return Status::ok();
  }
  return Status::error("unsupported post_processor type '" + (type.empty() ? j.dump() : type) + "'");
}

Status parse_normalizer(const json& j, std::vector<NormalizerStep>& out) {
  if (j.is_null()) return Status::ok();
  const std::string type = type_of(j);
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      return Status::error("normalizer Sequence needs a 'normalizers' array");
    for (const auto& n : j["normalizers"]) TERN_RETURN_IF_ERROR(parse_normalizer(n, out));
    return Status::ok();
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    out.push_back(UnicodeNormSpec{type == "NFC"    ? UnicodeForm::kNFC
                                  : type == "NFD"  ? UnicodeForm::kNFD
                                  : type == "NFKC" ? UnicodeForm::kNFKC
                                                   : UnicodeForm::kNFKD});
    return Status::ok();
  }
  if (type == "Prepend" && j.contains("prepend") && j["prepend"].is_string()) {
    out.push_back(PrependSpec{j["prepend"].get<std::string>()});
    return Status::ok();
  }
  if (type == "Replace") {
    const json& pat = j.value("pattern", json());
    if (!pat.is_object() || !pat.contains("String") || !pat["String"].is_string())
      return Status::error("unsupported Replace normalizer pattern " + pat.dump() + " (only String)");
    if (!j.contains("content") || !j["content"].is_string()) return Status::error("Replace normalizer needs 'content'");
    if (pat["String"].get<std::string>().empty()) return Status::error("Replace normalizer with an empty pattern");
    out.push_back(ReplaceSpec{pat["String"].get<std::string>(), j["content"].get<std::string>()});
    return Status::ok();
  }
  return Status::error("unsupported normalizer type '" + (type.empty() ? j.dump() : type) + "'");
}

// Metaspace as a decoder: the replacement becomes a space, except in the first token, where it is dropped unless
// the scheme is "never" (the prepended one is not text).
Status set_metaspace_decoder(const json& j, PieceDecoderSpec& d) {
  TERN_ASSIGN_OR_RETURN(MetaspaceSpec m, parse_metaspace(j));
  d.from = m.replacement;
  d.to = " ";
  d.drop_in_first = m.prepend_scheme != PrependScheme::kNever;
  return Status::ok();
}

// The SentencePiece decoder chain, in Hugging Face's order: Replace (or Metaspace), ByteFallback, Fuse, Strip.
// Each step works per token except after Fuse, so Strip is only accepted after Fuse (it then strips the text once).
Status parse_piece_decoder(const json& steps, PieceDecoderSpec& d) {
  int stage = 0;  // each step must come after the previous kinds
  d.from.clear();
  for (const auto& s : steps) {
    const std::string type = type_of(s);
    if (type == "Metaspace" && stage == 0) {
      TERN_RETURN_IF_ERROR(set_metaspace_decoder(s, d));
      stage = 1;
    } else if (type == "Replace" && stage == 0) {
      const json& pat = s.value("pattern", json());
      if (!pat.is_object() || !pat.contains("String") || !pat["String"].is_string() || !s.contains("content") ||
          !s["content"].is_string())
        return Status::error("unsupported Replace decoder " + s.dump());
      d.from = pat["String"].get<std::string>();
      d.to = s["content"].get<std::string>();
      stage = 1;
    } else if (type == "ByteFallback" && stage <= 1) {
      d.byte_fallback = true;
      stage = 2;
    } else if (type == "Fuse" && stage <= 2) {
      stage = 3;
    } else if (type == "Strip" && stage == 3 && s.value("content", std::string()) == " " &&
               s.value("stop", 0) == 0 && s.value("start", 0) >= 0) {
      d.strip_start = s.value("start", 0);
      stage = 4;
    } else {
      return Status::error("unsupported decoder step '" + (type.empty() ? s.dump() : type) +
                           "' in a decoder Sequence (supported: Replace or Metaspace, ByteFallback, Fuse, Strip in "
                           "that order)");
    }
  }
  return Status::ok();
}

Status parse_decoder(const json& j, DecoderSpec& out) {
  if (j.is_null()) return Status::ok();
  const std::string type = type_of(j);
  if (type == "ByteLevel") {
    out = ByteLevelDecoderSpec{};
    return Status::ok();
  }
  if (type == "Metaspace") {
    PieceDecoderSpec d;
    TERN_RETURN_IF_ERROR(set_metaspace_decoder(j, d));
    out = d;
    return Status::ok();
  }
  if (type == "Sequence" && j.contains("decoders") && j["decoders"].is_array()) {
    PieceDecoderSpec d;
    TERN_RETURN_IF_ERROR(parse_piece_decoder(j["decoders"], d));
    out = d;
    return Status::ok();
  }
  return Status::error("unsupported decoder type '" + (type.empty() ? j.dump() : type) + "'");
}

Result<TokenizerSpec> parse(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::error("tokenizer.json is not valid JSON");
  if (!j.is_object()) return Status::error("tokenizer.json must hold a JSON object");
  TokenizerSpec spec;
  if (!j.contains("model")) return Status::error("tokenizer.json has no 'model'");
  TERN_RETURN_IF_ERROR(parse_bpe(j["model"], spec.model).with_context("model"));
  TERN_RETURN_IF_ERROR(parse_added_tokens(j.value("added_tokens", json()), spec));
  TERN_RETURN_IF_ERROR(parse_normalizer(j.value("normalizer", json()), spec.normalizer));
  TERN_RETURN_IF_ERROR(parse_pre_tokenizer(j.value("pre_tokenizer", json()), spec.pre_tokenizer));
  TERN_RETURN_IF_ERROR(parse_post_processor(j.value("post_processor", json()), spec.post_processor));
  TERN_RETURN_IF_ERROR(parse_decoder(j.value("decoder", json()), spec.decoder));
  const json& trunc = j.value("truncation", json());
  const json& pad = j.value("padding", json());
  if (!trunc.is_null()) return Status::error("unsupported feature: truncation");
  if (!pad.is_null()) return Status::error("unsupported feature: padding");
  return spec;
}

}  // namespace

Result<TokenizerSpec> parse_tokenizer_json(const std::string& text) {
  // nlohmann throws on type mismatches inside well-formed JSON; turn those into a Status too.
  try {
    return parse(text);
  } catch (const std::exception& e) {
    return Status::error(std::string("malformed tokenizer.json: ") + e.what());
  }
}

}  // namespace tern::tok
