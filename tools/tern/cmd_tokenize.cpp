// tern tokenize / tern detokenize: the tokenizer as a pipe. tokenize reads UTF-8 text on stdin (verbatim, a
// trailing newline included) and prints the ids as one JSON array; detokenize reads such an array and prints
// the text. Bad JSON, non-integer ids and ids outside the vocabulary are one-line errors (exit 1).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli_common.h"

namespace tern::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer;      // tokenizer.json or a model directory
  bool no_special = false;    // tokenize: no BOS / post-processing
  bool skip_special = false;  // detokenize: drop special tokens from the text
};

std::string read_stdin() { return std::string(std::istreambuf_iterator<char>(std::cin), {}); }

void tokenize(const TokenizeOptions& o) {
  auto tok = unwrap(Tokenizer::load(o.tokenizer));
  const std::vector<int32_t> ids = tok.encode(read_stdin(), /*add_special_tokens=*/!o.no_special);
  std::string out = nlohmann::json(ids).dump();
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
}

// The ids of a JSON array such as [0, 601, 863]; every element must be an integer id of this vocabulary.
std::vector<int32_t> parse_ids(const std::string& text, int64_t vocab_size) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("stdin is not valid JSON (expected an array of token ids such as [0, 601, 863])");
  if (!j.is_array()) fail("stdin must hold a JSON array of token ids, got " + std::string(j.type_name()));
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    if (!e.is_number_integer()) fail("element " + std::to_string(i) + " is not an integer token id: " + e.dump());
    // Compare as the widest type first, so huge values cannot wrap into range.
    const bool negative = e.is_number_unsigned() ? false : e.get<int64_t>() < 0;
    const uint64_t v = negative ? 0 : e.get<uint64_t>();
    if (negative || v >= uint64_t(vocab_size)) {
      fail("element " + std::to_string(i) + ": token id " + e.dump() + " is outside the vocabulary [0, " +
           std::to_string(vocab_size) + ")");
    }
    ids.push_back(int32_t(v));
  }
  return ids;
}

void detokenize(const TokenizeOptions& o) {
  auto tok = unwrap(Tokenizer::load(o.tokenizer));
  const auto ids = parse_ids(read_stdin(), tok.vocab_size());
  const std::string text = tok.decode(ids, o.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* t = app.add_subcommand("tokenize", "print the token ids of the UTF-8 text on stdin as a JSON array");
  t->add_option("--tokenizer,-m,--model", o->tokenizer, "tokenizer.json or a model directory")->required();
  t->add_flag("--no-special", o->no_special, "no BOS / post-processor special tokens");
  t->callback([o] { tokenize(*o); });

  CLI::App* d = app.add_subcommand("detokenize", "print the text of a JSON array of token ids read on stdin");
  d->add_option("--tokenizer,-m,--model", o->tokenizer, "tokenizer.json or a model directory")->required();
  d->add_flag("--skip-special", o->skip_special, "leave special tokens out of the text");
  d->callback([o] { detokenize(*o); });
}

}  // namespace tern::cli
