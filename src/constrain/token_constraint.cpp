#include "constrain/token_constraint.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "constrain/compiled_grammar.h"
#include "constrain/gbnf_parser.h"
#include "constrain/matcher.h"

namespace tern {

Grammar::Grammar(std::shared_ptr<constrain::CompiledGrammar> impl) : impl_(std::move(impl)) {}
Grammar::~Grammar() = default;
const std::string& Grammar::canonical_text() const { return impl_->text; }
const TokenVocabulary& Grammar::vocabulary() const { return impl_->vocab; }
int64_t Grammar::vocab_size() const { return impl_->vocab.size(); }

Result<std::shared_ptr<const Grammar>> compile_gbnf(std::string_view text, const TokenVocabulary& vocab,
                                                    const GrammarLimits& limits) {
  TERN_ASSIGN_OR_RETURN(constrain::GrammarAst ast, constrain::parse_gbnf(text, limits));
  TERN_ASSIGN_OR_RETURN(auto compiled, constrain::build_grammar(ast, vocab, limits));
  return std::shared_ptr<const Grammar>(std::make_shared<Grammar>(std::move(compiled)));
}

Result<std::shared_ptr<const Grammar>> compile_json_schema(const nlohmann::ordered_json& schema, const TokenVocabulary& vocab,
                                                           const GrammarLimits& limits) {
  TERN_ASSIGN_OR_RETURN(std::string text, json_schema_to_gbnf(schema, limits));
  return compile_gbnf(text, vocab, limits);
}

Result<std::shared_ptr<const Grammar>> compile_json_schema_text(std::string_view schema_json, const TokenVocabulary& vocab,
                                                                const GrammarLimits& limits) {
  TERN_ASSIGN_OR_RETURN(std::string text, json_schema_text_to_gbnf(schema_json, limits));
  return compile_gbnf(text, vocab, limits);
}

Result<std::shared_ptr<const Grammar>> compile_regex(std::string_view pattern, const TokenVocabulary& vocab,
                                                     const GrammarLimits& limits) {
  TERN_ASSIGN_OR_RETURN(std::string text, regex_to_gbnf(pattern, limits));
  return compile_gbnf(text, vocab, limits);
}

Result<std::shared_ptr<const Grammar>> json_object_grammar(const TokenVocabulary& vocab) {
  return compile_json_schema(nlohmann::ordered_json{{"type", "object"}, {"additionalProperties", true}}, vocab);
}

Result<std::string> gbnf_prefix_rules(std::string_view gbnf, std::string_view prefix, const GrammarLimits& limits) {
  for (char c : prefix)
    if (!std::isalnum(uint8_t(c)) && c != '-' && c != '_')
      return Status::error("grammar: a rule-name prefix may hold only letters, digits, '-' and '_'");
  TERN_ASSIGN_OR_RETURN(constrain::GrammarAst ast, constrain::parse_gbnf(gbnf, limits));
  for (std::string& name : ast.names) name = std::string(prefix) + name;
  return constrain::print_grammar(ast);
}

// ---- GrammarCache: LRU over the canonical GBNF text.
struct GrammarCache::Impl {
  TokenVocabulary vocab;
  size_t capacity;
  GrammarLimits limits;
  std::mutex mu;
  std::list<std::pair<std::string, std::shared_ptr<const Grammar>>> lru;  // front = most recent
  std::unordered_map<std::string, decltype(lru)::iterator> index;
  std::atomic<bool> stop{false}, warm_done{false};
  std::thread warm;  // the background warm-up (start_warm_up), joined by ~GrammarCache

  Impl(TokenVocabulary v, size_t c, GrammarLimits l) : vocab(std::move(v)), capacity(c), limits(l) {}
  ~Impl() {
    stop = true;
    if (warm.joinable()) warm.join();
  }

  // Keyed by the canonical text: parsing is cheap next to building the automata.
  Result<std::shared_ptr<const Grammar>> get(const std::string& text) {
    TERN_ASSIGN_OR_RETURN(constrain::GrammarAst ast, constrain::parse_gbnf(text, limits));
    const std::string key = constrain::print_grammar(ast);
    {
      std::lock_guard lk(mu);
      auto it = index.find(key);
      if (it != index.end()) {
        lru.splice(lru.begin(), lru, it->second);
        return it->second->second;
      }
    }
    TERN_ASSIGN_OR_RETURN(auto compiled, constrain::build_grammar(ast, vocab, limits));  // unlocked: parallel compiles
    std::shared_ptr<const Grammar> g = std::make_shared<Grammar>(std::move(compiled));
    std::lock_guard lk(mu);
    auto it = index.find(key);
    if (it != index.end()) return it->second->second;
    lru.emplace_front(key, g);
    index.emplace(key, lru.begin());
    while (lru.size() > capacity) {
      index.erase(lru.back().first);
      lru.pop_back();
    }
    return g;
  }
};

GrammarCache::GrammarCache(TokenVocabulary vocab, size_t capacity, GrammarLimits limits)
    : impl_(std::make_unique<Impl>(std::move(vocab), std::max<size_t>(capacity, 1), limits)) {}
GrammarCache::~GrammarCache() = default;

void GrammarCache::start_warm_up() {
  std::lock_guard lk(impl_->mu);
  if (impl_->warm.joinable()) return;
  Impl* impl = impl_.get();
  impl->warm = std::thread([impl] {
    // Nice 19 for this thread only (Linux: a thread's id is a process id to setpriority): it uses idle time, and a
    // request that needs a mask first simply computes it.
    setpriority(PRIO_PROCESS, id_t(syscall(SYS_gettid)), 19);
    warm_up_masks(impl->vocab, &impl->stop);
    impl->warm_done = true;
  });
}

bool GrammarCache::warm_up_done() const { return impl_->warm_done.load(); }
const TokenVocabulary& GrammarCache::vocabulary() const { return impl_->vocab; }
Result<std::shared_ptr<const Grammar>> GrammarCache::gbnf(std::string_view text) { return impl_->get(std::string(text)); }
Result<std::shared_ptr<const Grammar>> GrammarCache::json_schema(const nlohmann::ordered_json& schema) {
  TERN_ASSIGN_OR_RETURN(std::string text, json_schema_to_gbnf(schema, impl_->limits));
  return impl_->get(text);
}
Result<std::shared_ptr<const Grammar>> GrammarCache::json_schema_text(std::string_view schema_json) {
  TERN_ASSIGN_OR_RETURN(std::string text, json_schema_text_to_gbnf(schema_json, impl_->limits));
  return impl_->get(text);
}
Result<std::shared_ptr<const Grammar>> GrammarCache::regex(std::string_view pattern) {
  TERN_ASSIGN_OR_RETURN(std::string text, regex_to_gbnf(pattern, impl_->limits));
  return impl_->get(text);
}
Result<std::shared_ptr<const Grammar>> GrammarCache::json_object() {
  return json_schema(nlohmann::ordered_json{{"type", "object"}, {"additionalProperties", true}});
}

// ---- TokenConstraint: a thin handle over the Matcher.
TokenConstraint::TokenConstraint(std::shared_ptr<const Grammar> grammar)
    : m_(std::make_unique<constrain::Matcher>(std::move(grammar))) {}
TokenConstraint::~TokenConstraint() = default;
TokenConstraint::TokenConstraint(TokenConstraint&&) noexcept = default;
TokenConstraint& TokenConstraint::operator=(TokenConstraint&&) noexcept = default;
int64_t TokenConstraint::vocab_size() const { return m_->vocab_size(); }
void TokenConstraint::allowed(uint32_t* mask) { m_->allowed(mask); }
Status TokenConstraint::accept(int32_t token) { return m_->accept(token); }
void TokenConstraint::rollback(int n) { m_->rollback(n); }
int TokenConstraint::accepted() const { return m_->accepted(); }
bool TokenConstraint::can_end() const { return m_->can_end(); }
bool TokenConstraint::must_end() const { return m_->must_end(); }
bool TokenConstraint::accepts_bytes(std::string_view bytes) const { return m_->accepts_bytes(bytes); }

}  // namespace tern
