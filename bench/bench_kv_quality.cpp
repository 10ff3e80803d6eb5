// Quality cost of KV cache storage types, on the perplexity protocol of DESIGN.md (tern's: windows
// of --ctx tokens, the first --windows of them, every token but each window's first scored): for
// f32, bf16, int8 and fp8 KV the perplexity, and against f32 KV the mean KL divergence of the
// next-token distributions, the top-1 agreement and the time. (KL over KV dtypes is computed here,
// not by `tern eval`, which reports perplexity only.)
// Usage: bench_kv_quality MODEL_DIR TEXT_FILE [--ctx 512] [--windows 40] [--threads 2] [--json]
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench_common.h"
#include "core/mapped_file.h"
#include "model/decoder.h"
#include "text/tokenizer/tokenizer.h"

using namespace tern;

namespace {

// log-softmax of x [n] into out
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max<double>(mx, x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(s);
  out.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - lse;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: bench_kv_quality MODEL_DIR TEXT_FILE [--ctx 512] [--windows 40] [--threads 2] [--json]\n");
    return 2;
  }
  const int64_t ctx_len = std::stoll(bench::arg_value(argc, argv, "--ctx", "512"));
  const int64_t max_windows = std::stoll(bench::arg_value(argc, argv, "--windows", "40"));
  const int threads = std::stoi(bench::arg_value(argc, argv, "--threads", "2"));
  const bool json = bench::has_flag(argc, argv, "--json");
  auto model = Model::load(argv[1]);
  auto tok = Tokenizer::load(argv[1]);
  auto text = read_text_file(argv[2]);
  if (!model.is_ok() || !tok.is_ok() || !text.is_ok()) {
    fmt::print(stderr, "cannot load the model, its tokenizer or the text\n");
    return 1;
  }
  const Model& m = **model;
  const int64_t vocab = m.config().vocab_size, H = m.config().hidden_size;
  const auto tokens = tok->encode(*text);
  const int64_t windows = std::min<int64_t>(int64_t(tokens.size()) / ctx_len, max_windows);
  ThreadPool pool(threads);
  ExecContext ctx(pool, CpuFeatures::detect());
  Decoder dec(m, 512);
  const KvDType dtypes[] = {KvDType::F32, KvDType::BF16, KvDType::INT8, KvDType::FP8};
  struct Acc {
    double nll = 0, kl = 0, agree = 0, seconds = 0;
  } acc[4];
  std::vector<float> hidden(size_t(ctx_len * H)), ref(size_t(ctx_len * vocab)), logits(ref.size());
  std::vector<double> lp_ref, lp;
  int64_t scored = 0;
  for (int64_t w = 0; w < windows; ++w) {
    const int32_t* ids = tokens.data() + w * ctx_len;
    for (int d = 0; d < 4; ++d) {
      SequenceKvCache kv(m.config(), ctx_len, dtypes[d]);
      const double t0 = bench::now_s();
      if (!dec.forward(ctx, kv, ids, ctx_len, ctx_len, hidden.data()).is_ok()) return 1;
      acc[d].seconds += bench::now_s() - t0;
      float* out = d == 0 ? ref.data() : logits.data();
      dec.logits(ctx, hidden.data(), ctx_len, out);
      for (int64_t i = 0; i + 1 < ctx_len; ++i) {
        log_softmax(out + i * vocab, vocab, lp);
        acc[d].nll -= lp[size_t(ids[i + 1])];
        if (d == 0) continue;
        log_softmax(ref.data() + i * vocab, vocab, lp_ref);
        double kl = 0;
        for (int64_t v = 0; v < vocab; ++v) kl += std::exp(lp_ref[size_t(v)]) * (lp_ref[size_t(v)] - lp[size_t(v)]);
        acc[d].kl += kl;
        const float* a = ref.data() + i * vocab;
        const float* b = out + i * vocab;
        acc[d].agree += (std::max_element(a, a + vocab) - a) == (std::max_element(b, b + vocab) - b);
      }
    }
    scored += ctx_len - 1;
  }
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  const double ppl_f32 = std::exp(acc[0].nll / double(scored));
  for (int d = 0; d < 4; ++d) {
    const double ppl = std::exp(acc[d].nll / double(scored));
    const double kl = acc[d].kl / double(scored), agree = d == 0 ? 1.0 : acc[d].agree / double(scored);
    const double tps = double(windows * ctx_len) / acc[d].seconds;
    if (json) {
      j.push_back({{"kv_dtype", kv_dtype_name(dtypes[d])}, {"ppl", ppl}, {"delta_ppl", ppl - ppl_f32},
                   {"mean_kl_vs_f32", kl}, {"top1_agreement_vs_f32", agree}, {"forward_tokens_per_s", tps},
                   {"tokens_scored", scored}});
    } else {
      fmt::print("kv {:4s}: ppl {:.6f} (Δ {:+.6f})  KL vs f32 {:.3e}  top-1 agreement {:.5f}  forward {:.0f} tok/s\n",
                 kv_dtype_name(dtypes[d]), ppl, ppl - ppl_f32, kl, agree, tps);
    }
  }
  if (json) fmt::print("{}\n", j.dump());
  return 0;
}
