// GrammarAst -> per-rule NFA (Thompson, over bytes: code point classes become UTF-8 byte-range sequences) ->
// per-rule DFA (subset construction; a call to rule R is one more symbol) -> checks.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "constrain/compiled_grammar.h"
#include "constrain/utf8_ranges.h"
#include "constrain/vocab_impl.h"

namespace tern::constrain {
namespace {

struct Nfa {
  struct State {
    std::vector<ByteEdge> bytes;
    std::vector<int32_t> eps;
    std::vector<CallEdge> calls;  // ret = target state
  };
  std::vector<State> states;
  int32_t add() {
    states.emplace_back();
    return int32_t(states.size()) - 1;
  }
};

class NfaBuilder {
 public:
  NfaBuilder(Nfa* nfa, int64_t budget) : nfa_(nfa), budget_(budget) {}
  bool over() const { return over_; }

  int32_t build(const Expr& e, int32_t from) {
    if (over_) return from;
    if (int64_t(nfa_->states.size()) > budget_) {
      over_ = true;
      return from;
    }
    switch (e.kind) {
      case Expr::kLiteral: {
        int32_t cur = from;
        for (uint32_t cp : e.cps) {
          std::string bytes;
          append_utf8(bytes, cp);
          for (char c : bytes) {
            const int32_t nx = nfa_->add();
            nfa_->states[size_t(cur)].bytes.push_back({uint8_t(c), uint8_t(c), nx});
            cur = nx;
          }
        }
        return cur;
      }
      case Expr::kClass: {
        const auto ranges = e.negated ? complement_ranges(e.ranges) : e.ranges;
        std::vector<ByteSeq> seqs;
        for (auto [lo, hi] : ranges) utf8_sequences(lo, hi, &seqs);
        const int32_t end = nfa_->add();
        for (const ByteSeq& seq : seqs) {
          int32_t cur = from;
          for (size_t i = 0; i < seq.size(); ++i) {
            const int32_t nx = i + 1 == seq.size() ? end : nfa_->add();
            nfa_->states[size_t(cur)].bytes.push_back({seq[i].first, seq[i].second, nx});
            cur = nx;
          }
        }
        return end;
      }
      case Expr::kToken: {  // resolved by resolve_tokens: the special token's terminal code, byte by byte
        int32_t cur = from;
        for (char c : token_terminal_spelling(int32_t(e.token))) {
          const int32_t nx = nfa_->add();
          nfa_->states[size_t(cur)].bytes.push_back({uint8_t(c), uint8_t(c), nx});
          cur = nx;
        }
        return cur;
      }
      case Expr::kRef: {
        const int32_t nx = nfa_->add();
        nfa_->states[size_t(from)].calls.push_back({e.rule, nx});
        return nx;
      }
      case Expr::kSeq: {
        int32_t cur = from;
        for (const Expr& k : e.kids) cur = build(k, cur);
        return cur;
      }
      case Expr::kAlt: {
        const int32_t end = nfa_->add();
        for (const Expr& k : e.kids) {
          const int32_t s = nfa_->add();
          nfa_->states[size_t(from)].eps.push_back(s);
          const int32_t t = build(k, s);
          nfa_->states[size_t(t)].eps.push_back(end);
        }
        return end;
      }
      case Expr::kRepeat: {
        const Expr& k = e.kids[0];
        int32_t cur = from;
        for (int64_t i = 0; i < e.min && !over_; ++i) cur = build(k, cur);
        if (e.max < 0) {  // loop: cur -k-> t -eps-> cur
          const int32_t loop = nfa_->add();
          nfa_->states[size_t(cur)].eps.push_back(loop);
          const int32_t t = build(k, loop);
          nfa_->states[size_t(t)].eps.push_back(loop);
          return loop;
        }
        const int32_t end = nfa_->add();
        for (int64_t i = e.min; i < e.max && !over_; ++i) {
          nfa_->states[size_t(cur)].eps.push_back(end);
          cur = build(k, cur);
        }
        nfa_->states[size_t(cur)].eps.push_back(end);
        return end;
      }
    }
    return from;
  }

 private:
  Nfa* nfa_;
  int64_t budget_;
  bool over_ = false;
};

void eps_closure(const Nfa& nfa, std::vector<int32_t>* set) {
  std::vector<int32_t> work = *set;
  std::vector<int32_t>& out = *set;
  while (!work.empty()) {
    const int32_t s = work.back();
    work.pop_back();
    for (int32_t t : nfa.states[size_t(s)].eps) {
      if (std::find(out.begin(), out.end(), t) == out.end()) {
        out.push_back(t);
        work.push_back(t);
      }
    }
  }
  std::sort(out.begin(), out.end());
}

// Subset construction of one rule; appends its nodes to g. Returns false when over the state budget.
bool determinize(const Nfa& nfa, int32_t start, int32_t accept, int32_t rule, CompiledGrammar* g, int64_t max_states) {
  std::unordered_map<std::string, int32_t> ids;  // the set's bytes -> DFA node
  std::vector<std::vector<int32_t>> sets;
  const int32_t base = int32_t(g->nodes.size());
  auto intern = [&](std::vector<int32_t> set) {
    eps_closure(nfa, &set);
    // Only states with symbol edges (or the accept state) decide the future: dropping the rest merges DFA states
    // that differ by pass-through states alone (e.g. the first and later turns of a loop).
    set.erase(std::remove_if(set.begin(), set.end(), [&](int32_t s) {
                const auto& st = nfa.states[size_t(s)];
                return s != accept && st.bytes.empty() && st.calls.empty();
              }), set.end());
    std::string key(reinterpret_cast<const char*>(set.data()), set.size() * sizeof(int32_t));
    auto [it, fresh] = ids.emplace(std::move(key), base + int32_t(sets.size()));
    if (fresh) sets.push_back(std::move(set));
    return it->second;
  };
  intern({start});
  std::vector<ByteEdge> tmp_edges;
  std::vector<CallEdge> tmp_calls;
  for (size_t i = 0; i < sets.size(); ++i) {
    if (int64_t(g->nodes.size()) + int64_t(sets.size()) > max_states) return false;
    const std::vector<int32_t> set = sets[i];  // copy: intern may grow `sets`
    Node node;
    node.rule = rule;
    node.final = std::binary_search(set.begin(), set.end(), accept);
    // Byte transitions: split 0..255 at every edge boundary, union the targets of each segment.
    std::vector<int> points = {0, 256};
    for (int32_t s : set) {
      for (const ByteEdge& e : nfa.states[size_t(s)].bytes) {
        points.push_back(e.lo);
        points.push_back(e.hi + 1);
      }
    }
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());
    tmp_edges.clear();
    for (size_t p = 0; p + 1 < points.size(); ++p) {
      const int lo = points[p], hi = points[p + 1] - 1;
      std::vector<int32_t> targets;
      for (int32_t s : set) {
        for (const ByteEdge& e : nfa.states[size_t(s)].bytes) {
          if (e.lo <= lo && hi <= e.hi && std::find(targets.begin(), targets.end(), e.to) == targets.end())
            targets.push_back(e.to);
        }
      }
      if (targets.empty()) continue;
      const int32_t to = intern(std::move(targets));
      if (!tmp_edges.empty() && tmp_edges.back().to == to && tmp_edges.back().hi + 1 == lo) {
        tmp_edges.back().hi = uint8_t(hi);
      } else {
        tmp_edges.push_back({uint8_t(lo), uint8_t(hi), to});
      }
    }
    std::map<int32_t, std::vector<int32_t>> by_rule;
    for (int32_t s : set) {
      for (const CallEdge& c : nfa.states[size_t(s)].calls) {
        auto& v = by_rule[c.rule];
        if (std::find(v.begin(), v.end(), c.ret) == v.end()) v.push_back(c.ret);
      }
    }
    tmp_calls.clear();
    for (auto& [r, targets] : by_rule) tmp_calls.push_back({r, intern(std::move(targets))});
    node.edge_begin = uint32_t(g->edges.size());
    g->edges.insert(g->edges.end(), tmp_edges.begin(), tmp_edges.end());
    node.edge_end = uint32_t(g->edges.size());
    node.call_begin = uint32_t(g->calls.size());
    g->calls.insert(g->calls.end(), tmp_calls.begin(), tmp_calls.end());
    node.call_end = uint32_t(g->calls.size());
    g->nodes.push_back(node);
  }
  return true;
}

// Marks nodes that can reach the end of their rule (through callees that can finish); fixpoint by sweeps.
std::vector<bool> productive_nodes(const CompiledGrammar& g, bool nullable_only) {
  std::vector<bool> ok(g.nodes.size(), false);
  bool changed = true;
  while (changed) {
    changed = false;
    for (size_t i = g.nodes.size(); i-- > 0;) {
      if (ok[i]) continue;
      const Node& n = g.nodes[i];
      bool v = n.final;
      for (uint32_t e = n.edge_begin; !v && !nullable_only && e < n.edge_end; ++e) v = ok[size_t(g.edges[e].to)];
      for (uint32_t c = n.call_begin; !v && c < n.call_end; ++c)
        v = ok[size_t(g.rule_start[size_t(g.calls[c].rule)])] && ok[size_t(g.calls[c].ret)];
      if (v) ok[i] = changed = true;
    }
  }
  return ok;
}

Status check_and_trim(CompiledGrammar* g) {
  const size_t nrules = g->rule_start.size();
  // Rules reachable from root.
  std::vector<bool> reach(nrules, false);
  std::vector<int32_t> work = {g->root};
  reach[size_t(g->root)] = true;
  while (!work.empty()) {
    const int32_t r = work.back();
    work.pop_back();
    const size_t end = size_t(r) + 1 < nrules ? size_t(g->rule_start[size_t(r) + 1]) : g->nodes.size();
    for (size_t i = size_t(g->rule_start[size_t(r)]); i < end; ++i) {
      for (uint32_t c = g->nodes[i].call_begin; c < g->nodes[i].call_end; ++c) {
        const int32_t callee = g->calls[c].rule;
        if (!reach[size_t(callee)]) reach[size_t(callee)] = true, work.push_back(callee);
      }
    }
  }
  const std::vector<bool> prod = productive_nodes(*g, false);
  for (size_t r = 0; r < nrules; ++r) {
    if (reach[r] && !prod[size_t(g->rule_start[r])])
      return Status::error(fmt::format("grammar: rule '{}' can never finish (recursion without a base case, or an "
                                       "empty character class)", g->rule_names[r]));
  }
  // Drop transitions into dead nodes, so that every live stack has a continuation.
  std::vector<ByteEdge> edges;
  std::vector<CallEdge> calls;
  for (Node& n : g->nodes) {
    const uint32_t eb = uint32_t(edges.size()), cb = uint32_t(calls.size());
    for (uint32_t e = n.edge_begin; e < n.edge_end; ++e)
      if (prod[size_t(g->edges[e].to)]) edges.push_back(g->edges[e]);
    for (uint32_t c = n.call_begin; c < n.call_end; ++c) {
      const CallEdge& ce = g->calls[c];
      if (prod[size_t(g->rule_start[size_t(ce.rule)])] && prod[size_t(ce.ret)]) calls.push_back(ce);
    }
    n.edge_begin = eb, n.edge_end = uint32_t(edges.size());
    n.call_begin = cb, n.call_end = uint32_t(calls.size());
  }
  g->edges = std::move(edges);
  g->calls = std::move(calls);
  for (Node& n : g->nodes) n.pure_return = n.final && n.edge_begin == n.edge_end && n.call_begin == n.call_end;

  // Left recursion: rule A calls B (possibly after nullable callees) before consuming a byte, ..., back to A.
  const std::vector<bool> nullable = productive_nodes(*g, true);
  std::vector<std::vector<int32_t>> first_calls(nrules);
  for (size_t r = 0; r < nrules; ++r) {
    std::vector<int32_t> todo = {g->rule_start[r]}, seen;
    while (!todo.empty()) {
      const int32_t n = todo.back();
      todo.pop_back();
      if (std::find(seen.begin(), seen.end(), n) != seen.end()) continue;
      seen.push_back(n);
      const Node& node = g->nodes[size_t(n)];
      for (uint32_t c = node.call_begin; c < node.call_end; ++c) {
        first_calls[r].push_back(g->calls[c].rule);
        if (nullable[size_t(g->rule_start[size_t(g->calls[c].rule)])]) todo.push_back(g->calls[c].ret);
      }
    }
  }
  std::vector<int> color(nrules, 0);  // 0 new, 1 on the DFS path, 2 done
  for (size_t r0 = 0; r0 < nrules; ++r0) {
    if (color[r0]) continue;
    std::vector<std::pair<int32_t, size_t>> dfs = {{int32_t(r0), 0}};
    color[r0] = 1;
    while (!dfs.empty()) {
      auto& [r, i] = dfs.back();
      if (i < first_calls[size_t(r)].size()) {
        const int32_t nx = first_calls[size_t(r)][i++];
        if (color[size_t(nx)] == 1)
          return Status::error(fmt::format("grammar: left recursion through rule '{}' (it can call itself before "
                                           "consuming any text)", g->rule_names[size_t(nx)]));
        if (color[size_t(nx)] == 0) color[size_t(nx)] = 1, dfs.push_back({nx, 0});
      } else {
        color[size_t(r)] = 2;
        dfs.pop_back();
      }
    }
  }
  return Status::ok();
}

bool has_tokens(const Expr& e) {
  if (e.kind == Expr::kToken) return true;
  for (const Expr& k : e.kids)
    if (has_tokens(k)) return true;
  return false;
}

// Token terminals -> ids of this vocabulary's special tokens (an error names one that is not).
Status resolve_tokens(Expr* e, const TokenVocabulary& vocab) {
  std::vector<Expr*> work = {e};
  while (!work.empty()) {
    Expr* x = work.back();
    work.pop_back();
    for (Expr& k : x->kids) work.push_back(&k);
    if (x->kind != Expr::kToken) continue;
    if (x->token < 0) {
      auto id = vocab.special_token(x->token_text);
      if (!id)
        return Status::error(fmt::format("grammar: {} is not a special token of this vocabulary (ordinary text is "
                                         "written as a \"literal\")", print_expr(*x, {})));
      x->token = *id;
    } else if (!vocab.is_special(int32_t(x->token))) {
      return Status::error(fmt::format("grammar: <[{}]> is not a special token of this vocabulary ({} tokens): token "
                                       "terminals name special tokens; ordinary text is written as a \"literal\"",
                                       x->token, vocab.size()));
    }
  }
  return Status::ok();
}

// run_bound[n]: the longest path of byte edges from n through non-final nodes only, n included (the steps taken),
// 255 when such a path loops, -1 when n is final. A lexical walk's whole-subtree step (node_mask.cpp) follows at
// most this many steps: this bound rules out early the subtrees too deep for a counted run such as [A-Za-z0-9]{12}.
void run_bounds(CompiledGrammar* g) {
  const size_t n = g->nodes.size();
  g->run_bound.assign(n, 0);
  std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
  struct Frame {
    int32_t node;
    uint32_t edge;
  };
  std::vector<Frame> stack;
  for (size_t root = 0; root < n; ++root) {
    if (color[root]) continue;
    stack.push_back({int32_t(root), g->nodes[root].edge_begin});
    color[root] = 1;
    while (!stack.empty()) {
      Frame& f = stack.back();
      const Node& nd = g->nodes[size_t(f.node)];
      if (nd.final) {
        g->run_bound[size_t(f.node)] = -1;
      } else if (f.edge < nd.edge_end) {
        const int32_t t = g->edges[f.edge++].to;
        if (g->nodes[size_t(t)].final) continue;
        if (color[size_t(t)] == 1) {
          g->run_bound[size_t(f.node)] = 255;
        } else if (color[size_t(t)] == 2) {
          g->run_bound[size_t(f.node)] = int16_t(std::max<int>(g->run_bound[size_t(f.node)], std::min(255, 1 + g->run_bound[size_t(t)])));
        } else {
          color[size_t(t)] = 1;
          stack.push_back({t, g->nodes[size_t(t)].edge_begin});
        }
        continue;
      }
      color[size_t(f.node)] = 2;
      const int32_t done = f.node;
      stack.pop_back();
      if (!stack.empty()) {
        const int32_t p = stack.back().node;
        g->run_bound[size_t(p)] = int16_t(std::max<int>(g->run_bound[size_t(p)], std::min(255, 1 + g->run_bound[size_t(done)])));
      }
    }
  }
}

}  // namespace

Result<std::shared_ptr<CompiledGrammar>> build_grammar(const GrammarAst& ast, const TokenVocabulary& vocab,
                                                       const GrammarLimits& limits) {
  auto g = std::make_shared<CompiledGrammar>(vocab);
  g->text = print_grammar(ast);
  g->root = ast.root;
  g->rule_names = ast.names;
  const size_t nrules = ast.names.size();
  g->rule_start.resize(nrules);
  g->lexical_key.resize(nrules);
  const Status too_big = Status::error(
      fmt::format("grammar: too large (more than {} automaton states after expanding repetitions)", limits.max_states));
  int64_t nfa_states = 0;
  for (size_t r = 0; r < nrules; ++r) {
    Nfa nfa;
    const int32_t start = nfa.add();
    NfaBuilder b(&nfa, 4 * limits.max_states - nfa_states);
    int32_t accept;
    if (has_tokens(ast.bodies[r])) {
      Expr body = ast.bodies[r];
      TERN_RETURN_IF_ERROR(resolve_tokens(&body, vocab));
      accept = b.build(body, start);
    } else {
      accept = b.build(ast.bodies[r], start);
    }
    if (b.over()) return too_big;
    nfa_states += int64_t(nfa.states.size());
    g->rule_start[r] = int32_t(g->nodes.size());
    if (!determinize(nfa, start, accept, int32_t(r), g.get(), limits.max_states)) return too_big;
    bool calls = false;
    for (const auto& s : nfa.states) calls = calls || !s.calls.empty();
    if (!calls) g->lexical_key[r] = print_expr(ast.bodies[r], ast.names);
  }
  TERN_RETURN_IF_ERROR(check_and_trim(g.get()));
  run_bounds(g.get());
  g->init_mask_slots();
  return g;
}

}  // namespace tern::constrain
