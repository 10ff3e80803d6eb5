// GGUF tokenizer metadata -> the Hugging Face tokenizer.json it stands for, parsed by the one
// tokenizer implementation (text/tokenizer). tokenizer.ggml.model:
//   "gpt2"  byte-level BPE: tokens + merges; tokenizer.ggml.pre names the split regex
//           (llama-bpe/llama3: Llama 3's; qwen2: Qwen2's, with NFC; default/gpt2: GPT-2's ByteLevel regex);
//   "llama" SentencePiece BPE: tokens + scores (no merges): merges are rebuilt from the scores (every
//           way to split a piece into two pieces, ranked by the piece's score, as Hugging Face's
//           SentencePiece converter does), with the Llama-2 normalizer/decoder ("▁" for spaces,
//           <0xXX> byte fallback).
// token_type: 3 (control) become special added tokens, 4 (user-defined) plain added tokens.
#include "text/gguf_tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>

#include "text/tokenizer/tokenizer_spec.h"
#include "text/tokenizer/utf8.h"

namespace tern {

namespace {

using nlohmann::json;

constexpr int kControl = 3, kUserDefined = 4, kUnknown = 2, kByte = 6;

const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

json split_then_bytes(const char* regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           json::array({{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}};
}

// UTF-8 character boundaries of s (0 and s.size() included).
std::vector<size_t> char_bounds(const std::string& s) {
  std::vector<size_t> b;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) b.push_back(i);
  }
  b.push_back(s.size());
  return b;
}

// (left id, right id) pairs in rank order.
std::vector<std::pair<int32_t, int32_t>> spm_merges(const std::vector<std::string>& tokens,
                                                    const std::vector<double>& scores, const std::vector<int64_t>& types) {
  std::unordered_map<std::string, int32_t> id;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types.empty() || types[i] == 1) id.emplace(tokens[i], int32_t(i));
  }
  struct Merge {
    double score;
    int32_t a, b;
  };
  std::vector<Merge> merges;
  for (const auto& [tok, tid] : id) {
    const auto bounds = char_bounds(tok);
    for (size_t k = 1; k + 1 < bounds.size(); ++k) {
      auto ia = id.find(tok.substr(0, bounds[k])), ib = id.find(tok.substr(bounds[k]));
      if (ia != id.end() && ib != id.end()) merges.push_back({scores[size_t(tid)], ia->second, ib->second});
    }
  }
  std::sort(merges.begin(), merges.end(), [](const Merge& x, const Merge& y) {
    if (x.score != y.score) return x.score > y.score;
    return x.a != y.a ? x.a < y.a : x.b < y.b;
  });
  std::vector<std::pair<int32_t, int32_t>> out;
  out.reserve(merges.size());
  for (const auto& m : merges) out.emplace_back(m.a, m.b);
  return out;
}

// The tokenizer.json the metadata stands for. direct: the vocabulary and merges go there instead of into
// the JSON (which then holds an empty vocab and merges): tens of megabytes of JSON not written and parsed back.
Result<GgufTokenizerJson> tokenizer_json(const GgufFile& g, tok::BpeSpec* direct) {
  TERN_ASSIGN_OR_RETURN(std::string model, g.get_string("tokenizer.ggml.model"));
  const GgufValue* toks = g.find("tokenizer.ggml.tokens");
  if (!toks || toks->type != GgufValueType::ARRAY || toks->array_type != GgufValueType::STRING || toks->strings.empty()) {
    return g.error("metadata 'tokenizer.ggml.tokens' must be a non-empty array of strings");
  }
  const std::vector<std::string>& tokens = toks->strings;
  const size_t n = tokens.size();
  // The metadata becomes tokenizer.json text: JSON strings must be UTF-8 (and tokenizers' are).
  // Each id must keep its token: tokenizer.json maps strings to ids, so a repeated string would leave an id
  // without a token (and the tokenizer refuses such gaps).
  std::unordered_map<std::string_view, size_t> first_id;
  for (size_t i = 0; i < n; ++i) {
    if (!tok::utf8_is_valid(tokens[i])) return g.error(fmt::format("tokenizer.ggml.tokens[{}] is not valid UTF-8", i));
    auto [it, fresh] = first_id.emplace(tokens[i], i);
    if (!fresh) {
      return g.error(fmt::format("tokenizer.ggml.tokens[{}] repeats token '{}' of id {} (not supported: one of the "
                                 "two ids would have no token)",
                                 i, tokens[i].substr(0, 40), it->second));
    }
  }
  std::vector<int64_t> types;
  if (const GgufValue* t = g.find("tokenizer.ggml.token_type")) {
    if (t->type != GgufValueType::ARRAY || t->ints.size() != n) {
      return g.error("metadata 'tokenizer.ggml.token_type' must be an integer array as long as the tokens");
    }
    types = t->ints;
  }
  auto type_of = [&](size_t i) { return types.empty() ? int64_t(1) : types[i]; };
  auto opt_id = [&](const char* key) -> Result<int64_t> {
    if (!g.find(key)) return int64_t(-1);
    return g.get_int(key, 0, int64_t(n) - 1);
  };
  TERN_ASSIGN_OR_RETURN(int64_t bos, opt_id("tokenizer.ggml.bos_token_id"));
  TERN_ASSIGN_OR_RETURN(int64_t eos, opt_id("tokenizer.ggml.eos_token_id"));
  TERN_ASSIGN_OR_RETURN(int64_t unk, opt_id("tokenizer.ggml.unknown_token_id"));
  const bool spm = model == "llama";
  bool add_bos = spm, add_eos = false;
  if (const GgufValue* v = g.find("tokenizer.ggml.add_bos_token"); v && v->type == GgufValueType::BOOL) add_bos = v->i;
  if (const GgufValue* v = g.find("tokenizer.ggml.add_eos_token"); v && v->type == GgufValueType::BOOL) add_eos = v->i;

  json vocab = json::object();
  json added = json::array();
  if (direct) direct->vocab.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (direct) {
      direct->vocab.emplace_back(tokens[i], int32_t(i));
    } else {
      vocab[tokens[i]] = i;
    }
    const int64_t t = type_of(i);
    if (t == kControl || t == kUserDefined || (spm && t == kUnknown)) {
      added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", t == kUserDefined}, {"special", t != kUserDefined}});
    }
  }
  json j = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added}};
  json bpe = {{"type", "BPE"}, {"dropout", nullptr}, {"vocab", vocab}};

  if (model == "gpt2") {
    const GgufValue* merges = g.find("tokenizer.ggml.merges");
    if (!merges || merges->type != GgufValueType::ARRAY || merges->array_type != GgufValueType::STRING) {
      return g.error("metadata 'tokenizer.ggml.merges' (array of strings) is required for a gpt2 tokenizer");
    }
    std::string pre = "default";
    if (g.find("tokenizer.ggml.pre")) {
      TERN_ASSIGN_OR_RETURN(pre, g.get_string("tokenizer.ggml.pre"));
    }
    j["normalizer"] = nullptr;
    bool ignore_merges = false;
    if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "smaug-bpe") {
      j["pre_tokenizer"] = split_then_bytes(kLlama3Regex);
      ignore_merges = true;
    } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
      j["pre_tokenizer"] = split_then_bytes(kQwen2Regex);
      j["normalizer"] = {{"type", "NFC"}};
    } else if (pre == "default" || pre == "gpt2" || pre == "gpt-2") {
      j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    } else {
      return g.error(fmt::format("tokenizer.ggml.pre '{}' is not supported (llama-bpe, qwen2, default)", pre));
    }
    for (size_t i = 0; i < merges->strings.size(); ++i) {
      if (!tok::utf8_is_valid(merges->strings[i]))
        return g.error(fmt::format("tokenizer.ggml.merges[{}] is not valid UTF-8", i));
    }
    if (direct) {
      bpe["merges"] = json::array();
      direct->merges.resize(merges->strings.size());
      for (size_t i = 0; i < merges->strings.size(); ++i) {
        const Status split = tok::split_merge(merges->strings[i], &direct->merges[i]);
        if (!split.is_ok()) return g.error("tokenizer metadata: model: " + split.message());
      }
    } else {
      bpe["merges"] = merges->strings;
    }
    bpe["ignore_merges"] = ignore_merges;
    j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  } else if (spm) {
    const GgufValue* sc = g.find("tokenizer.ggml.scores");
    if (!sc || sc->type != GgufValueType::ARRAY || sc->floats.size() != n) {
      return g.error("metadata 'tokenizer.ggml.scores' (one float per token) is required for a llama tokenizer");
    }
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                    {{"type", "Replace"}, {"pattern", {{"String", " "}}},
                                                     {"content", "\xE2\x96\x81"}}})}};
    j["pre_tokenizer"] = nullptr;
    const auto pairs = spm_merges(tokens, sc->floats, types);
    bpe["merges"] = json::array();
    if (direct) direct->merges.reserve(pairs.size());
    for (const auto& [a, b] : pairs) {
      if (direct) {
        direct->merges.emplace_back(tokens[size_t(a)], tokens[size_t(b)]);
      } else {
        bpe["merges"].push_back(json::array({tokens[size_t(a)], tokens[size_t(b)]}));
      }
    }
    bpe["byte_fallback"] = std::any_of(types.begin(), types.end(), [](int64_t t) { return t == kByte; });
    bpe["fuse_unk"] = true;
    if (unk >= 0) bpe["unk_token"] = tokens[size_t(unk)];
    j["decoder"] = {{"type", "Sequence"},
                    {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                                              {{"type", "ByteFallback"}},
                                              {{"type", "Fuse"}},
                                              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  } else {
    return g.error(fmt::format("tokenizer.ggml.model '{}' is not supported (gpt2, llama)", model));
  }
  j["model"] = bpe;

  // BOS / EOS around the text, as the post-processor template Hugging Face would carry.
  json single = json::array(), special = json::object();
  auto special_piece = [&](int64_t id) {
    single.push_back({{"SpecialToken", {{"id", tokens[size_t(id)]}, {"type_id", 0}}}});
    special[tokens[size_t(id)]] = {{"id", tokens[size_t(id)]}, {"ids", {id}}, {"tokens", {tokens[size_t(id)]}}};
  };
  if (add_bos && bos >= 0) special_piece(bos);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (add_eos && eos >= 0) special_piece(eos);
  j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", special}};

  json config = json::object();
  if (bos >= 0) config["bos_token"] = tokens[size_t(bos)];
  if (eos >= 0) config["eos_token"] = tokens[size_t(eos)];
  GgufTokenizerJson out;
  out.tokenizer_json = j.dump();
  out.config_json = config.dump();
  if (g.find("tokenizer.chat_template")) {
    TERN_ASSIGN_OR_RETURN(out.chat_template, g.get_string("tokenizer.chat_template"));
  }
  out.bos_token = bos >= 0 ? tokens[size_t(bos)] : "";
  out.eos_token = eos >= 0 ? tokens[size_t(eos)] : "";
  return out;
}

}  // namespace

Result<GgufTokenizerJson> gguf_tokenizer_json(const GgufFile& g) { return tokenizer_json(g, nullptr); }

Result<Tokenizer> gguf_tokenizer(const GgufFile& g) {
  // The small parts (pre-tokenizer, decoder, post-processor) through tokenizer.json's reader; the
  // vocabulary and merges straight from the metadata arrays (as gguf_tokenizer_json would spell them).
  tok::BpeSpec direct;
  TERN_ASSIGN_OR_RETURN(GgufTokenizerJson tj, tokenizer_json(g, &direct));
  auto spec = tok::parse_tokenizer_json(tj.tokenizer_json);
  if (!spec.is_ok()) return g.error("tokenizer metadata: " + spec.status().message());
  spec->model.vocab = std::move(direct.vocab);
  spec->model.merges = std::move(direct.merges);
  auto t = Tokenizer::from_spec(std::move(spec).value(), tj.config_json);
  if (!t.is_ok()) return g.error("tokenizer metadata: " + t.status().message());
  return t;
}

Result<ModelChatTemplate> gguf_chat_template(const GgufFile& g) {
  tok::BpeSpec unused;  // the template needs the BOS / EOS strings, not the vocabulary as JSON
  TERN_ASSIGN_OR_RETURN(GgufTokenizerJson tj, tokenizer_json(g, &unused));
  if (tj.chat_template.empty()) return g.error("no tokenizer.chat_template in the metadata");
  TERN_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::parse(tj.chat_template, g.path() + ": tokenizer.chat_template"));
  nlohmann::json special = nlohmann::json::object();
  if (!tj.bos_token.empty()) special["bos_token"] = tj.bos_token;
  if (!tj.eos_token.empty()) special["eos_token"] = tj.eos_token;
  return ModelChatTemplate{std::move(t), std::move(special)};
}

}  // namespace tern
