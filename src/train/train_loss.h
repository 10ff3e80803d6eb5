// The distillation loss on the student's logits z [m, vocab], per row
//   L = α · KL(p_teacher ‖ q_student) + (1 − α) · CE(target),   q = softmax(z),
// and its gradient, written over the logits in place:
//   ∂L/∂z_j = q_j − α · t_j − (1 − α) · [j = target].
// The teacher is given as log-probabilities, either over the whole vocabulary or (as `tern eval kl`
// keeps it, eval/kl_divergence.h) its top k tokens plus one "rest" bucket of the remaining mass p_r.
// With top-k the KL is over the k tokens and the bucket (q_r = 1 − Σ_top-k q_i), so its gradient's
// target t spreads p_r over the other tokens in the student's own proportions: t_j = p_r · q_j / q_r.
#pragma once

#include <cstdint>

#include "core/exec_context.h"

namespace tern::train {

struct TeacherRows {
  int64_t k = 0;                     // tokens per row; == vocab with ids == nullptr: the full vocabulary
  const int32_t* ids = nullptr;      // [m, k] token ids of the top k (null: 0..vocab-1)
  const float* logp = nullptr;       // [m, k] log-probabilities
  const float* rest_logp = nullptr;  // [m] log of the mass outside the top k (null or -inf: none)
};

struct LossSums {
  double ce = 0;   // Σ over rows of −log q_target
  double kl = 0;   // Σ over rows of KL (0 without a teacher)
  int64_t rows = 0;
};

// logits: [m, vocab] in, ∂L/∂z · grad_scale out. targets: [m] in [0, vocab). teacher: null for
// cross-entropy alone (alpha must then be 0).
LossSums loss_and_grad(ExecContext& ctx, float* logits, int64_t m, int64_t vocab, const int32_t* targets,
                       const TeacherRows* teacher, double alpha, float grad_scale);

// Teacher log-probabilities of one row of logits: log_softmax into logp_full[vocab]; with k < vocab
// also the top k (descending) into ids[k], logp[k] and the log of the rest into *rest_logp.
void teacher_log_probs(const float* logits, int64_t vocab, float* logp_full);
void teacher_top_k(const float* logp_full, int64_t vocab, int64_t k, int32_t* ids, float* logp, float* rest_logp,
                   int32_t* order_scratch);

}  // namespace tern::train
