// A tiny mixture-of-experts checkpoint that `tern run` and `tern serve` can read text for (the MPI
// e2e tests of expert parallelism, issue 17): the tiny-arch reference shared/models/tiny-archs/ARCH
// (random weights, a vocabulary of 1024, no tokenizer) linked into a temporary directory named ARCH
// (so `tern serve` calls the model ARCH) beside a byte-level BPE tokenizer.json of exactly that
// vocabulary: ids 0..127 are the ASCII bytes (GPT-2's byte-to-character map; the tests' prompts are
// ASCII), ids 128..1023 the strings "<128>" .. "<1023>", which encoding never produces (no merges)
// but which make every id the model may emit decode to its own valid UTF-8 text — so comparing two
// runs' text compares their tokens.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "test_support.h"

namespace tern::test {

class TinyMoeModel {
 public:
  explicit TinyMoeModel(const std::string& arch) : path_(dir_.file(arch)) {
    namespace fs = std::filesystem;
    const std::string src = tiny_arch_dir(arch);
    fs::create_directories(path_);
    for (const char* f : {"config.json", "generation_config.json"}) fs::copy_file(src + "/" + f, path_ + "/" + f);
    fs::create_symlink(src + "/model.safetensors", path_ + "/model.safetensors");
    write_file(path_ + "/tokenizer.json", byte_level_tokenizer_json());
  }
  const std::string& path() const { return path_; }

 private:
  static std::string utf8(int cp) {
    std::string s;
    if (cp < 0x80) {
      s += char(cp);
    } else {  // the map's characters are all below U+0800
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    return s;
  }
  // GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 upwards.
  static std::string byte_level_tokenizer_json() {
    std::string ch[256];
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      ch[b] = utf8(printable ? b : next++);
    }
    nlohmann::ordered_json vocab;
    for (int b = 0; b < 128; ++b) vocab[ch[b]] = b;
    for (int id = 128; id < 1024; ++id) vocab["<" + std::to_string(id) + ">"] = id;
    nlohmann::ordered_json j;
    j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}};
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
    j["decoder"] = {{"type", "ByteLevel"}};
    return j.dump();
  }

  TempDir dir_;
  std::string path_;
};

}  // namespace tern::test
