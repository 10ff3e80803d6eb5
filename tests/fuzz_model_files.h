// Mutated model files against the loaders (issue 14: "2,400 mutated model files: 0 crashes, 0 hangs"). Each case
// takes one file of a real model (docs-llama-28m: config, tokenizer, tokenizer_config with its chat template,
// generation_config, the shard index, the shards; every tiny-archs checkpoint; a GGUF written from tiny-archs/llama
// with docs-llama's tokenizer), mutates it (byte flips, truncation, splices, insertions and deletions; for JSON also
// a value swapped for an extreme one, or the chat template swapped for a hostile one), and loads the model
// directory in a child process: Model::load, Tokenizer::load + encode / decode / streaming decode,
// load_chat_template + render, load_generation_config (for GGUF: GgufFile::open, Model::load, gguf_tokenizer,
// gguf_chat_template). A child that dies by a signal is a crash, one still running after the time limit a hang;
// otherwise the loads either succeeded or returned errors (clean). Case k of seed s is the same on every run.
// Used by tests/unit/test_fuzz_model_files.cpp (a CI-sized run) and bench/fuzz_model_files.cpp (the full run).
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "text/chat_template/chat_template.h"
#include "formats/generation_config.h"
#include "formats/gguf/gguf_file.h"
#include "compress/gguf_quantize.h"
#include "text/gguf_tokenizer.h"
#include "model/model.h"
#include "formats/model_config.h"
#include "text/tokenizer/tokenizer.h"
#include "fuzz_mutations.h"

namespace tern::fuzz {

namespace fs = std::filesystem;
using nlohmann::json;

struct Options {
  std::string shared_dir;      // ../shared (models/docs-llama-28m, models/tiny-archs)
  std::string work_dir;        // scratch space (bases, one folder per case)
  uint64_t seed = 1;
  int first_case = 0, cases = 100;
  double timeout_s = 60;       // a case running longer is a hang
  uint64_t memory_limit = uint64_t(4) << 30;  // address space of each case: more is an allocation failure (abort)
  std::string keep_dir;        // when set, each crashing / hanging case's mutated file is copied here
};

struct Case {
  int index = 0;
  std::string base;      // "docs-llama-28m/tokenizer.json", "tiny-archs/qwen3/model.safetensors", "tiny.gguf"
  std::string mutation;  // what was done, for the report
};

struct Report {
  int cases = 0, loaded = 0, clean_errors = 0, crashes = 0, hangs = 0;
  std::vector<std::string> failures;  // one line per crash / hang
};

// ---- bases --------------------------------------------------------------------------------------------------------

struct BaseModel {
  std::string name;                // as shown in reports
  std::string dir;                 // a directory, or the .gguf file
  std::vector<std::string> files;  // mutable files (names inside dir), empty for the GGUF
  bool gguf = false;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// The models cases start from; writes the GGUF base into work_dir/bases.
inline std::vector<BaseModel> make_bases(const Options& o) {
  std::vector<BaseModel> bases;
  const std::string docs = o.shared_dir + "/models/docs-llama-28m";
  BaseModel d{"docs-llama-28m", docs, {}, false};
  for (const auto& e : fs::directory_iterator(docs)) {
    const std::string n = e.path().filename().string();
    if (n != "reference.json") d.files.push_back(n);
  }
  std::sort(d.files.begin(), d.files.end());
  bases.push_back(d);
  std::vector<std::string> archs;
  for (const auto& e : fs::directory_iterator(o.shared_dir + "/models/tiny-archs")) archs.push_back(e.path().string());
  std::sort(archs.begin(), archs.end());
  for (const std::string& a : archs) {
    BaseModel t{"tiny-archs/" + fs::path(a).filename().string(), a, {}, false};
    for (const char* f : {"config.json", "model.safetensors", "generation_config.json"})
      if (fs::exists(a + "/" + f)) t.files.push_back(f);
    bases.push_back(t);
  }
  // GGUF: tiny-archs/llama with docs-llama-28m's tokenizer and chat template (metadata to mutate), Q8_0 weights.
  const std::string src = o.work_dir + "/bases/gguf_src", gguf = o.work_dir + "/bases/tiny.gguf";
  fs::create_directories(src);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(o.shared_dir + "/models/tiny-archs/llama/" + f, src + "/" + f, fs::copy_options::overwrite_existing);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(docs + "/" + f, src + "/" + f, fs::copy_options::overwrite_existing);
  auto model = Model::load(src);
  if (model.is_ok() && quantize_to_gguf(**model, gguf, GgufType::Q8_0).is_ok()) {
    bases.push_back(BaseModel{"tiny.gguf", gguf, {}, true});
  }
  // GGUF layouts read through the Hugging Face view's rewrites: stacked experts (qwen3_moe), MLA's split
  // kv_b (deepseek_v3), Conv1D transposes (gpt2).
  for (const char* arch : {"qwen3_moe", "deepseek_v3", "gpt2"}) {
    const std::string out = o.work_dir + "/bases/" + arch + ".gguf";
    auto m = Model::load(o.shared_dir + "/models/tiny-archs/" + arch);
    if (m.is_ok() && quantize_to_gguf(**m, out, GgufType::Q8_0).is_ok()) {
      bases.push_back(BaseModel{std::string(arch) + ".gguf", out, {}, true});
    }
  }
  return bases;
}

// ---- one case -----------------------------------------------------------------------------------------------------

// What the child does with the mutated model: every loader and what a user runs right after. Returns the
// number of loads that failed cleanly (with a Status).
inline int exercise(const std::string& path, bool gguf) {
  int errors = 0;
  const std::string text = "Hello, world! <|im_start|>user\nHow are you? 日本語 🙂 \xff\xfe end<|im_end|>\n";
  const json ctx = {{"messages",
                     {{{"role", "system"}, {"content", "Be brief."}},
                      {{"role", "user"}, {"content", "hi"}},
                      {{"role", "assistant"}, {"content", "hello"}},
                      {{"role", "user"}, {"content", "bye"}}}},
                    {"add_generation_prompt", true},
                    {"bos_token", "<|begin_of_text|>"},
                    {"eos_token", "<|end_of_text|>"}};
  auto use_tokenizer = [&](const Tokenizer& tok) {
    const std::vector<int32_t> ids = tok.encode(text);
    (void)tok.decode(ids);
    (void)tok.decode(ids, /*skip_special_tokens=*/true);
    StreamingDecoder sd(tok);
    for (int32_t id : ids) (void)sd.push(id);
    (void)sd.flush();
    for (int64_t id = 0; id < std::min<int64_t>(tok.vocab_size(), 300); ++id) (void)tok.id_to_token(int32_t(id));
  };
  auto use_template = [&](const ModelChatTemplate& t) {
    json c = t.special_tokens;
    for (auto it = ctx.begin(); it != ctx.end(); ++it) c[it.key()] = it.value();
    if (!t.chat_template.render(c).is_ok()) ++errors;
  };
  auto model = Model::load(path);
  if (!model.is_ok()) ++errors;
  if (gguf) {
    auto g = GgufFile::open(path);
    if (!g.is_ok()) return errors + 1;
    auto tok = gguf_tokenizer(*g);
    if (tok.is_ok()) use_tokenizer(*tok);
    else ++errors;
    auto t = gguf_chat_template(*g);
    if (t.is_ok()) use_template(*t);
    else ++errors;
    return errors;
  }
  auto tok = Tokenizer::load(path);
  if (tok.is_ok()) use_tokenizer(*tok);
  else ++errors;
  auto t = load_chat_template(path);
  if (t.is_ok()) use_template(*t);
  else ++errors;
  auto config = load_model_config(path);
  if (config.is_ok()) {
    if (!load_generation_config(path, config->vocab_size).is_ok()) ++errors;
  } else {
    ++errors;
  }
  return errors;
}

enum class Outcome { kLoaded, kCleanError, kCrash, kHang };

// Runs exercise() in a child process with the memory and time bounds.
inline Outcome run_child(const std::string& path, bool gguf, const Options& o, std::string& detail) {
  const pid_t pid = fork();
  if (pid == 0) {
    rlimit r{o.memory_limit, o.memory_limit};
    setrlimit(RLIMIT_AS, &r);
    const int errors = exercise(path, gguf);
    _exit(errors > 0 ? 1 : 0);
  }
  if (pid < 0) {
    detail = "fork failed";
    return Outcome::kCrash;
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.timeout_s);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      detail = "still running after " + std::to_string(int(o.timeout_s)) + " s";
      return Outcome::kHang;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFSIGNALED(status)) {
    detail = std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return Outcome::kCrash;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) <= 1) return WEXITSTATUS(status) == 0 ? Outcome::kLoaded : Outcome::kCleanError;
  detail = "exit status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return Outcome::kCrash;
}

// Builds case `index`: a model folder under work_dir (links to the base's other files, the mutated one written).
inline Case make_case(const std::vector<BaseModel>& bases, const Options& o, int index, std::string& path,
                      bool& gguf) {
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + uint64_t(index));
  // docs-llama-28m's files are the most varied: half the cases; the GGUF a fifth; the tiny checkpoints the rest.
  const uint64_t pick = rng() % 10;
  const BaseModel* base = &bases[0];
  if (pick >= 5 && pick < 7 && bases.back().gguf) base = &bases.back();
  else if (pick >= 7) base = &bases[1 + rng() % (bases.size() - (bases.back().gguf ? 2 : 1))];
  Case c;
  c.index = index;
  const std::string dir = o.work_dir + "/case";
  fs::remove_all(dir);
  fs::create_directories(dir);
  gguf = base->gguf;
  std::string name, bytes;
  if (gguf) {
    name = "tiny.gguf";
    bytes = read_bytes(base->dir);
    path = dir + "/" + name;
  } else {
    name = base->files[rng() % base->files.size()];
    // Within docs-llama-28m, the tokenizer and template files are where the logic is: weight them up.
    if (base == &bases[0] && rng() % 2 == 0) name = rng() % 2 ? "tokenizer.json" : "tokenizer_config.json";
    for (const std::string& f : base->files)
      if (f != name) fs::create_symlink(base->dir + "/" + f, dir + "/" + f);
    bytes = read_bytes(base->dir + "/" + name);
    path = dir;
  }
  c.base = base->name + (gguf ? "" : "/" + name);
  const bool is_json = name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0;
  if (!(is_json && rng() % 2 == 0 && mutate_json(bytes, name, rng, c.mutation))) mutate_bytes(bytes, name, rng, c.mutation);
  write_bytes(dir + "/" + name, bytes);
  return c;
}

inline Report run(const Options& o, const std::function<void(const Case&, Outcome, const std::string&)>& on_case = {}) {
  fs::create_directories(o.work_dir);
  const std::vector<BaseModel> bases = make_bases(o);
  Report rep;
  for (int k = o.first_case; k < o.first_case + o.cases; ++k) {
    std::string path, detail;
    bool gguf = false;
    const Case c = make_case(bases, o, k, path, gguf);
    const Outcome out = run_child(path, gguf, o, detail);
    ++rep.cases;
    if (out == Outcome::kLoaded) ++rep.loaded;
    if (out == Outcome::kCleanError) ++rep.clean_errors;
    if (out == Outcome::kCrash || out == Outcome::kHang) {
      ++(out == Outcome::kCrash ? rep.crashes : rep.hangs);
      rep.failures.push_back("case " + std::to_string(k) + " (seed " + std::to_string(o.seed) + "): " + c.base + ", " +
                             c.mutation + ": " + detail);
      if (!o.keep_dir.empty()) {
        fs::create_directories(o.keep_dir);
        const std::string name = fs::path(c.base).filename().string();
        fs::copy_file(gguf ? path : path + "/" + name, o.keep_dir + "/case" + std::to_string(k) + "_" + name,
                      fs::copy_options::overwrite_existing);
      }
    }
    if (on_case) on_case(c, out, detail);
  }
  fs::remove_all(o.work_dir + "/case");
  return rep;
}

}  // namespace tern::fuzz
