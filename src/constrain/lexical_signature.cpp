#include "constrain/lexical_signature.h"

#include <cstring>
#include <string>
#include <vector>

#include "constrain/vocab_impl.h"

namespace tern::constrain {
namespace {

// Caller holds the vocabulary's mutex (it guards the class table and every grammar's memo).
int32_t class_of(const CompiledGrammar& g, const VocabImpl& v, int32_t node, int to_go) {
  const uint64_t key = (uint64_t(uint32_t(node)) << 8) | uint32_t(to_go);
  auto m = g.class_memo.find(key);
  if (m != g.class_memo.end()) return m->second;
  const Node& n = g.nodes[size_t(node)];
  std::string tuple(1, char(n.final));
  if (to_go > 0) {
    int32_t last = -1;
    int last_hi = -2;
    for (uint32_t e = n.edge_begin; e < n.edge_end; ++e) {
      const ByteEdge& be = g.edges[e];
      const int32_t c = class_of(g, v, be.to, to_go - 1);
      if (c < 0) return -1;
      if (c == last && last_hi + 1 == be.lo) {
        tuple[tuple.size() - 5] = char(be.hi);  // extend the previous range: [lo, hi, class(4)]
      } else {
        char buf[6] = {char(be.lo), char(be.hi)};
        std::memcpy(buf + 2, &c, 4);
        tuple.append(buf, 6);
      }
      last = c;
      last_hi = be.hi;
    }
  }
  auto it = v.classes.find(tuple);
  int32_t id;
  if (it != v.classes.end()) {
    id = it->second;
  } else {
    if (v.classes.size() >= VocabImpl::kMaxClasses) return -1;
    id = int32_t(v.classes.size());
    v.classes.emplace(std::move(tuple), id);
  }
  g.class_memo.emplace(key, id);
  return id;
}

}  // namespace

int32_t lexical_class(const CompiledGrammar& g, int32_t node, int depth) {
  const VocabImpl& v = g.vocab.impl();  // the class table is a cache behind v.mu
  std::lock_guard lk(v.mu);
  return class_of(g, v, node, depth);
}

}  // namespace tern::constrain
