// What a node of a lexical rule (a rule that calls nothing: JSON strings, numbers, formats, ...) does on short
// byte strings, as a class id of its vocabulary. Two nodes with the same class, in any rules of any grammars over
// that vocabulary, accept the same byte strings of up to `depth` bytes and may end their rule after the same ones;
// so the part of their masks made of tokens of up to `depth` bytes (with its pop points) is equal and is computed
// once per vocabulary. Every position of a JSON string that is at least `depth` characters from its maxLength is
// in the class of the unbounded string's body: `"maxLength": 500` costs one full-vocabulary walk, not 500.
#pragma once

#include <cstdint>

#include "constrain/compiled_grammar.h"

namespace tern::constrain {

// Classes are hash-consed in the vocabulary: a class is its finality plus its outgoing byte ranges labelled with
// the classes of their targets with one byte less to go (adjacent ranges with equal labels merged, so how a DFA
// split its ranges does not matter); equal tuples get equal ids, so equal ids mean equal behaviour, exactly.
// The grammar memoises (node, bytes to go) -> class, so the next position of a string adds a few dozen tuples.
// Returns -1 when the vocabulary's table is full (the caller then computes the mask without sharing).
int32_t lexical_class(const CompiledGrammar& g, int32_t node, int depth);

}  // namespace tern::constrain
