// Tokenizer internals shared by tokenizer.cpp and streaming_decoder.cpp.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "text/tokenizer/added_tokens.h"
#include "text/tokenizer/bpe_model.h"
#include "text/tokenizer/decoder.h"
#include "text/tokenizer/normalizer.h"
#include "text/tokenizer/post_processor.h"
#include "text/tokenizer/pre_tokenizer.h"
#include "text/tokenizer/tokenizer.h"

namespace tern {

struct Tokenizer::Impl {
  tok::AddedTokens added;       // normalized=false: cut from the raw text
  tok::AddedTokens added_norm;  // normalized=true: cut from each normalized segment
  std::vector<tok::NormalizerStep> normalizer;
  tok::PreTokenizer pre;
  tok::BpeModel model;
  tok::PostProcessor post;
  tok::Decoder decoder;
  std::vector<std::string> tokens;  // id -> vocab string, added tokens included
  tok::StringIdMap added_ids;       // added token content -> id
  std::vector<uint8_t> special;     // id -> is a special added token
  std::vector<uint8_t> skipped;     // id -> left out by decode(skip_special_tokens)
  std::optional<int32_t> bos, eos;

  bool emits(int32_t id, bool skip_special) const {
    return id >= 0 && static_cast<size_t>(id) < tokens.size() && !(skip_special && skipped[id]);
  }
};

}  // namespace tern
