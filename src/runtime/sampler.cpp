#include "runtime/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tern {

Status SamplingParams::validate() const {
  auto bad = [](const char* name, double v, const char* rule) {
    return Status::error(fmt::format("{} = {} is invalid: {}", name, v, rule));
  };
  if (!std::isfinite(temperature) || temperature < 0) return bad("temperature", temperature, "must be >= 0");
  if (temperature > 100) return bad("temperature", temperature, "must be <= 100");
  if (top_k < 0) return bad("top_k", top_k, "must be >= 0 (0 = off)");
  if (!std::isfinite(top_p) || top_p <= 0 || top_p > 1) return bad("top_p", top_p, "must be in (0, 1]");
  if (!std::isfinite(min_p) || min_p < 0 || min_p > 1) return bad("min_p", min_p, "must be in [0, 1]");
  if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0 || repetition_penalty > 100)
    return bad("repetition_penalty", repetition_penalty, "must be in (0, 100]");
  if (!std::isfinite(presence_penalty) || std::fabs(presence_penalty) > 2)
    return bad("presence_penalty", presence_penalty, "must be in [-2, 2]");
  if (!std::isfinite(frequency_penalty) || std::fabs(frequency_penalty) > 2)
    return bad("frequency_penalty", frequency_penalty, "must be in [-2, 2]");
  return Status::ok();
}

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return int32_t(best);
}

Sampler::Sampler(const SamplingParams& params, int64_t vocab_size)
    : params_(params), vocab_(vocab_size), rng_(params.seed ? *params.seed : std::random_device{}()),
      seen_(size_t(vocab_size), 0) {}

void Sampler::add_prompt(const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    if (id >= 0 && id < vocab_) seen_[size_t(id)] = 1;
  }
}

void Sampler::add_output(int32_t id) {
  if (id < 0 || id >= vocab_) return;
  seen_[size_t(id)] = 1;
  ++output_counts_[id];
}

void Sampler::apply_penalties(float* logits) const {
  for (const auto& [id, bias] : params_.logit_bias) {
    if (id >= 0 && id < vocab_) logits[id] += bias;
  }
  if (params_.repetition_penalty != 1.0f) {
    const float p = params_.repetition_penalty;
    for (int64_t i = 0; i < vocab_; ++i) {
      if (seen_[size_t(i)]) logits[i] = logits[i] > 0 ? logits[i] / p : logits[i] * p;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [id, count] : output_counts_) {
      logits[id] -= params_.presence_penalty + params_.frequency_penalty * float(count);
    }
  }
}

int32_t Sampler::sample(float* logits) {
  apply_penalties(logits);
  if (params_.temperature == 0.0f) return argmax(logits, vocab_);
  return draw(logits);
}

size_t Sampler::filter(const float* logits) {
  // candidates_: (logit / T, id) of every finite logit; sorted (descending) only when a filter needs order.
  const float inv_t = 1.0f / params_.temperature;
  candidates_.clear();
  candidates_.reserve(size_t(vocab_));
  for (int64_t i = 0; i < vocab_; ++i) {
    if (std::isfinite(logits[i])) candidates_.emplace_back(logits[i] * inv_t, int32_t(i));
  }
  if (candidates_.empty()) {  // every logit is -inf or NaN: the argmax, as the greedy path
    candidates_.emplace_back(0.0f, argmax(logits, vocab_));
    probs_.assign(1, 1.0);
    return 1;
  }
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  auto sort_prefix = [&](size_t n) {  // the n largest, in order, at the front
    std::partial_sort(candidates_.begin(), candidates_.begin() + long(n), candidates_.end(), by_logit);
  };
  size_t keep = candidates_.size();
  size_t sorted = 0;  // candidates_[0, sorted) are the largest, in descending order
  if (params_.top_k > 0 && size_t(params_.top_k) < keep) {
    sort_prefix(size_t(params_.top_k));
    keep = sorted = size_t(params_.top_k);
  }
  float max_logit = candidates_[0].first;
  if (!sorted) {
    for (size_t i = 0; i < keep; ++i) max_logit = std::max(max_logit, candidates_[i].first);
  }
  auto weight = [&](size_t i) { return std::exp(double(candidates_[i].first - max_logit)); };
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += weight(i);
  if (params_.top_p < 1.0f) {
    // The smallest prefix whose mass reaches top_p (at least one token). Sorting the 1,024 largest
    // first avoids a full sort of a 128K vocabulary in the common case.
    const double target = double(params_.top_p) * sum;
    for (;;) {
      if (sorted < keep) {
        const size_t n = std::min(keep, std::max<size_t>(1024, sorted * 4));
        sort_prefix(n);
        sorted = n;
      }
      double mass = 0;
      size_t n = 0;
      while (n < sorted && (n == 0 || mass < target)) mass += weight(n++);
      if (mass >= target || sorted == keep) {
        keep = sorted = n;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {  // keeps p >= min_p * p_max, i.e. logit >= max + log(min_p)
    const float floor = max_logit + std::log(params_.min_p);
    size_t n = 0;
    for (size_t i = 0; i < keep; ++i) {
      if (candidates_[i].first >= floor) candidates_[n++] = candidates_[i];
    }
    keep = n;  // >= 1: the max always survives
  }
  double total = 0;
  probs_.resize(keep);
  for (size_t i = 0; i < keep; ++i) total += probs_[i] = weight(i);
  for (size_t i = 0; i < keep; ++i) probs_[i] /= total;
  return keep;
}

// Index into w [n] drawn with probability w[i] / Σ w.
size_t Sampler::pick(const double* w, size_t n) {
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += w[i];
  std::uniform_real_distribution<double> uniform(0.0, total);
  double r = uniform(rng_);
  for (size_t i = 0; i < n; ++i) {
    r -= w[i];
    if (r < 0) return i;
  }
  for (size_t i = n; i-- > 0;) {  // rounding: the last token with weight
    if (w[i] > 0) return i;
  }
  return 0;
}

int32_t Sampler::draw(const float* logits) {
  const size_t keep = filter(logits);
  return candidates_[pick(probs_.data(), keep)].second;
}

int32_t Sampler::verify(float* logits, int32_t draft, const float* q, bool* accepted) {
  apply_penalties(logits);
  if (params_.temperature == 0.0f) {  // greedy: the draft stands iff it is the argmax
    const int32_t best = argmax(logits, vocab_);
    *accepted = best == draft;
    return best;
  }
  const size_t keep = filter(logits);
  double p_draft = 0;
  for (size_t i = 0; i < keep; ++i) {
    if (candidates_[i].second == draft) p_draft = probs_[i];
  }
  const double q_draft = q ? double(q[draft]) : 1.0;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  // Accept with probability min(1, p(d) / q(d)); q(d) = 0 means d could not have been proposed.
  if (p_draft > 0 && (q_draft <= 0 || uniform(rng_) * q_draft < p_draft)) {
    *accepted = true;
    return draft;
  }
  *accepted = false;
  // Rejected: draw from the residual max(0, p - q), renormalized (tokens outside the filtered set
  // have p = 0, so their residual is 0 too).
  residual_.resize(keep);
  double mass = 0;
  for (size_t i = 0; i < keep; ++i) {
    const int32_t id = candidates_[i].second;
    const double qi = q ? double(q[id]) : (id == draft ? 1.0 : 0.0);
    mass += residual_[i] = std::max(0.0, probs_[i] - qi);
  }
  if (!(mass > 0)) return candidates_[pick(probs_.data(), keep)].second;  // p == q up to rounding
  return candidates_[pick(residual_.data(), keep)].second;
}

}  // namespace tern
