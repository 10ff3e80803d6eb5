#include "backend/cuda/step_pack.h"

#include <algorithm>
#include <string>

namespace tern::cuda {

Status pack_step(const StepBatch& batch, const PackLimits& lim, PackedStep& out) {
  const int64_t n_seqs = int64_t(batch.seqs.size());
  int64_t total = 0;
  for (const auto& s : batch.seqs) {
    if (s.n_tokens < 0 || s.pos0 < 0) return Status::error("step: negative position or token count");
    total += s.n_tokens;
  }
  if (total != int64_t(batch.token_ids.size()))
    return Status::error("step: token_ids has " + std::to_string(batch.token_ids.size()) +
                                    " ids but the sequences bring " + std::to_string(total));
  if (total > lim.max_tokens)
    return Status::error("step: " + std::to_string(total) + " tokens exceed the workspace (" +
                                    std::to_string(lim.max_tokens) + ")");
  if (n_seqs > lim.max_seqs)
    return Status::error("step: " + std::to_string(n_seqs) + " sequences exceed " +
                                    std::to_string(lim.max_seqs));
  out.ids.assign(batch.token_ids.begin(), batch.token_ids.end());
  out.pos.clear();
  out.seq.clear();
  out.logit_rows.clear();
  out.block_tables.assign(size_t(n_seqs) * size_t(lim.max_blocks), -1);
  out.n_seqs = n_seqs;
  out.decode_only = n_seqs > 0;
  for (int32_t id : out.ids) {
    if (id < 0 || id >= lim.vocab) return Status::error("step: token id " + std::to_string(id) + " out of range");
  }
  int64_t row = 0;
  for (int64_t i = 0; i < n_seqs; ++i) {
    const BatchSequence& s = batch.seqs[size_t(i)];
    const int64_t end = s.pos0 + s.n_tokens;
    const int64_t need = (end + lim.block_size - 1) / lim.block_size;
    if (need > lim.max_blocks)
      return Status::error("step: sequence " + std::to_string(i) + " reaches position " +
                                      std::to_string(end) + ", past the context of the KV pool");
    if (s.n_blocks < need || (need > 0 && s.block_table == nullptr))
      return Status::error("step: sequence " + std::to_string(i) + " has " + std::to_string(s.n_blocks) +
                                      " blocks, needs " + std::to_string(need));
    for (int64_t b = 0; b < need; ++b) {
      const int32_t id = s.block_table[b];
      if (id < 0 || id >= lim.num_blocks)
        return Status::error("step: block id " + std::to_string(id) + " outside the KV pool");
      out.block_tables[size_t(i * lim.max_blocks + b)] = id;
    }
    if (s.n_tokens != 1) out.decode_only = false;
    for (int64_t t = 0; t < s.n_tokens; ++t) {
      out.pos.push_back(int32_t(s.pos0 + t));
      out.seq.push_back(int32_t(i));
    }
    row += s.n_tokens;
    if (s.want_logits) {
      if (s.n_tokens == 0) return Status::error("step: logits wanted from a sequence with no tokens");
      if (s.n_logits < 1 || s.n_logits > s.n_tokens)
        return Status::error("step: sequence " + std::to_string(i) + " wants " + std::to_string(s.n_logits) +
                             " logit rows of its " + std::to_string(s.n_tokens) + " tokens");
      for (int64_t r = row - s.n_logits; r < row; ++r) out.logit_rows.push_back(int32_t(r));  // speculative rows
    }
  }
  if (int64_t(out.logit_rows.size()) > lim.max_logit_rows)
    return Status::error("step: " + std::to_string(out.logit_rows.size()) + " logit rows exceed " +
                                    std::to_string(lim.max_logit_rows));
  return Status::ok();
}

std::vector<StepBatch> split_step(const StepBatch& batch, int64_t max_tokens) {
  std::vector<StepBatch> out(1);
  int64_t row = 0, used = 0;
  for (const BatchSequence& s : batch.seqs) {
    int64_t done = 0;
    do {
      if (used == max_tokens) {
        out.emplace_back();
        used = 0;
      }
      const int64_t n = std::min(s.n_tokens - done, max_tokens - used);
      BatchSequence piece = s;
      piece.pos0 = s.pos0 + done;
      piece.n_tokens = n;
      piece.want_logits = s.want_logits && done + n == s.n_tokens;
      // Speculative verification rows must all land in the last piece; the runner refuses a batch
      // where they would not (cuda_model_runner.cpp), so clamp here only to stay well-formed.
      piece.n_logits = std::min(s.n_logits, n);
      out.back().seqs.push_back(piece);
      const auto first = batch.token_ids.begin() + std::min<int64_t>(row + done, int64_t(batch.token_ids.size()));
      const auto last = batch.token_ids.begin() + std::min<int64_t>(row + done + n, int64_t(batch.token_ids.size()));
      out.back().token_ids.insert(out.back().token_ids.end(), first, last);
      done += n;
      used += n;
    } while (done < s.n_tokens);
    row += s.n_tokens;
  }
  return out;
}

void pad_decode_step(PackedStep& step, int64_t bucket, int max_blocks) {
  for (int64_t i = step.n_seqs; i < bucket; ++i) {
    step.ids.push_back(0);
    step.pos.push_back(0);
    step.seq.push_back(int32_t(i));
    step.block_tables.insert(step.block_tables.end(), size_t(max_blocks), -1);
  }
  if (bucket > step.n_seqs) step.n_seqs = bucket;
}

}  // namespace tern::cuda
