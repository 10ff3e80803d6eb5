// Temporary: the front door links before the engine lands (replaced in the next commits).
#include "constrain/token_constraint.h"

namespace tern {
namespace constrain {
struct VocabImpl { std::vector<std::string> bytes; };
struct CompiledGrammar { std::string text; TokenVocabulary vocab; };
class Matcher {};
}  // namespace constrain

static Status not_yet() { return Status::error("constrained decoding is not implemented yet"); }
Result<TokenVocabulary> TokenVocabulary::from_tokenizer(const Tokenizer&, int64_t) { return not_yet(); }
Result<TokenVocabulary> TokenVocabulary::from_bytes(std::vector<std::string> b) {
  auto impl = std::make_shared<constrain::VocabImpl>();
  impl->bytes = std::move(b);
  return TokenVocabulary(impl);
}
int64_t TokenVocabulary::size() const { return int64_t(impl_->bytes.size()); }
const std::string& TokenVocabulary::bytes(int32_t id) const { return impl_->bytes.at(size_t(id)); }
Grammar::Grammar(std::shared_ptr<constrain::CompiledGrammar> impl) : impl_(std::move(impl)) {}
Grammar::~Grammar() = default;
const std::string& Grammar::canonical_text() const { return impl_->text; }
const TokenVocabulary& Grammar::vocabulary() const { return impl_->vocab; }
int64_t Grammar::vocab_size() const { return impl_->vocab.size(); }
Result<std::shared_ptr<const Grammar>> compile_gbnf(std::string_view, const TokenVocabulary&, const GrammarLimits&) { return not_yet(); }
Result<std::shared_ptr<const Grammar>> compile_json_schema(const nlohmann::json&, const TokenVocabulary&, const GrammarLimits&) { return not_yet(); }
Result<std::shared_ptr<const Grammar>> compile_regex(std::string_view, const TokenVocabulary&, const GrammarLimits&) { return not_yet(); }
Result<std::shared_ptr<const Grammar>> json_object_grammar(const TokenVocabulary&) { return not_yet(); }
Result<std::string> json_schema_to_gbnf(const nlohmann::json&, const GrammarLimits&) { return not_yet(); }
Result<std::string> regex_to_gbnf(std::string_view, const GrammarLimits&) { return not_yet(); }
struct GrammarCache::Impl { TokenVocabulary vocab; };
GrammarCache::GrammarCache(TokenVocabulary vocab, size_t, GrammarLimits) : impl_(new Impl{std::move(vocab)}) {}
GrammarCache::~GrammarCache() = default;
Result<std::shared_ptr<const Grammar>> GrammarCache::gbnf(std::string_view) { return not_yet(); }
Result<std::shared_ptr<const Grammar>> GrammarCache::json_schema(const nlohmann::json&) { return not_yet(); }
Result<std::shared_ptr<const Grammar>> GrammarCache::regex(std::string_view) { return not_yet(); }
Result<std::shared_ptr<const Grammar>> GrammarCache::json_object() { return not_yet(); }
const TokenVocabulary& GrammarCache::vocabulary() const { return impl_->vocab; }
TokenConstraint::TokenConstraint(std::shared_ptr<const Grammar>) {}
TokenConstraint::~TokenConstraint() = default;
TokenConstraint::TokenConstraint(TokenConstraint&&) noexcept = default;
TokenConstraint& TokenConstraint::operator=(TokenConstraint&&) noexcept = default;
int64_t TokenConstraint::vocab_size() const { return 0; }
void TokenConstraint::allowed(uint32_t*) {}
Status TokenConstraint::accept(int32_t) { return not_yet(); }
void TokenConstraint::rollback(int) {}
int TokenConstraint::accepted() const { return 0; }
bool TokenConstraint::can_end() const { return true; }
bool TokenConstraint::must_end() const { return true; }
bool TokenConstraint::accepts_bytes(std::string_view) const { return false; }
}  // namespace tern
