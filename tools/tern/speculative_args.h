// The speculative decoding flags of the commands that start a serving engine (`tern serve`, `tern
// bench offline`), named as vLLM names them where it has a name (docs/speculative.md):
//   --speculative none|ngram|draft          method (default none)
//   --draft-model DIR                       the draft model (with --speculative draft only)
//   --num-speculative-tokens K              most drafts per sequence and step (1..32, default 5)
//   --prompt-lookup-min N / --prompt-lookup-max N   n-gram lengths looked up (default 2..4)
//   --speculative-disable-by-batch-size N   no drafts in a step where more than N sequences decode
//   --speculative-max-batch-rows R          drafts fill decode rows up to R per step (default 8 with
//                                           AVX-512, 4 without: default_max_batch_rows)
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "cli_common.h"
#include "engine/drafter.h"
#include "engine/engine.h"

namespace tern::cli {

struct SpeculativeArgs {
  std::string method = "none";
  std::string draft_model;
  SpeculativeConfig config;
  int max_batch_rows = 0;                     // --speculative-max-batch-rows when given, else
  CLI::Option* max_batch_rows_opt = nullptr;  // default_max_batch_rows of the host
};

void add_speculative_options(CLI::App& cmd, SpeculativeArgs& args);

// Decode rows a step may fill with drafts when --speculative-max-batch-rows is not given: as many as
// the host's bf16 GEMV verifies at well under a step each.
int default_max_batch_rows(const CpuFeatures& cpu);

// Checks the flags together (an unknown method, --draft-model without --speculative draft or the
// reverse, values out of range: errors naming the flag), sets eo.speculative, and for the draft
// method loads the draft model and checks its vocabulary against the target's (size, and token by
// token against `tok` when both have a tokenizer). Call after eo's KV budget is planned: the draft
// pool holds as many tokens as the target's. Returns the drafter to hand to Engine::create (null
// for none and ngram).
std::unique_ptr<Drafter> make_speculative(const SpeculativeArgs& args, const RuntimeOptions& ro, Runtime& rt, const Model& target,
                                          const Tokenizer* tok, size_t target_block_bytes, EngineOptions& eo);

}  // namespace tern::cli
