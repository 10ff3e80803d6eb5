// The per-vocabulary warm-up: the shared short masks (lexical_signature.h) of the lexical rules that JSON schemas
// compile to, computed before the first request needs them. A class first met by a request costs a walk over the
// whole vocabulary (~3 ms with 128k tokens, the cold p99 of issue 16); after the warm-up a new schema's strings
// only add their own tokens longer than kShortTokenBytes.
#include <fmt/format.h>

#include <atomic>

#include "constrain/compiled_grammar.h"
#include "constrain/text_without.h"
#include "constrain/token_constraint.h"

namespace tern {
namespace constrain {
void warm_short_masks(const CompiledGrammar& g, const std::atomic<bool>* stop);  // node_mask.cpp
}

namespace {

// The schemas whose lexical rules cover the classes JSON schemas meet: a string position's class depends only
// on how far (up to kShortTokenBytes characters) it is from minLength and maxLength, so minLength 0..16 against
// maxLength 0..16 and "far" covers every string; then numbers, integers, the formats and json_object.
std::vector<std::string> warm_up_schemas() {
  std::vector<std::string> out;
  out.push_back(R"({"type":"object"})");
  out.push_back(R"({"type":"number"})");
  out.push_back(R"({"type":"integer"})");
  out.push_back(R"({"type":"string"})");
  for (const char* f : {"date", "time", "date-time", "uuid", "email", "uri", "ipv4"})
    out.push_back(fmt::format(R"({{"type":"string","format":"{}"}})", f));
  const int k = 16;  // constrain::kShortTokenBytes
  for (int mn = 0; mn <= k; ++mn) {
    out.push_back(fmt::format(R"({{"type":"string","minLength":{}}})", mn));
    out.push_back(fmt::format(R"({{"type":"string","minLength":{},"maxLength":{}}})", mn, mn + 3 * k));
    for (int mx = mn; mx <= k; ++mx)
      out.push_back(fmt::format(R"({{"type":"string","minLength":{},"maxLength":{}}})", mn, mx));
  }
  return out;
}

}  // namespace

void warm_up_masks(const TokenVocabulary& vocab, const std::atomic<bool>* stop) {
  // First the free text of the tool_choice "auto" grammars (api/constraint_request.cpp: Hermes / Qwen and
  // Mistral), which such a request meets at its first step: whole node masks (the long tokens too: free text
  // takes nearly all of them, ~0.7 ms a node with 128k tokens), kept in the vocabulary under the rule's text,
  // which every such grammar shares.
  // The same for the lexical rules of plain JSON values (any string, number, integer: the rules every schema
  // shares by text), whose bodies also take most long tokens.
  auto whole_lexical_masks = [&](const constrain::CompiledGrammar& cg) {
    for (size_t n = 0; n < cg.nodes.size(); ++n) {
      if (stop && stop->load(std::memory_order_relaxed)) return;
      if (cg.has_bytes(int32_t(n)) && !cg.lexical_key[size_t(cg.nodes[n].rule)].empty()) cg.node_mask(int32_t(n));
    }
  };
  for (const char* marker : {"[TOOL_CALLS]", "<tool_call>"}) {
    auto g = compile_gbnf("root ::= " + constrain::text_without(marker), vocab);
    if (g.is_ok()) whole_lexical_masks((*g)->compiled());
  }
  int whole = 4;  // warm_up_schemas() begins with object, number, integer, string
  for (const std::string& schema : warm_up_schemas()) {
    if (stop && stop->load(std::memory_order_relaxed)) return;
    auto g = compile_json_schema_text(schema, vocab);
    if (!g.is_ok()) continue;
    if (whole-- > 0) whole_lexical_masks((*g)->compiled());
    constrain::warm_short_masks((*g)->compiled(), stop);
  }
}

}  // namespace tern
