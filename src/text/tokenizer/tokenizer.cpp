#include "text/tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "text/tokenizer/tokenizer_impl.h"
#include "text/tokenizer/tokenizer_spec.h"
#include "text/tokenizer/utf8.h"

namespace tern {
namespace {

// tokenizer_config.json: the fields that change encoding or name special tokens.
struct TokenizerConfig {
  std::optional<std::string> bos_token, eos_token;
  std::optional<bool> add_bos_token, add_eos_token;
};

Result<TokenizerConfig> parse_config(const std::string& text) {
  TokenizerConfig c;
  if (text.empty()) return c;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::error("tokenizer_config.json is not a JSON object");
  // A token is written either as a string or as an AddedToken object {"content": ...}.
  auto token = [&](const char* key) -> std::optional<std::string> {
    if (!j.contains(key)) return std::nullopt;
    const auto& v = j[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
  };
  c.bos_token = token("bos_token");
  c.eos_token = token("eos_token");
  if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) c.add_bos_token = j["add_bos_token"].get<bool>();
  if (j.contains("add_eos_token") && j["add_eos_token"].is_boolean()) c.add_eos_token = j["add_eos_token"].get<bool>();
  return c;
}

// A token in an error message: on one line, not too long.
std::string shown(const std::string& t) {
  std::string out;
  for (unsigned char c : t.substr(0, 40)) {
    if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return t.size() > 40 ? out + "..." : out;
}

// Ids run from 0 without gaps (what Hugging Face's vocab size counts), so every id below vocab_size() is a token:
// a stray one (an added token at 1,000,000 beside 8,192 vocab entries) would otherwise pass tokenize/detokenize
// although no model row stands behind it. `n`: the largest id + 1.
Status check_dense_ids(const tok::TokenizerSpec& spec, size_t n) {
  if (spec.model.vocab.empty()) return Status::error("the model vocabulary is empty");
  std::vector<uint8_t> used(n, 0);
  for (const auto& [tok, id] : spec.model.vocab) used[size_t(id)] = 1;
  for (const auto& a : spec.added_tokens) used[size_t(a.id)] = 1;
  const auto hole = std::find(used.begin(), used.end(), uint8_t(0));
  if (hole == used.end()) return Status::ok();
  const int64_t largest = int64_t(n) - 1, count = std::count(used.begin(), used.end(), uint8_t(1));
  std::string who;
  for (const auto& a : spec.added_tokens)
    if (a.id == largest) who = "added token '" + shown(a.content) + "'";
  for (const auto& [tok, id] : spec.model.vocab)
    if (who.empty() && id == largest) who = "vocab token '" + shown(tok) + "'";
  return Status::error(who + " has id " + std::to_string(largest) + ", outside the vocabulary of " +
                       std::to_string(count) + " tokens (ids must run from 0 without gaps; id " +
                       std::to_string(hole - used.begin()) + " is no token)");
}

}  // namespace

Result<Tokenizer> Tokenizer::from_json(const std::string& tokenizer_json, const std::string& config_json) {
  TERN_ASSIGN_OR_RETURN(tok::TokenizerSpec spec, tok::parse_tokenizer_json(tokenizer_json));
  return from_spec(std::move(spec), config_json);
}

Result<Tokenizer> Tokenizer::from_spec(tok::TokenizerSpec spec, const std::string& config_json) {
  TERN_ASSIGN_OR_RETURN(TokenizerConfig config, parse_config(config_json));
  auto impl = std::make_shared<Impl>();
  TERN_ASSIGN_OR_RETURN(impl->pre, tok::PreTokenizer::build(spec.pre_tokenizer));
  TERN_ASSIGN_OR_RETURN(impl->model, tok::BpeModel::build(spec.model, impl->pre.byte_level()));
  impl->normalizer = spec.normalizer;
  // Hugging Face matches a normalized token by its normalized content (Prepend("▁") turns "<x>" into "▁<x>").
  std::vector<tok::AddedTokenSpec> raw_tokens, norm_tokens;
  std::string tmp;
  for (const auto& a : spec.added_tokens) {
    if (!a.normalized) {
      raw_tokens.push_back(a);
      continue;
    }
    norm_tokens.push_back(a);
    tok::normalize(impl->normalizer, norm_tokens.back().content, tmp);
  }
  TERN_ASSIGN_OR_RETURN(impl->added, tok::AddedTokens::build(raw_tokens));
  TERN_ASSIGN_OR_RETURN(impl->added_norm, tok::AddedTokens::build(norm_tokens));

  // The full id space: model vocab plus added tokens (which may reuse model ids or extend past them). A normalized
  // token's string is its normalized content, as in Hugging Face (id_to_token, and so decode, see "▁<x>").
  impl->tokens = impl->model.tokens();
  for (const auto& a : spec.added_tokens) {
    if (a.id >= (1 << 26)) return Status::error("added token id " + std::to_string(a.id) + " is implausibly large");
    if (static_cast<size_t>(a.id) >= impl->tokens.size()) impl->tokens.resize(a.id + 1);
    impl->tokens[a.id] = a.content;
    impl->added_ids[a.content] = a.id;
  }
  TERN_RETURN_IF_ERROR(check_dense_ids(spec, impl->tokens.size()));
  for (const auto& a : norm_tokens) impl->tokens[a.id] = a.content;
  impl->special.assign(impl->tokens.size(), 0);
  for (const auto& a : spec.added_tokens) impl->special[a.id] = a.special ? 1 : 0;
  // Hugging Face's decode recognizes special tokens by their string, so a special token whose normalization
  // changed it ("<x>" -> "▁<x>") is not skipped; tern follows (such tokens are rare in real files).
  impl->skipped = impl->special;
  for (const auto& a : spec.added_tokens)
    if (impl->tokens[a.id] != a.content) impl->skipped[a.id] = 0;

  const int64_t n = static_cast<int64_t>(impl->tokens.size());
  TERN_ASSIGN_OR_RETURN(impl->post, tok::PostProcessor::build(spec.post_processor, n));
  TERN_ASSIGN_OR_RETURN(impl->decoder, tok::Decoder::build(spec.decoder, impl->tokens));

  Tokenizer t(impl);
  auto lookup = [&](const std::optional<std::string>& name, const char* what) -> Result<std::optional<int32_t>> {
    if (!name) return std::optional<int32_t>();
    auto id = t.token_to_id(*name);
    if (!id) return Status::error(std::string("tokenizer_config.json ") + what + " '" + *name + "' is not a token");
    return id;
  };
  TERN_ASSIGN_OR_RETURN(impl->bos, lookup(config.bos_token, "bos_token"));
  TERN_ASSIGN_OR_RETURN(impl->eos, lookup(config.eos_token, "eos_token"));
  // Without a config, the BOS is the single token the template puts first.
  if (!impl->bos && impl->post.prefix().size() == 1) impl->bos = impl->post.prefix()[0];
  // add_bos_token=false with no bos_token (Qwen) has nothing to remove; true needs a token to add.
  if (config.add_bos_token && (*config.add_bos_token || impl->bos)) {
    if (!impl->bos) return Status::error("tokenizer_config.json sets add_bos_token but names no bos_token");
    impl->post.override_bos(*impl->bos, *config.add_bos_token);
  }
  if (config.add_eos_token && (*config.add_eos_token || impl->eos)) {
    if (!impl->eos) return Status::error("tokenizer_config.json sets add_eos_token but names no eos_token");
    impl->post.override_eos(*impl->eos, *config.add_eos_token);
  }
  return t;
}

Result<Tokenizer> Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  const fs::path json_path = is_dir ? fs::path(path) / "tokenizer.json" : fs::path(path);
  const fs::path config_path = json_path.parent_path() / "tokenizer_config.json";
  TERN_ASSIGN_OR_RETURN(std::string json_text, read_text_file(json_path.string()));
  std::string config_text;
  if (fs::exists(config_path, ec)) {
    TERN_ASSIGN_OR_RETURN(config_text, read_text_file(config_path.string()));
  }
  auto t = from_json(json_text, config_text);
  if (!t.is_ok()) return t.status().with_context(json_path.string());
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<tok::AddedTokens::Segment> segments, sub;
  m.added.split(text, segments);
  std::string buf, tmp, norm;
  std::vector<tok::Piece> pieces;
  tok::BpeScratch scratch;
  // Pre-tokenizes and encodes buf; at_start: buf begins the input (for Metaspace's "first" scheme).
  auto encode_text = [&](std::string& b, bool at_start) {
    m.pre.split(b, pieces, at_start);
    for (const tok::Piece& p : pieces)
      m.model.encode(std::string_view(b).substr(p.begin, p.end - p.begin), ids, scratch);
  };
  for (const auto& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    buf.assign(text.data() + seg.begin, seg.end - seg.begin);
    if (!m.normalizer.empty()) tok::normalize(m.normalizer, buf, tmp);
    if (m.added_norm.empty()) {
      encode_text(buf, seg.begin == 0);
      continue;
    }
    norm.swap(buf);
    m.added_norm.split(norm, sub);
    for (const auto& s : sub) {
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      buf.assign(norm, s.begin, s.end - s.begin);
      encode_text(buf, seg.begin == 0 && s.begin == 0);
    }
  }
  m.post.apply(ids, add_special_tokens);
  return ids;
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::string out;
  tok::Decoder::State st = m.decoder.start();
  for (int32_t id : ids) {
    if (m.emits(id, skip_special_tokens)) m.decoder.append(id, st, out);
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const std::string bytes = decode_bytes(ids, skip_special_tokens);
  if (tok::utf8_is_valid(bytes)) return bytes;
  return tok::utf8_lossy(bytes);
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->tokens.size()); }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (const int32_t id = impl_->model.vocab_id(token); id >= 0) return id;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->tokens.size()) return "";
  return impl_->tokens[id];
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() && impl_->special[id];
}

}  // namespace tern
