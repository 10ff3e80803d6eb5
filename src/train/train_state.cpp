#include "train/train_state.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace tern::train {

namespace {
constexpr char kMagic[8] = {'T', 'E', 'R', 'N', 'T', 'R', 'N', '1'};
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;
}  // namespace

Status save_train_state(const TrainState& s, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) return Status::error(fmt::format("{}: cannot write", tmp));
    const uint64_t head[9] = {s.step, s.steps, s.data_pos, s.epoch, s.tokens_hash, s.params, s.batch, s.seq, s.accum};
    bool ok = std::fwrite(kMagic, 1, 8, f.get()) == 8 && std::fwrite(head, sizeof head, 1, f.get()) == 1 &&
              std::fwrite(s.m.data(), sizeof(float), s.m.size(), f.get()) == s.m.size() &&
              std::fwrite(s.v.data(), sizeof(float), s.v.size(), f.get()) == s.v.size();
    ok = std::fflush(f.get()) == 0 && ok;
    if (!ok) return Status::error(fmt::format("{}: write failed", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::error(fmt::format("{}: cannot rename to {}: {}", tmp, path, ec.message()));
  return Status::ok();
}

Result<TrainState> load_train_state(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) return Status::error(fmt::format("{}: cannot open (no checkpoint to resume from)", path));
  char magic[8];
  uint64_t head[9];
  if (std::fread(magic, 1, 8, f.get()) != 8 || std::memcmp(magic, kMagic, 8) != 0)
    return Status::error(fmt::format("{}: not a tern trainer state (bad magic)", path));
  if (std::fread(head, sizeof head, 1, f.get()) != 1) return Status::error(fmt::format("{}: truncated header", path));
  TrainState s;
  s.step = head[0];
  s.steps = head[1];
  s.data_pos = head[2];
  s.epoch = head[3];
  s.tokens_hash = head[4];
  s.params = head[5];
  s.batch = head[6];
  s.seq = head[7];
  s.accum = head[8];
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec || s.params > (uint64_t(1) << 36) || size != 8 + sizeof head + 2 * s.params * sizeof(float))
    return Status::error(fmt::format("{}: size does not match {} parameters", path, s.params));
  s.m.resize(s.params);
  s.v.resize(s.params);
  if (std::fread(s.m.data(), sizeof(float), s.params, f.get()) != s.params ||
      std::fread(s.v.data(), sizeof(float), s.params, f.get()) != s.params)
    return Status::error(fmt::format("{}: truncated moments", path));
  return s;
}

uint64_t hash_token_ids(const std::vector<int32_t>& tokens) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : tokens) {
    for (int i = 0; i < 4; ++i) {
      h ^= uint64_t((uint32_t(t) >> (8 * i)) & 0xff);
      h *= 1099511628211ull;
    }
  }
  return h;
}

}  // namespace tern::train
