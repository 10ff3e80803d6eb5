// Shared by the engine tests: collects each request's events from an EngineCore or Engine.
#pragma once

#include <map>
#include <mutex>
#include <numeric>
#include <vector>

#include "engine/engine.h"

namespace tern::test {

struct Collected {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<float> logprobs;
  std::vector<std::vector<TokenLogprob>> top;
  EngineFinish finish = EngineFinish::kNone;
  int finishes = 0;
  int events_after_finish = 0;
  std::string error;
  int64_t cached_prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

class Collector {
 public:
  OutputCallback callback() {
    return [this](RequestId id, const EngineOutput& out) {
      std::lock_guard lk(mu_);
      Collected& c = by_id_[id];
      if (c.finishes > 0) ++c.events_after_finish;
      c.tokens.insert(c.tokens.end(), out.tokens.begin(), out.tokens.end());
      c.text += out.text;
      c.logprobs.insert(c.logprobs.end(), out.logprobs.begin(), out.logprobs.end());
      c.top.insert(c.top.end(), out.top.begin(), out.top.end());
      c.cached_prompt_tokens = out.cached_prompt_tokens;
      c.completion_tokens = out.completion_tokens;
      if (out.finish != EngineFinish::kNone) {
        c.finish = out.finish;
        c.error = out.error;
        ++c.finishes;
      }
    };
  }
  Collected get(RequestId id) {
    std::lock_guard lk(mu_);
    return by_id_[id];
  }
  bool is_finished(RequestId id) {
    std::lock_guard lk(mu_);
    auto it = by_id_.find(id);
    return it != by_id_.end() && it->second.finishes > 0;
  }
  size_t finished() {
    std::lock_guard lk(mu_);
    size_t n = 0;
    for (auto& [id, c] : by_id_) n += c.finishes > 0;
    return n;
  }

 private:
  std::mutex mu_;
  std::map<RequestId, Collected> by_id_;
};

inline std::vector<int32_t> make_prompt(int n, int32_t seed, int64_t vocab) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) p[size_t(i)] = int32_t((uint32_t(seed) * 2654435761u + uint32_t(i) * 40503u) % uint32_t(vocab));
  return p;
}

// A greedy request for n new tokens.
inline EngineRequest greedy(std::vector<int32_t> prompt, int64_t n) {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = 0;
  return r;
}

}  // namespace tern::test
