#include "train/train_data.h"

#include <fmt/format.h>

#include <algorithm>

namespace tern::train {

Result<TokenStream> TokenStream::make(std::vector<int32_t> tokens, int64_t vocab, int64_t batch, int64_t seq) {
  const int64_t need = batch * (seq + 1);
  if (int64_t(tokens.size()) < need)
    return Status::error(fmt::format("the training text has {} tokens, fewer than one batch of {} x ({} + 1)",
                                     tokens.size(), batch, seq));
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return Status::error(fmt::format("training token {} at position {} is outside the vocabulary of {}", tokens[i], i, vocab));
  TokenStream s;
  s.tokens_ = std::move(tokens);
  s.batch_ = batch;
  s.seq_ = seq;
  return s;
}

void TokenStream::next(int32_t* ids, int32_t* targets) {
  const int64_t n = int64_t(tokens_.size());
  for (int64_t b = 0; b < batch_; ++b) {
    if (pos_ + seq_ + 1 > n) {
      pos_ = 0;
      ++epoch_;
    }
    std::copy_n(tokens_.begin() + pos_, seq_, ids + b * seq_);
    std::copy_n(tokens_.begin() + pos_ + 1, seq_, targets + b * seq_);
    pos_ += seq_;
  }
}

void TokenStream::seek(int64_t position, int64_t epoch) {
  pos_ = tokens_.empty() ? 0 : position % int64_t(tokens_.size());
  epoch_ = epoch;
}

}  // namespace tern::train
