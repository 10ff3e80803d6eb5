#include "constrain/token_vocabulary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <numeric>

#include "constrain/vocab_impl.h"
#include "text/tokenizer/tokenizer.h"

namespace tern {
namespace {

void build_trie(const std::vector<std::string>& bytes, constrain::TokenTrie* t) {
  std::vector<int32_t> order;
  for (size_t i = 0; i < bytes.size(); ++i)
    if (!bytes[i].empty()) order.push_back(int32_t(i));
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes[size_t(a)] < bytes[size_t(b)]; });
  t->next_same.assign(bytes.size(), -1);
  auto add = [&](uint8_t b) {
    constrain::TrieNode n;
    n.byte = b;
    t->nodes.push_back(n);
    t->tok_begin.push_back(0);
    t->tok_end.push_back(0);
    return int32_t(t->nodes.size()) - 1;
  };
  add(0);
  t->tok_begin.push_back(0);
  t->tok_end.push_back(0);
  struct Item {
    int32_t node;
    size_t lo, hi, depth;  // order[lo, hi) share the node's prefix of length depth
  };
  // Depth-first: a child's block of children lands near its parent's block (walks are depth-first too).
  std::vector<Item> stack = {{0, 0, order.size(), 0}};
  std::vector<Item> kids;
  while (!stack.empty()) {
    const Item it = stack.back();
    stack.pop_back();
    t->tok_begin[size_t(it.node)] = int32_t(it.lo);
    t->tok_end[size_t(it.node)] = int32_t(it.hi);
    size_t i = it.lo;
    int32_t last = -1;
    while (i < it.hi && bytes[size_t(order[i])].size() == it.depth) {  // tokens ending here sort first
      const int32_t id = order[i++];
      if (last < 0) t->nodes[size_t(it.node)].token = id;
      else t->next_same[size_t(last)] = id, t->nodes[size_t(it.node)].more = 1;
      last = id;
    }
    t->nodes[size_t(it.node)].first_child = int32_t(t->nodes.size());
    kids.clear();
    while (i < it.hi) {
      const uint8_t b = uint8_t(bytes[size_t(order[i])][it.depth]);
      size_t j = i;
      while (j < it.hi && uint8_t(bytes[size_t(order[j])][it.depth]) == b) ++j;
      const int32_t child = add(b);
      ++t->nodes[size_t(it.node)].n_children;
      kids.push_back({child, i, j, it.depth + 1});
      i = j;
    }
    stack.insert(stack.end(), kids.rbegin(), kids.rend());
  }
  t->sorted = std::move(order);
}

uint64_t byte_set_hash(const constrain::ByteSet& s) {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (uint64_t w : s.w) h = (h ^ w) * 0xFF51AFD7ED558CCDull, h ^= h >> 32;
  return h;
}

// below and byte_sets: the bytes under each node, bottom-up (children come after their parent), interned in an
// open-addressing table of set ids (no allocation per set: this runs once per vocabulary load, ~100k internal
// nodes for Llama-3).
void bytes_below(constrain::TokenTrie* tp) {
  constrain::TokenTrie& t = *tp;
  t.byte_sets.assign(1, constrain::ByteSet{});
  std::vector<uint32_t> slots(size_t(1) << 12, UINT32_MAX);
  auto intern = [&](const constrain::ByteSet& s) -> uint32_t {
    if (t.byte_sets.size() * 2 >= slots.size()) {  // grow: keep the table at most half full
      std::vector<uint32_t> bigger(slots.size() * 2, UINT32_MAX);
      for (uint32_t id = 0; id < t.byte_sets.size(); ++id) {
        size_t i = byte_set_hash(t.byte_sets[id]) & (bigger.size() - 1);
        while (bigger[i] != UINT32_MAX) i = (i + 1) & (bigger.size() - 1);
        bigger[i] = id;
      }
      slots.swap(bigger);
    }
    size_t i = byte_set_hash(s) & (slots.size() - 1);
    for (; slots[i] != UINT32_MAX; i = (i + 1) & (slots.size() - 1))
      if (t.byte_sets[slots[i]] == s) return slots[i];
    slots[i] = uint32_t(t.byte_sets.size());
    t.byte_sets.push_back(s);
    return slots[i];
  };
  intern(constrain::ByteSet{});  // id 0, the leaves' empty set
  for (size_t i = t.nodes.size(); i-- > 0;) {
    const constrain::TrieNode& n = t.nodes[i];
    if (n.n_children == 0) continue;  // leaves: the empty set
    constrain::ByteSet s;
    for (int32_t c = n.first_child; c < n.first_child + n.n_children; ++c) {
      const constrain::ByteSet& sub = t.byte_sets[t.nodes[size_t(c)].below];
      for (int k = 0; k < 4; ++k) s.w[k] |= sub.w[k];
      const uint8_t b = t.nodes[size_t(c)].byte;
      s.w[b >> 6] |= uint64_t(1) << (b & 63);
    }
    t.nodes[i].below = intern(s);
  }
}

// depth and max_len of every node (children come after their parent).
void depths(constrain::TokenTrie* tp) {
  constrain::TokenTrie& t = *tp;
  t.depth.assign(t.nodes.size(), 0);
  t.max_len.assign(t.nodes.size(), 0);
  for (size_t i = 0; i < t.nodes.size(); ++i)
    for (int32_t c = t.nodes[i].first_child; c < t.nodes[i].first_child + t.nodes[i].n_children; ++c)
      t.depth[size_t(c)] = uint8_t(std::min(255, t.depth[i] + 1));
  for (size_t i = t.nodes.size(); i-- > 0;) {
    uint8_t m = t.nodes[i].token >= 0 ? t.depth[i] : 0;
    for (int32_t c = t.nodes[i].first_child; c < t.nodes[i].first_child + t.nodes[i].n_children; ++c)
      m = std::max(m, t.max_len[size_t(c)]);
    t.max_len[i] = m;
  }
}

}  // namespace

Result<TokenVocabulary> TokenVocabulary::from_bytes(std::vector<std::string> bytes,
                                                    std::vector<std::pair<int32_t, std::string>> special) {
  if (bytes.empty()) return Status::error("token vocabulary is empty");
  if (bytes.size() > (size_t(1) << 30)) return Status::error("token vocabulary is too large");
  auto impl = std::make_shared<constrain::VocabImpl>();
  // 0xFF starts the special tokens' terminal codes: an ordinary token holding it could never be allowed by a
  // grammar (no UTF-8 text contains 0xFF) and would share their trie paths, so it spells nothing here.
  for (std::string& b : bytes)
    if (b.find(char(constrain::kTokenTerminalByte)) != std::string::npos) b.clear();
  for (auto& [id, text] : special) {
    if (id < 0 || size_t(id) >= bytes.size())
      return Status::error(fmt::format("token vocabulary: special token id {} is out of range", id));
    bytes[size_t(id)] = constrain::token_terminal_spelling(id);
    if (!text.empty()) impl->special_ids.emplace(std::move(text), id);  // the first of equal texts wins
  }
  impl->bytes = std::move(bytes);
  impl->words = (int64_t(impl->bytes.size()) + 31) / 32;
  build_trie(impl->bytes, &impl->trie);
  depths(&impl->trie);
  bytes_below(&impl->trie);
  std::vector<std::string> long_bytes(impl->bytes.size());
  for (size_t id = 0; id < impl->bytes.size(); ++id)
    if (impl->bytes[id].size() > size_t(constrain::kShortTokenBytes)) long_bytes[id] = impl->bytes[id];
  build_trie(long_bytes, &impl->long_trie);
  depths(&impl->long_trie);
  bytes_below(&impl->long_trie);
  // Each long-trie node's twin in the main trie: follow the parent's twin by the node's byte.
  const constrain::TokenTrie& t = impl->trie;
  const constrain::TokenTrie& lt = impl->long_trie;
  impl->long_to_main.assign(lt.nodes.size(), 0);
  for (size_t i = 0; i < lt.nodes.size(); ++i)  // children come after their parent
    for (int32_t c = lt.nodes[i].first_child; c < lt.nodes[i].first_child + lt.nodes[i].n_children; ++c) {
      const constrain::TrieNode& p = t.nodes[size_t(impl->long_to_main[i])];
      int32_t m = p.first_child;
      while (t.nodes[size_t(m)].byte != lt.nodes[size_t(c)].byte) ++m;  // present: the main trie holds every token
      impl->long_to_main[size_t(c)] = m;
    }
  return TokenVocabulary(std::move(impl));
}

// Each token's exact bytes. decode_bytes of a token alone may drop a leading space (SentencePiece decoders strip
// the first one), so a token is decoded after a reference token and the reference's bytes are cut off.
Result<TokenVocabulary> TokenVocabulary::from_tokenizer(const Tokenizer& tok, int64_t model_vocab) {
  const int64_t n = tok.vocab_size();
  if (model_vocab <= 0) model_vocab = n;
  if (model_vocab < n)
    return Status::error(fmt::format("token vocabulary: model vocab {} is smaller than the tokenizer's {}", model_vocab, n));
  int32_t ref = -1;
  for (int32_t id = 0; id < n && ref < 0; ++id) {
    if (!tok.is_special(id) && tok.decode_bytes({id}) == "a") ref = id;
  }
  std::string ref_bytes = ref >= 0 ? tok.decode_bytes({ref}) : "";
  std::vector<std::string> bytes(static_cast<size_t>(model_vocab));
  std::vector<std::pair<int32_t, std::string>> special;
  for (int32_t id = 0; id < n; ++id) {
    if (tok.is_special(id)) {
      special.emplace_back(id, tok.id_to_token(id));
      continue;
    }
    if (ref < 0) {
      bytes[size_t(id)] = tok.decode_bytes({id});
      continue;
    }
    std::string both = tok.decode_bytes({ref, id});
    if (both.compare(0, ref_bytes.size(), ref_bytes) == 0) bytes[size_t(id)] = both.substr(ref_bytes.size());
    else bytes[size_t(id)] = tok.decode_bytes({id});
  }
  return from_bytes(std::move(bytes), std::move(special));
}

int64_t TokenVocabulary::size() const { return int64_t(impl_->bytes.size()); }

const std::string& TokenVocabulary::spelling(int32_t id) const {
  static const std::string kEmpty;
  return id >= 0 && size_t(id) < impl_->bytes.size() ? impl_->bytes[size_t(id)] : kEmpty;
}

bool TokenVocabulary::is_special(int32_t id) const {
  const std::string& s = spelling(id);
  return !s.empty() && uint8_t(s[0]) == constrain::kTokenTerminalByte;
}

const std::string& TokenVocabulary::bytes(int32_t id) const {
  static const std::string kEmpty;
  return is_special(id) ? kEmpty : spelling(id);
}

std::optional<int32_t> TokenVocabulary::special_token(std::string_view text) const {
  auto it = impl_->special_ids.find(std::string(text));
  if (it == impl_->special_ids.end()) return std::nullopt;
  return it->second;
}

namespace constrain {

std::string token_terminal_spelling(int32_t id) {
  std::string s(1, char(kTokenTerminalByte));
  for (int shift = 24; shift >= 0; shift -= 8) s += char(uint8_t(uint32_t(id) >> shift));
  return s;
}

}  // namespace constrain

}  // namespace tern
