// tokenizer.json -> TokenizerSpec. Every field that changes how text is tokenized is either understood or rejected;
// nothing is silently ignored.
#include <nlohmann/json.hpp>

#include "formats/json_util.h"
#include "text/tokenizer/tokenizer_json_util.h"
#include "text/tokenizer/tokenizer_spec.h"
#include "text/tokenizer/utf8.h"

namespace tern::tok {

std::string type_of(const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "";
  return j["type"].get<std::string>();
}

bool fits_id(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(INT32_MAX);
  return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX;
}

const json& field(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

Status check_nesting(int depth, const char* stage) {
  if (depth < 32) return Status::ok();
  return Status::error(std::string(stage) + " Sequences nested deeper than 32");
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
    const json& v = j["prepend_scheme"];
    const std::string s = v.is_string() ? v.get<std::string>() : json_excerpt(v);
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

namespace {

Status parse_added_tokens(const json& j, TokenizerSpec& spec) {
  if (j.is_null()) return Status::ok();
  if (!j.is_array()) return Status::error("added_tokens must be an array");
  for (const auto& t : j) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string())
      return Status::error("added_tokens entry needs an integer id and a string content");
    AddedTokenSpec a;
    if (!fits_id(t["id"])) return Status::error("added token id " + json_excerpt(t["id"]) + " is not a token id");
    a.id = t["id"].get<int32_t>();
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

Status parse_pre_tokenizer(const json& j, std::vector<PreTokenizerStep>& steps, int depth = 0) {
  if (j.is_null()) return Status::ok();
  const std::string type = type_of(j);
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      return Status::error("pre_tokenizer Sequence needs a 'pretokenizers' array");
    TERN_RETURN_IF_ERROR(check_nesting(depth, "pre_tokenizer"));
    for (const auto& p : j["pretokenizers"]) TERN_RETURN_IF_ERROR(parse_pre_tokenizer(p, steps, depth + 1));
    return Status::ok();
  }
  if (type == "Split") {
    SplitSpec s;
    const json& pat = field(j, "pattern");
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
  return Status::error("unsupported pre_tokenizer type '" + (type.empty() ? json_excerpt(j) : type) + "'");
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
    if (!fits_id(id)) return Status::error("vocab entry '" + tok + "' has an invalid id");
    bpe.vocab.emplace_back(tok, id.get<int32_t>());
  }
  if (!m.contains("merges") || !m["merges"].is_array()) return Status::error("BPE model needs a 'merges' array");
  bpe.merges.reserve(m["merges"].size());
  for (const auto& e : m["merges"]) {
    if (e.is_string()) {
      TERN_RETURN_IF_ERROR(split_merge(e.get_ref<const std::string&>(), &bpe.merges.emplace_back()));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      bpe.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      return Status::error("merge entry " + json_excerpt(e) + " is neither \"a b\" nor [a, b]");
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
        if (!fits_id(id)) return Status::error("TemplateProcessing special token '" + name + "' has an invalid id");
        p.ids.push_back(id.get<int32_t>());
      }
    } else {
      return Status::error("unsupported TemplateProcessing item " + json_excerpt(it));
    }
    out.single.push_back(std::move(p));
  }
  return Status::ok();
}

Status parse_post_processor(const json& j, PostProcessorSpec& out, int depth = 0) {
  if (j.is_null()) return Status::ok();
  const std::string type = type_of(j);
  if (type == "ByteLevel") return Status::ok();  // only adjusts offsets, which tern does not report
  if (type == "TemplateProcessing") {
    if (std::holds_alternative<TemplateSpec>(out))
      return Status::error("more than one TemplateProcessing post_processor");
    TemplateSpec t;
    TERN_RETURN_IF_ERROR(parse_template_items(field(j, "single"), field(j, "special_tokens"), t));
    out = std::move(t);
    return Status::ok();
  }
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array())
      return Status::error("post_processor Sequence needs a 'processors' array");
    TERN_RETURN_IF_ERROR(check_nesting(depth, "post_processor"));
    for (const auto& p : j["processors"]) TERN_RETURN_IF_ERROR(parse_post_processor(p, out, depth + 1));
    return Status::ok();
  }
  return Status::error("unsupported post_processor type '" + (type.empty() ? json_excerpt(j) : type) + "'");
}

Status parse_normalizer(const json& j, std::vector<NormalizerStep>& out, int depth = 0) {
  if (j.is_null()) return Status::ok();
  const std::string type = type_of(j);
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      return Status::error("normalizer Sequence needs a 'normalizers' array");
    TERN_RETURN_IF_ERROR(check_nesting(depth, "normalizer"));
    for (const auto& n : j["normalizers"]) TERN_RETURN_IF_ERROR(parse_normalizer(n, out, depth + 1));
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
    const json& pat = field(j, "pattern");
    if (!pat.is_object() || !pat.contains("String") || !pat["String"].is_string())
      return Status::error("unsupported Replace normalizer pattern " + json_excerpt(pat) + " (only String)");
    if (!j.contains("content") || !j["content"].is_string()) return Status::error("Replace normalizer needs 'content'");
    if (pat["String"].get<std::string>().empty()) return Status::error("Replace normalizer with an empty pattern");
    out.push_back(ReplaceSpec{pat["String"].get<std::string>(), j["content"].get<std::string>()});
    return Status::ok();
  }
  return Status::error("unsupported normalizer type '" + (type.empty() ? json_excerpt(j) : type) + "'");
}

// tokenizer.json as a JSON DOM, but for model.vocab and model.merges, the bulk of the file (Llama 3's:
// 128k entries and 280k merges), which go straight into a BpeSpec as they are read: nlohmann's DOM would
// hold each in a std::map node or a json string, then walk and free them again (a third of the load
// time). The DOM keeps an empty object / array in their place, so parse_bpe checks the rest as before.
// The checks on them are parse_bpe's (ids in range, "a b" or [a, b] merges); a repeated "model" or
// "vocab" key keeps the last, as the DOM does.
class TokenizerJsonSax : public nlohmann::json_sax<json> {
 public:
  explicit TokenizerJsonSax(BpeSpec* bulk) : bulk_(bulk) {}
  json root;
  std::string error;  // why the handler stopped the parse ("" when the JSON itself is malformed)

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(json::number_integer_t v) override {
    if (mode_ == Mode::kVocab) return vocab_id(v >= 0 && v <= INT32_MAX, v);
    return value(json(v));
  }
  bool number_unsigned(json::number_unsigned_t v) override {
    if (mode_ == Mode::kVocab) return vocab_id(v <= uint64_t(INT32_MAX), int64_t(v));
    return value(json(v));
  }
  bool number_float(json::number_float_t v, const json::string_t&) override { return value(json(v)); }
  bool binary(json::binary_t& v) override { return value(json(std::move(v))); }
  bool string(json::string_t& v) override {
    if (mode_ == Mode::kMerges) {
      Status s = split_merge(v, &bulk_->merges.emplace_back());
      return s.is_ok() || fail(s.message());
    }
    if (mode_ == Mode::kMergePair) {
      if (pair_n_ >= 2) return fail("merge entry is neither \"a b\" nor [a, b] (an array of more than two)");
      (pair_n_++ == 0 ? pair_.first : pair_.second) = std::move(v);
      return true;
    }
    return value(json(std::move(v)));
  }
  bool key(json::string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) override {
    if (mode_ != Mode::kDom) return value(json::object());  // an error in the bulk modes
    if (model_ && stack_.back() == model_ && key_ == "vocab") {
      (*model_)["vocab"] = json::object();
      bulk_->vocab.clear();
      mode_ = Mode::kVocab;
      return true;
    }
    const bool is_model = stack_.size() == 1 && stack_.back()->is_object() && key_ == "model";
    json* o = place(json::object());
    stack_.push_back(o);
    if (is_model) {
      model_ = o;
      bulk_->vocab.clear(), bulk_->merges.clear();
    }
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kDom;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kMergePair, pair_n_ = 0;
      return true;
    }
    if (mode_ != Mode::kDom) return value(json::array());  // an error in the other bulk modes
    if (model_ && stack_.back() == model_ && key_ == "merges") {
      (*model_)["merges"] = json::array();
      bulk_->merges.clear();
      mode_ = Mode::kMerges;
      return true;
    }
    stack_.push_back(place(json::array()));
    return true;
  }
  bool end_array() override {
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kDom;
      return true;
    }
    if (mode_ == Mode::kMergePair) {
      if (pair_n_ != 2) return fail("merge entry is neither \"a b\" nor [a, b] (an array of fewer than two)");
      bulk_->merges.push_back(std::move(pair_));
      mode_ = Mode::kMerges;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  enum class Mode { kDom, kVocab, kMerges, kMergePair };

  bool fail(std::string why) {
    error = "model: " + std::move(why);
    return false;
  }
  bool vocab_id(bool fits, int64_t id) {
    if (!fits) return fail("vocab entry '" + key_ + "' has an invalid id");
    bulk_->vocab.emplace_back(std::move(key_), int32_t(id));
    return true;
  }
  // A value where the DOM is being built; inside the vocab or merges, one that has no place there.
  bool value(json v) {
    switch (mode_) {
      case Mode::kDom: place(std::move(v)); return true;
      case Mode::kVocab: return fail("vocab entry '" + key_ + "' has an invalid id");
      case Mode::kMerges:
      case Mode::kMergePair: return fail("merge entry " + json_excerpt(v) + " is neither \"a b\" nor [a, b]");
    }
    return false;
  }
  json* place(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }

  BpeSpec* bulk_;
  std::vector<json*> stack_;  // the open containers of the DOM (objects: std::map nodes, which do not move)
  json* model_ = nullptr;     // the root's "model" object
  std::string key_;
  Mode mode_ = Mode::kDom;
  std::pair<std::string, std::string> pair_;
  int pair_n_ = 0;
};

Result<TokenizerSpec> parse(const std::string& text) {
  BpeSpec bulk;
  TokenizerJsonSax sax(&bulk);
  if (!json::sax_parse(text, &sax)) {
    return Status::error(sax.error.empty() ? std::string("tokenizer.json is not valid JSON") : sax.error);
  }
  json j = std::move(sax.root);
  if (!j.is_object()) return Status::error("tokenizer.json must hold a JSON object");
  TokenizerSpec spec;
  if (!j.contains("model")) return Status::error("tokenizer.json has no 'model'");
  TERN_RETURN_IF_ERROR(parse_bpe(j["model"], spec.model).with_context("model"));
  // parse_bpe saw the empty stand-ins; the entries themselves were read into `bulk`.
  spec.model.vocab = std::move(bulk.vocab);
  spec.model.merges = std::move(bulk.merges);
  TERN_RETURN_IF_ERROR(parse_added_tokens(field(j, "added_tokens"), spec));
  TERN_RETURN_IF_ERROR(parse_normalizer(field(j, "normalizer"), spec.normalizer));
  TERN_RETURN_IF_ERROR(parse_pre_tokenizer(field(j, "pre_tokenizer"), spec.pre_tokenizer));
  TERN_RETURN_IF_ERROR(parse_post_processor(field(j, "post_processor"), spec.post_processor));
  TERN_RETURN_IF_ERROR(parse_decoder(field(j, "decoder"), spec.decoder));
  const json& trunc = field(j, "truncation");
  const json& pad = field(j, "padding");
  if (!trunc.is_null()) return Status::error("unsupported feature: truncation");
  if (!pad.is_null()) return Status::error("unsupported feature: padding");
  return spec;
}

}  // namespace

Status split_merge(std::string_view s, std::pair<std::string, std::string>* out) {
  const size_t sp = s.find(' ');
  if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos)
    return Status::error("merge '" + std::string(s) + "' is not two tokens separated by one space");
  out->first.assign(s.substr(0, sp));
  out->second.assign(s.substr(sp + 1));
  return Status::ok();
}

Result<TokenizerSpec> parse_tokenizer_json(const std::string& text) {
  // nlohmann throws on type mismatches inside well-formed JSON; turn those into a Status too.
  try {
    return parse(text);
  } catch (const std::exception& e) {
    return Status::error(std::string("malformed tokenizer.json: ") + e.what());
  }
}

}  // namespace tern::tok
