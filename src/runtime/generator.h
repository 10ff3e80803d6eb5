// Generation for one sequence: prefill the prompt, then decode token by token with a Sampler,
// streaming UTF-8-safe text, until EOS, a stop string, or the token limit.
// (The serving engine batches many sequences; this is the single-sequence path of `tern run`.)
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/decoder.h"
#include "text/tokenizer/tokenizer.h"
#include "runtime/sampling_params.h"

namespace tern {

struct GenerationRequest {
  std::vector<int32_t> prompt;          // token ids, BOS included if wanted
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;        // stop strings: matched across token boundaries, never emitted
  std::vector<int32_t> eos_ids;         // generation ends (without emitting) on any of these
  bool ignore_eos = false;
  KvDType kv_dtype = KvDType::F32;      // KV cache storage
};

enum class FinishReason { kLength, kEos, kStop };
const char* finish_reason_name(FinishReason r);  // "length", "eos", "stop"

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (the EOS that ended it excluded)
  std::string text;             // emitted text (stop string excluded)
  FinishReason finish = FinishReason::kLength;
  double prefill_seconds = 0;   // prompt forward + first sample
  double decode_seconds = 0;    // every later token
  int64_t reused_prompt_tokens = 0;  // leading prompt tokens whose K/V a GenerationSession already held
};

// One conversation's KV cache kept across Generator::generate calls (tern chat). Each call reuses the
// longest prefix its prompt shares with the tokens whose K/V the cache holds (everything of the earlier
// turns that the new prompt repeats), so a turn computes only the tokens it adds.
class GenerationSession {
 public:
  // Room for the model's whole context, allocated as the conversation grows.
  GenerationSession(const ModelConfig& cfg, KvDType dtype);
  KvDType kv_dtype() const { return kv_.pool().dtype(); }
  const std::vector<int32_t>& tokens() const { return tokens_; }  // ids at positions [0, cached length)
  void clear() { tokens_.clear(), kv_.set_length(0); }

 private:
  friend class Generator;
  SequenceKvCache kv_;
  std::vector<int32_t> tokens_;
};

class Generator {
 public:
  // tokenizer may be null: then no text is produced, only ids (synthetic models, benchmarks).
  Generator(const Model& model, const Tokenizer* tokenizer, ExecContext& ctx, int64_t max_chunk = 512);

  // on_text receives each piece of text as soon as it is final (may be null). With a session, the K/V
  // of the prompt's prefix it holds is reused and the session keeps this call's K/V for the next one
  // (request.kv_dtype must be the session's).
  Result<GenerationResult> generate(const GenerationRequest& request,
                                    const std::function<void(std::string_view)>& on_text,
                                    GenerationSession* session = nullptr);

 private:
  const Model* model_;
  const Tokenizer* tokenizer_;
  ExecContext* ctx_;
  Decoder decoder_;
};

// Holds back text that might be the start of a stop string; finds the first complete one.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Appends text; returns what is safe to emit now. Sets stopped() when a stop string completed
  // (the text before it is emitted, the stop string and anything after it are dropped).
  std::string push(std::string_view text);
  std::string flush();  // what is held back, at the end of generation
  bool stopped() const { return stopped_; }
  // The stop string that ended the text (the earliest in it; the shortest of those starting there).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace tern
