// Constrained decoding: the compile front door (GBNF, JSON Schema, regex, json_object -> an immutable, shared,
// compiled Grammar) and the per-request matcher (TokenConstraint) the engine asks, at each step, which tokens may
// come next. docs/structured-output.md describes the supported syntax, the JSON Schema keywords, whitespace and
// the algorithm (byte-level pushdown automaton; per-position masks cached, context-dependent tokens checked
// against the stack).
//
// Engine contract (one place, every endpoint): before sampling, allowed(mask) and set logits of tokens whose bit
// is clear to -inf; EOS ids are allowed iff can_end(); if must_end() finish with reason "stop" without sampling.
// After sampling, accept(token). Speculative decoding: accept drafted tokens one by one, rollback(n) the rejected.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "constrain/grammar_limits.h"
#include "constrain/token_vocabulary.h"
#include "core/status.h"

namespace tern {

namespace constrain {
struct CompiledGrammar;
class Matcher;
}  // namespace constrain

// An immutable compiled grammar, shared by every request that uses it (thread-safe; its lazily filled mask cache
// is internally synchronised). Obtained from the compile_* functions or a GrammarCache.
class Grammar {
 public:
  const std::string& canonical_text() const;  // the GBNF the grammar was compiled from (the cache key)
  const TokenVocabulary& vocabulary() const;
  int64_t vocab_size() const;
  const constrain::CompiledGrammar& compiled() const { return *impl_; }

  explicit Grammar(std::shared_ptr<constrain::CompiledGrammar> impl);
  ~Grammar();

 private:
  std::shared_ptr<constrain::CompiledGrammar> impl_;
};


// GBNF as llama.cpp publishes it (grammars/README.md): `name ::= body`, the start rule is `root`.
Result<std::shared_ptr<const Grammar>> compile_gbnf(std::string_view text, const TokenVocabulary& vocab,
                                                    const GrammarLimits& limits = {});
// A JSON Schema (draft 2020-12 subset; an unsupported keyword is an error naming it and its path).
Result<std::shared_ptr<const Grammar>> compile_json_schema(const nlohmann::ordered_json& schema, const TokenVocabulary& vocab,
                                                           const GrammarLimits& limits = {});
// The same from the schema's JSON text, parsed keeping key order: properties are generated in the order the schema
// lists them (nlohmann::json sorts keys, so the overload above generates them alphabetically). Prefer this one.
Result<std::shared_ptr<const Grammar>> compile_json_schema_text(std::string_view schema_json, const TokenVocabulary& vocab,
                                                                const GrammarLimits& limits = {});
// A regular expression the whole output must match (ECMAScript-like subset, implicitly anchored).
Result<std::shared_ptr<const Grammar>> compile_regex(std::string_view pattern, const TokenVocabulary& vocab,
                                                     const GrammarLimits& limits = {});
// response_format {"type": "json_object"}: any JSON object.
Result<std::shared_ptr<const Grammar>> json_object_grammar(const TokenVocabulary& vocab);

// The text conversions behind the front door (useful to show a user what their schema became).
Result<std::string> json_schema_to_gbnf(const nlohmann::ordered_json& schema, const GrammarLimits& limits = {});
Result<std::string> json_schema_text_to_gbnf(std::string_view schema_json, const GrammarLimits& limits = {});
Result<std::string> regex_to_gbnf(std::string_view pattern, const GrammarLimits& limits = {});

// Composition: the same grammar with every rule name prefixed (`root` becomes `<prefix>root`), so that several
// grammars (e.g. each tool's arguments schema) can be pasted into one GBNF text under a new root, as in
//   "root ::= \"<tool_call>\" t0-root \"</tool_call>\"\n" + *gbnf_prefix_rules(*json_schema_text_to_gbnf(s), "t0-")
Result<std::string> gbnf_prefix_rules(std::string_view gbnf, std::string_view prefix, const GrammarLimits& limits = {});

// Computes, once per vocabulary, the shared masks of the lexical rules JSON schemas compile to (string bodies at
// every distance up to 16 characters from minLength / maxLength, numbers, formats, whitespace): the walks over the
// whole vocabulary (~3 ms each with 128k tokens) a first request would otherwise pay. Thread-safe; a second call
// costs little. Returns early once *stop is true. GrammarCache::start_warm_up runs it in the background.
void warm_up_masks(const TokenVocabulary& vocab, const std::atomic<bool>* stop = nullptr);

// Compiles each distinct grammar once: keyed by the canonical GBNF text (schemas by their dumped JSON first).
// Thread-safe; holds at most `capacity` grammars (least recently used evicted; requests keep theirs alive).
class GrammarCache {
 public:
  explicit GrammarCache(TokenVocabulary vocab, size_t capacity = 256, GrammarLimits limits = {});
  ~GrammarCache();
  Result<std::shared_ptr<const Grammar>> gbnf(std::string_view text);
  Result<std::shared_ptr<const Grammar>> json_schema(const nlohmann::ordered_json& schema);
  Result<std::shared_ptr<const Grammar>> json_schema_text(std::string_view schema_json);  // keeps property order
  Result<std::shared_ptr<const Grammar>> regex(std::string_view pattern);
  Result<std::shared_ptr<const Grammar>> json_object();
  const TokenVocabulary& vocabulary() const;
  // Starts warm_up_masks on a background thread at the lowest priority (a server calls it when it starts, so the
  // first request with a new schema finds the shared masks made); the destructor stops and joins it. Idempotent.
  void start_warm_up();
  bool warm_up_done() const;  // the background warm-up has finished (tests, benchmarks)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The per-request matcher. Not thread-safe (one per request); the Grammar it holds is shared.
class TokenConstraint {
 public:
  explicit TokenConstraint(std::shared_ptr<const Grammar> grammar);
  ~TokenConstraint();
  TokenConstraint(TokenConstraint&&) noexcept;
  TokenConstraint& operator=(TokenConstraint&&) noexcept;

  int64_t vocab_size() const;
  int64_t mask_words() const { return (vocab_size() + 31) / 32; }
  // mask: [mask_words()] words; bit t (word t/32, bit t%32) set iff token t may come next. EOS is never set here:
  // the caller allows its EOS ids iff can_end().
  void allowed(uint32_t* mask);
  // Advances by one token; an error (state unchanged) when the token is not allowed.
  Status accept(int32_t token);
  // Undoes the last n accepted tokens (n <= accepted()).
  void rollback(int n);
  int accepted() const;
  bool can_end() const;   // the text so far is a complete sentence of the grammar: EOS / stop allowed
  bool must_end() const;  // complete, and no token can extend it
  // Convenience for tests and tools: does `bytes` continue the text so far (the state is not changed)?
  bool accepts_bytes(std::string_view bytes) const;  // (memoises inside; logically const)

 private:
  std::unique_ptr<constrain::Matcher> m_;
};

}  // namespace tern
