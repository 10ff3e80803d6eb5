#include "parallel/step_message.h"

#include <fmt/format.h>

#include <cstring>

namespace tern {

namespace {

constexpr int kRoot = 0;
constexpr int64_t kMaxPayload = int64_t(1) << 34;  // a sanity bound on what a header may announce

template <typename T>
void append(std::vector<uint8_t>& buf, const T* p, size_t n) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  buf.insert(buf.end(), b, b + n * sizeof(T));
}

template <typename T>
Status take(const std::vector<uint8_t>& buf, size_t& off, std::vector<T>& out, int64_t n) {
  if (n < 0 || off + size_t(n) * sizeof(T) > buf.size()) return Status::error("step message: payload too short");
  out.resize(size_t(n));
  if (n > 0) std::memcpy(out.data(), buf.data() + off, size_t(n) * sizeof(T));
  off += size_t(n) * sizeof(T);
  return Status::ok();
}

}  // namespace

Status broadcast_forward(Communicator& comm, StepHeader h, const int32_t* ids, const std::vector<StepSeq>& seqs,
                         const std::vector<const int32_t*>& tables, StepOp op) {
  if (op != StepOp::kForward && op != StepOp::kForwardLogits) return Status::error("broadcast_forward: not a forward op");
  std::vector<uint8_t> buf;
  h.op = op;
  h.n_seqs = int64_t(seqs.size());
  h.n_table = 0;
  for (const StepSeq& s : seqs) h.n_table += s.n_blocks;
  append(buf, ids, size_t(h.n_ids));
  append(buf, seqs.data(), seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) append(buf, tables[i], size_t(seqs[i].n_blocks));
  h.payload_bytes = int64_t(buf.size());
  TERN_RETURN_IF_ERROR(comm.broadcast(&h, sizeof(h), kRoot));
  return comm.broadcast(buf.data(), int64_t(buf.size()), kRoot);
}

Status broadcast_logits(Communicator& comm, StepHeader h, const float* hidden, int64_t hidden_size) {
  h.op = StepOp::kLogits;
  h.payload_bytes = h.rows * hidden_size * int64_t(sizeof(float));
  TERN_RETURN_IF_ERROR(comm.broadcast(&h, sizeof(h), kRoot));
  return comm.broadcast(const_cast<float*>(hidden), h.payload_bytes, kRoot);
}

Status broadcast_stop(Communicator& comm) {
  StepHeader h;
  h.op = StepOp::kStop;
  return comm.broadcast(&h, sizeof(h), kRoot);
}

Status receive_step(Communicator& comm, int64_t hidden_size, StepHeader& h, StepPayload& p) {
  TERN_RETURN_IF_ERROR(comm.broadcast(&h, sizeof(h), kRoot));
  if (h.op == StepOp::kStop) return Status::ok();
  if (h.payload_bytes < 0 || h.payload_bytes > kMaxPayload) return Status::error("step message: bad payload size");
  std::vector<uint8_t> buf(size_t(h.payload_bytes));
  TERN_RETURN_IF_ERROR(comm.broadcast(buf.data(), h.payload_bytes, kRoot));
  size_t off = 0;
  if (h.op == StepOp::kLogits) {
    if (h.rows < 0 || h.rows * hidden_size * int64_t(sizeof(float)) != h.payload_bytes) {
      return Status::error("step message: logits payload does not match its rows");
    }
    return take(buf, off, p.hidden, h.rows * hidden_size);
  }
  if (h.op != StepOp::kForward && h.op != StepOp::kForwardLogits) return Status::error(fmt::format("step message: unknown op {}", int64_t(h.op)));
  TERN_RETURN_IF_ERROR(take(buf, off, p.ids, h.n_ids));
  TERN_RETURN_IF_ERROR(take(buf, off, p.seqs, h.n_seqs));
  TERN_RETURN_IF_ERROR(take(buf, off, p.tables, h.n_table));
  if (off != buf.size()) return Status::error("step message: payload has trailing bytes");
  int64_t tokens = 0, blocks = 0;
  for (const StepSeq& s : p.seqs) tokens += s.n_tokens, blocks += s.n_blocks;
  if (tokens != h.n_ids || blocks != h.n_table) return Status::error("step message: sequences do not match the ids");
  return Status::ok();
}

}  // namespace tern
