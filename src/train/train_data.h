// Training batches packed from one tokenized text: B windows of T + 1 consecutive tokens, inputs the
// first T and targets the last T of each; the next window starts where this one's inputs ended (each
// token is a target once per pass). At the end of the text it wraps to the start (a new epoch).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace tern::train {

class TokenStream {
 public:
  // Errors: fewer than batch · (seq + 1) tokens, or a token outside [0, vocab).
  static Result<TokenStream> make(std::vector<int32_t> tokens, int64_t vocab, int64_t batch, int64_t seq);

  // ids, targets: [batch · seq].
  void next(int32_t* ids, int32_t* targets);

  int64_t position() const { return pos_; }
  int64_t epoch() const { return epoch_; }
  // Resume: back where a checkpoint left off (position taken modulo the text).
  void seek(int64_t position, int64_t epoch);
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  std::vector<int32_t> tokens_;
  int64_t batch_ = 0, seq_ = 0, pos_ = 0, epoch_ = 0;
};

}  // namespace tern::train
