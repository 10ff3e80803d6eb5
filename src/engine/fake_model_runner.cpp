#include "engine/fake_model_runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "runtime/sampler.h"

namespace tern {

namespace {

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Slots written for position p carry p; a slot read back for another position (a wrong table, a
// block reused without its content) changes the history hash.
uint64_t history_hash(const int32_t* tokens, const int32_t* positions, int64_t n) {
  uint64_t h = 0x6a09e667f3bcc909ULL;
  for (int64_t i = 0; i < n; ++i) {
    h = mix(h + uint64_t(uint32_t(tokens[i])) * 0x9e3779b97f4a7c15ULL + uint64_t(uint32_t(positions[i])) * 31 + 1);
  }
  return h;
}

void logits_from_hash(uint64_t h, int64_t vocab, float* out) {
  for (int64_t v = 0; v < vocab; ++v) {
    const uint64_t r = mix(h ^ (uint64_t(v) * 0xd1b54a32d192ed03ULL));
    out[v] = float(double(r >> 40) / double(1 << 24) * 8.0 - 4.0);  // in [-4, 4)
  }
}

}  // namespace

size_t FakeModelRunner::kv_block_bytes(int block_size, KvDType dtype) const {
  return size_t(block_size) * opt_.kv_bytes_per_token;
}

Status FakeModelRunner::allocate_kv(const KvPoolSpec& spec) {
  if (spec.num_blocks <= 0 || spec.block_size <= 0) return Status::error("fake runner: empty KV pool");
  spec_ = spec;
  slots_.assign(size_t(spec.num_blocks * spec.block_size), Slot{});
  return Status::ok();
}

void FakeModelRunner::reference_logits(const int32_t* history, int64_t n, int64_t vocab, float* out) {
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[size_t(i)] = int32_t(i);
  logits_from_hash(history_hash(history, pos.data(), n), vocab, out);
}

std::vector<int32_t> FakeModelRunner::reference_greedy(const std::vector<int32_t>& prompt, int64_t n_new,
                                                       int64_t vocab, const std::vector<int32_t>& eos_ids) {
  std::vector<int32_t> seq = prompt, out;
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < n_new; ++i) {
    reference_logits(seq.data(), int64_t(seq.size()), vocab, logits.data());
    const int32_t id = argmax(logits.data(), vocab);
    if (std::find(eos_ids.begin(), eos_ids.end(), id) != eos_ids.end()) break;
    out.push_back(id);
    seq.push_back(id);
  }
  return out;
}

Status FakeModelRunner::forward(const StepBatch& batch, float* logits) {
  if (on_forward) on_forward(batch);
  const int64_t call = calls_++;
  if (opt_.step_delay.count() > 0) std::this_thread::sleep_for(opt_.step_delay);
  if (call == opt_.fail_on_call) return Status::error(fmt::format("fake runner: injected failure at call {}", call));
  if (slots_.empty()) return Status::error("fake runner: forward before allocate_kv");
  const int64_t bs = spec_.block_size;
  int64_t total = 0;
  for (const auto& s : batch.seqs) total += s.n_tokens;
  if (total != int64_t(batch.token_ids.size()))
    return Status::error(fmt::format("fake runner: {} token ids for {} scheduled tokens", batch.token_ids.size(), total));
  int64_t offset = 0, row = 0;
  std::vector<int32_t> positions;
  for (const auto& s : batch.seqs) {
    const int64_t end = s.pos0 + s.n_tokens;
    if (s.n_tokens <= 0 || s.pos0 < 0 || end > opt_.max_context || s.n_blocks * bs < end || !s.block_table)
      return Status::error(fmt::format("fake runner: bad sequence (pos0 {}, n {}, blocks {})", s.pos0, s.n_tokens, s.n_blocks));
    for (int64_t b = 0; b < s.n_blocks; ++b) {
      if (s.block_table[b] < 0 || s.block_table[b] >= spec_.num_blocks)
        return Status::error(fmt::format("fake runner: block id {} out of range", s.block_table[b]));
    }
    for (int64_t i = 0; i < s.n_tokens; ++i) {
      const int64_t p = s.pos0 + i;
      Slot& slot = slots_[size_t(s.block_table[p / bs] * bs + p % bs)];
      slot.token = batch.token_ids[size_t(offset + i)];
      slot.pos = int32_t(p);
    }
    offset += s.n_tokens;
    if (!s.want_logits) continue;
    history_.resize(size_t(end));
    positions.resize(size_t(end));
    for (int64_t p = 0; p < end; ++p) {
      const Slot& slot = slots_[size_t(s.block_table[p / bs] * bs + p % bs)];
      history_[size_t(p)] = slot.token;
      positions[size_t(p)] = slot.pos;
    }
    if (s.n_logits < 1 || s.n_logits > s.n_tokens)
      return Status::error(fmt::format("fake runner: {} logit rows of {} tokens", s.n_logits, s.n_tokens));
    for (int64_t p = end - s.n_logits + 1; p <= end; ++p) {  // the history up to each wanted position
      logits_from_hash(history_hash(history_.data(), positions.data(), p), opt_.vocab_size,
                       logits + row * opt_.vocab_size);
      ++row;
    }
  }
  return Status::ok();
}

}  // namespace tern
