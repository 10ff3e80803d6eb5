#include "formats/gguf/gguf_writer.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace tern {

namespace {

class Bytes {
 public:
  template <typename T>
  void put(T v) {
    const size_t at = b_.size();
    b_.resize(at + sizeof(T));
    std::memcpy(b_.data() + at, &v, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b_.insert(b_.end(), s.begin(), s.end());
  }
  void pad(size_t align) {
    while (b_.size() % align) b_.push_back(0);
  }
  std::vector<uint8_t>& data() { return b_; }

 private:
  std::vector<uint8_t> b_;
};

void put_scalar(Bytes& b, GgufValueType t, int64_t i, double f) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::BOOL: return b.put<uint8_t>(uint8_t(i));
    case GgufValueType::I8: return b.put<int8_t>(int8_t(i));
    case GgufValueType::U16: return b.put<uint16_t>(uint16_t(i));
    case GgufValueType::I16: return b.put<int16_t>(int16_t(i));
    case GgufValueType::U32: return b.put<uint32_t>(uint32_t(i));
    case GgufValueType::I32: return b.put<int32_t>(int32_t(i));
    case GgufValueType::U64: return b.put<uint64_t>(uint64_t(i));
    case GgufValueType::I64: return b.put<int64_t>(i);
    case GgufValueType::F32: return b.put<float>(float(f));
    case GgufValueType::F64: return b.put<double>(f);
    default: return;
  }
}

Status put_value(Bytes& b, const std::string& key, const GgufValue& v) {
  b.put<uint32_t>(uint32_t(v.type));
  if (v.type == GgufValueType::STRING) {
    b.str(v.s);
  } else if (v.type == GgufValueType::ARRAY) {
    b.put<uint32_t>(uint32_t(v.array_type));
    if (v.array_type == GgufValueType::STRING) {
      b.put<uint64_t>(v.strings.size());
      for (const auto& s : v.strings) b.str(s);
    } else if (v.array_type == GgufValueType::F32 || v.array_type == GgufValueType::F64) {
      b.put<uint64_t>(v.floats.size());
      for (double f : v.floats) put_scalar(b, v.array_type, 0, f);
    } else if (v.array_type == GgufValueType::ARRAY) {
      return Status::error(fmt::format("metadata '{}': nested arrays cannot be written", key));
    } else {
      b.put<uint64_t>(v.ints.size());
      for (int64_t i : v.ints) put_scalar(b, v.array_type, i, 0);
    }
  } else {
    put_scalar(b, v.type, v.i, v.f);
  }
  return Status::ok();
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

Status write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                  const std::vector<GgufTensorToWrite>& tensors,
                  const std::function<void(size_t done, size_t total)>& progress) {
  size_t align = 32;
  for (const auto& [k, v] : metadata) {
    if (k == "general.alignment" && v.is_integer() && v.i > 0) align = size_t(v.i);
  }
  Bytes h;
  h.put<uint32_t>(0x46554747);  // "GGUF"
  h.put<uint32_t>(3);
  h.put<uint64_t>(tensors.size());
  h.put<uint64_t>(metadata.size());
  for (const auto& [k, v] : metadata) {
    h.str(k);
    TERN_RETURN_IF_ERROR(put_value(h, k, v));
  }
  std::vector<size_t> sizes;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const GgufTypeTraits& tr = gguf_traits(t.type);
    if (t.shape.empty() || t.shape.back() % tr.block_elems != 0) {
      return Status::error(fmt::format("{}: tensor '{}': row length is not a multiple of the {} block size {}", path,
                                       t.name, tr.name, tr.block_elems));
    }
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < t.shape.size(); ++d) rows *= t.shape[d];
    sizes.push_back(size_t(rows) * gguf_row_bytes(t.type, t.shape.back()));
    h.str(t.name);
    h.put<uint32_t>(uint32_t(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) h.put<uint64_t>(uint64_t(*it));
    h.put<uint32_t>(uint32_t(t.type));
    h.put<uint64_t>(offset);
    offset += (sizes.back() + align - 1) / align * align;
  }
  h.pad(align);

  const std::string tmp = path + ".part";
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) return Status::error(fmt::format("{}: cannot open for writing", tmp));
  auto write = [&](const void* p, size_t n) { return std::fwrite(p, 1, n, f.get()) == n; };
  bool ok = write(h.data().data(), h.data().size());
  std::vector<uint8_t> buf;
  const uint8_t zeros[64] = {};
  for (size_t i = 0; i < tensors.size() && ok; ++i) {
    buf.assign(sizes[i], 0);
    tensors[i].fill(buf.data());
    ok = write(buf.data(), buf.size());
    const size_t pad = (align - sizes[i] % align) % align;
    for (size_t p = pad; p > 0 && ok;) {
      const size_t n = std::min(p, sizeof(zeros));
      ok = write(zeros, n);
      p -= n;
    }
    if (progress) progress(i + 1, tensors.size());
  }
  ok = ok && std::fflush(f.get()) == 0;
  f.reset();
  std::error_code ec;
  if (!ok) {
    std::filesystem::remove(tmp, ec);
    return Status::error(fmt::format("{}: write failed (disk full?)", tmp));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::error(fmt::format("{}: cannot rename to {}: {}", tmp, path, ec.message()));
  return Status::ok();
}

}  // namespace tern
