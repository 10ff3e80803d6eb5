// A tiny-arch checkpoint copied to a temporary directory, then broken on purpose: config.json edited
// as JSON, or model.safetensors rewritten with a tensor dropped, added or reshaped. Shared by the unit
// test (Model::load) and the e2e test (the CLI) of issue 15 item 6.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "formats/safetensors.h"
#include "test_support.h"

namespace tern::test {

struct OwnedTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

class BrokenCheckpoint {
 public:
  explicit BrokenCheckpoint(const std::string& arch) {
    namespace fs = std::filesystem;
    for (const auto& e : fs::directory_iterator(tiny_arch_dir(arch))) {
      if (e.path().filename() == "reference.json") continue;
      fs::copy_file(e.path(), fs::path(tmp_.path()) / e.path().filename());
    }
  }
  const std::string& dir() const { return tmp_.path(); }
  std::string config_path() const { return tmp_.file("config.json"); }
  std::string weights_path() const { return tmp_.file("model.safetensors"); }

  void edit_config(const std::function<void(nlohmann::json&)>& edit) {
    auto text = read_text_file(config_path());
    nlohmann::json j = nlohmann::json::parse(text.is_ok() ? *text : std::string("{}"));
    edit(j);
    write_file(config_path(), j.dump(2));
  }

  // Rewrites model.safetensors after `edit` changed the list (tensor bytes are copied out first).
  void edit_tensors(const std::function<void(std::vector<OwnedTensor>&)>& edit) {
    std::vector<OwnedTensor> all;
    {
      auto store = SafetensorsStore::open_file(weights_path());
      if (!store.is_ok()) return;
      for (const auto& t : store->tensors()) {
        const auto* p = static_cast<const uint8_t*>(t.data);
        all.push_back({t.name, t.dtype, t.shape, std::vector<uint8_t>(p, p + t.bytes)});
      }
    }
    edit(all);
    std::vector<TensorToWrite> out;
    for (const auto& t : all) out.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
    const Status st = write_safetensors(weights_path(), out);
    if (!st.is_ok()) throw std::runtime_error(st.message());
  }

  // Changes the first dimension of `name` by `delta` rows (its bytes follow).
  void resize_rows(const std::string& name, int64_t delta) {
    edit_tensors([&](std::vector<OwnedTensor>& all) {
      for (auto& t : all) {
        if (t.name != name) continue;
        const size_t row = t.bytes.size() / size_t(t.shape[0]);
        t.shape[0] += delta;
        t.bytes.resize(row * size_t(t.shape[0]));
      }
    });
  }
  void drop(const std::string& name) {
    edit_tensors([&](std::vector<OwnedTensor>& all) {
      std::erase_if(all, [&](const OwnedTensor& t) { return t.name == name; });
    });
  }
  void add(const std::string& name, std::vector<int64_t> shape) {
    edit_tensors([&](std::vector<OwnedTensor>& all) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      all.push_back({name, DType::F32, shape, std::vector<uint8_t>(size_t(n) * 4, 0)});
    });
  }

 private:
  TempDir tmp_;
};

}  // namespace tern::test
