// Limits on user-supplied grammars, so that input never crashes the process or eats the machine.
#pragma once

#include <cstdint>

namespace tern {

struct GrammarLimits {
  int64_t max_text_bytes = 1 << 20;  // GBNF / regex / schema text
  int64_t max_nesting = 64;          // parentheses, schema nesting, $ref chains
  int64_t max_repetition = 10000;    // the m / n of {m,n}, minLength, maxItems, ...
  int64_t max_states = 200000;       // automaton states after expansion (all rules)
};

}  // namespace tern
