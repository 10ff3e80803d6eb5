// The quantization tests' text protocol on docs-llama-28m: docs-val.txt cut at the line nearest its
// middle, the first half for calibration and the second for evaluation (never the calibration text),
// both encoded with the model's tokenizer (BOS added).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "test_support.h"
#include "text/tokenizer/tokenizer.h"

namespace tern::test {

struct DocsValHalves {
  std::vector<int32_t> calib, eval;
};

// Fails the calling test (ADD_FAILURE) and returns empty halves when the tokenizer or the text is missing.
inline DocsValHalves docs_val_halves(const std::string& model_dir) {
  DocsValHalves h;
  auto tok = Tokenizer::load(model_dir);
  auto text = read_text_file(shared_dir() + "/data/docs-val.txt");
  if (!tok.is_ok() || !text.is_ok()) {
    ADD_FAILURE() << "docs-val halves: " << (tok.is_ok() ? text.status().message() : tok.status().message());
    return h;
  }
  const size_t cut = text->find('\n', text->size() / 2);
  h.calib = tok->encode(text->substr(0, cut), true);
  h.eval = tok->encode(text->substr(cut + 1), true);
  return h;
}

}  // namespace tern::test
