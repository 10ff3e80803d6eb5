// Shared by the parity tests: run a model over ids and collect full-vocabulary logits.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "model/decoder.h"
#include "model/model.h"
#include "core/exec_context.h"

namespace tern::test {

inline nlohmann::json load_json(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.is_ok()) return nullptr;
  return nlohmann::json::parse(*text);
}

// logits [ids.size(), vocab] for every position, computed in one forward pass.
// A tiny-archs model as its reference.json computed it. gemma2's reference comes from transformers'
// default (sdpa) attention, which drops attn_logit_softcapping (its eager and flash paths apply it, as
// do Google's reference, vLLM, llama.cpp and tern): comparisons against it turn the attention soft-cap
// off (tests/parity/test_tiny_archs.cpp GemmaSoftcap checks that it is bound and used).
inline void match_reference_attention(Model& model, const std::string& arch) {
  if (arch != "gemma2") return;
  TransformerWeights w = model.weights();
  for (auto& l : w.layers) l.attn.softcap = 0.f;
  model.replace_weights(std::move(w), nullptr);
}

inline std::vector<float> all_logits(const Model& model, ExecContext& ctx, const std::vector<int32_t>& ids,
                                     int64_t max_chunk = 512) {
  const auto& c = model.config();
  const int64_t n = int64_t(ids.size());
  Decoder dec(model, max_chunk);
  SequenceKvCache kv(c, n);
  std::vector<float> hidden(size_t(n * c.hidden_size)), logits(size_t(n * c.vocab_size));
  Status s = dec.forward(ctx, kv, ids.data(), n, n, hidden.data());
  if (!s.is_ok()) return {};
  dec.logits(ctx, hidden.data(), n, logits.data());
  return logits;
}

inline double logsumexp(const float* x, int64_t n) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max<double>(mx, x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - mx);
  return mx + std::log(s);
}

// Greedy continuation of `ids` for n tokens, decoding one token at a time through the KV cache.
inline std::vector<int32_t> greedy(const Model& model, ExecContext& ctx, const std::vector<int32_t>& ids, int n) {
  const auto& c = model.config();
  Decoder dec(model);
  SequenceKvCache kv(c, int64_t(ids.size()) + n);
  std::vector<float> hidden(size_t(c.hidden_size)), logits(size_t(c.vocab_size));
  std::vector<int32_t> out;
  std::vector<int32_t> next = ids;
  for (int i = 0; i < n; ++i) {
    if (!dec.forward(ctx, kv, next.data(), int64_t(next.size()), 1, hidden.data()).is_ok()) return {};
    dec.logits(ctx, hidden.data(), 1, logits.data());
    int64_t best = 0;
    for (int64_t v = 1; v < c.vocab_size; ++v) {
      if (logits[size_t(v)] > logits[size_t(best)]) best = v;
    }
    out.push_back(int32_t(best));
    next = {int32_t(best)};
  }
  return out;
}

}  // namespace tern::test
