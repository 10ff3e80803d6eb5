#include "formats/gguf/gguf_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>

namespace tern {

namespace {

constexpr uint64_t kMaxStringBytes = uint64_t(1) << 30;  // 1 GiB: more is a corrupt length, not a string
constexpr uint32_t kMaxDims = 4;                         // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;

// Bounds-checked little-endian reader over the file bytes; the first failure sticks.
class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  bool ok() const { return err_.empty(); }
  const std::string& err() const { return err_; }
  void fail(std::string what) {
    if (err_.empty()) err_ = std::move(what);
  }

  template <typename T>
  T read(const char* what) {
    T v{};
    if (!ok()) return v;
    if (left() < sizeof(T)) {
      fail(fmt::format("truncated at byte {} reading {}", pos_, what));
      return v;
    }
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    if (!ok()) return {};
    if (len > kMaxStringBytes || len > left()) {
      fail(fmt::format("{} at byte {}: length {} exceeds the file", what, pos_ - 8, len));
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }
  void skip(uint64_t n, const char* what) {
    if (!ok()) return;
    if (n > left()) return fail(fmt::format("truncated at byte {} reading {}", pos_, what));
    pos_ += size_t(n);
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  std::string err_;
};

size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    default: return 0;
  }
}

// One scalar into v (type already set).
void read_scalar(Cursor& c, GgufValueType t, int64_t* i, uint64_t* u, double* f) {
  switch (t) {
    case GgufValueType::U8: *i = c.read<uint8_t>("u8"); break;
    case GgufValueType::I8: *i = c.read<int8_t>("i8"); break;
    case GgufValueType::U16: *i = c.read<uint16_t>("u16"); break;
    case GgufValueType::I16: *i = c.read<int16_t>("i16"); break;
    case GgufValueType::U32: *i = c.read<uint32_t>("u32"); break;
    case GgufValueType::I32: *i = c.read<int32_t>("i32"); break;
    case GgufValueType::I64: *i = c.read<int64_t>("i64"); break;
    case GgufValueType::U64: {
      *u = c.read<uint64_t>("u64");
      *i = *u > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(*u);
      return;
    }
    case GgufValueType::BOOL: {
      const uint8_t b = c.read<uint8_t>("bool");
      if (b > 1) c.fail(fmt::format("bool value {} at byte {}", b, c.pos() - 1));
      *i = b;
      break;
    }
    case GgufValueType::F32: *f = c.read<float>("f32"); return;
    case GgufValueType::F64: *f = c.read<double>("f64"); return;
    default: return;
  }
  *u = uint64_t(*i);
}

bool valid_value_type(uint32_t t) { return t <= uint32_t(GgufValueType::F64); }

void read_value(Cursor& c, GgufValueType t, GgufValue& v, int depth) {
  v.type = t;
  if (t == GgufValueType::STRING) {
    v.s = c.str("string value");
    return;
  }
  if (t != GgufValueType::ARRAY) return read_scalar(c, t, &v.i, &v.u, &v.f);
  const uint32_t et = c.read<uint32_t>("array type");
  const uint64_t n = c.read<uint64_t>("array length");
  if (!c.ok()) return;
  if (!valid_value_type(et)) return c.fail(fmt::format("array element type {} is not a GGUF value type", et));
  if (depth >= kMaxArrayDepth) return c.fail("arrays nested too deeply");
  v.array_type = GgufValueType(et);
  v.array_len = n;
  // Every element takes at least one byte (strings 8), so a count beyond the bytes left is corrupt.
  const size_t min_elem = et == uint32_t(GgufValueType::STRING) || et == uint32_t(GgufValueType::ARRAY)
                              ? 8 : scalar_size(v.array_type);
  if (n > c.left() / min_elem) {
    return c.fail(fmt::format("array of {} elements at byte {} exceeds the file", n, c.pos() - 12));
  }
  if (v.array_type == GgufValueType::STRING) {
    v.strings.reserve(size_t(n));
    for (uint64_t k = 0; k < n && c.ok(); ++k) v.strings.push_back(c.str("array string"));
  } else if (v.array_type == GgufValueType::ARRAY) {
    for (uint64_t k = 0; k < n && c.ok(); ++k) {
      GgufValue inner;
      read_value(c, GgufValueType::ARRAY, inner, depth + 1);
    }
  } else if (v.array_type == GgufValueType::F32 || v.array_type == GgufValueType::F64) {
    v.floats.resize(size_t(n));
    int64_t i;
    uint64_t u;
    for (uint64_t k = 0; k < n && c.ok(); ++k) read_scalar(c, v.array_type, &i, &u, &v.floats[size_t(k)]);
  } else {
    v.ints.resize(size_t(n));
    uint64_t u;
    double f;
    for (uint64_t k = 0; k < n && c.ok(); ++k) read_scalar(c, v.array_type, &v.ints[size_t(k)], &u, &f);
  }
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  static constexpr const char* kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) < 13 ? kNames[uint32_t(t)] : "?";
}

bool GgufValue::is_integer() const {
  return type != GgufValueType::STRING && type != GgufValueType::ARRAY && !is_float();
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

Result<GgufFile> GgufFile::open(const std::string& path) {
  TERN_ASSIGN_OR_RETURN(MappedFile mf, MappedFile::open(path));
  auto file = std::make_shared<MappedFile>(std::move(mf));
  TERN_ASSIGN_OR_RETURN(GgufFile g, parse(file->data(), file->size(), path));
  g.file_ = std::move(file);
  return g;
}

Result<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  GgufFile g;
  g.path_ = name;
  Cursor c(data, size);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (!c.ok() || std::memcmp(&magic, "GGUF", 4) != 0) return g.error("not a GGUF file (no 'GGUF' magic)");
  g.version_ = c.read<uint32_t>("version");
  if (c.ok() && (g.version_ & 0xFFFF) == 0 && g.version_ != 0) {
    return g.error("big-endian GGUF files are not supported");
  }
  if (c.ok() && (g.version_ < 2 || g.version_ > 3)) {
    return g.error(fmt::format("GGUF version {} is not supported (2 and 3 are)", g.version_));
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (!c.ok()) return g.error(c.err());
  // A kv takes at least 8 + 4 + 1 bytes and a tensor info at least 8 + 4 + 8 + 4 + 8.
  if (n_kv > c.left() / 13) return g.error(fmt::format("metadata count {} exceeds the file", n_kv));
  if (n_tensors > c.left() / 32) return g.error(fmt::format("tensor count {} exceeds the file", n_tensors));

  for (uint64_t k = 0; k < n_kv && c.ok(); ++k) {
    std::string key = c.str("metadata key");
    const uint32_t t = c.read<uint32_t>("metadata value type");
    if (!c.ok()) break;
    if (!valid_value_type(t)) return g.error(fmt::format("metadata '{}': value type {} is not a GGUF type", key, t));
    GgufValue v;
    read_value(c, GgufValueType(t), v, 0);
    if (!c.ok()) return g.error(fmt::format("metadata '{}': {}", key, c.err()));
    if (!g.kv_index_.emplace(key, g.kv_.size()).second) return g.error(fmt::format("duplicate metadata key '{}'", key));
    g.kv_.emplace_back(std::move(key), std::move(v));
  }
  if (!c.ok()) return g.error(c.err());

  if (const GgufValue* a = g.find("general.alignment")) {
    if (!a->is_integer() || a->i <= 0 || a->i > (1 << 20) || (a->i & (a->i - 1)) != 0) {
      return g.error("metadata 'general.alignment': must be a power of two up to 2^20");
    }
    g.alignment_ = uint32_t(a->i);
  }

  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = c.str("tensor name");
    const uint32_t n_dims = c.read<uint32_t>("tensor n_dims");
    if (!c.ok()) return g.error(c.err());
    if (n_dims == 0 || n_dims > kMaxDims) {
      return g.error(fmt::format("tensor '{}': {} dimensions (1 to {} allowed)", t.name, n_dims, kMaxDims));
    }
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dimension");
      if (!c.ok()) return g.error(c.err());
      if (ne == 0 || ne > (uint64_t(1) << 40) || uint64_t(numel) > (uint64_t(1) << 50) / ne) {
        return g.error(fmt::format("tensor '{}': dimension {} is {} (empty or absurd)", t.name, d, ne));
      }
      t.ne.push_back(int64_t(ne));
      numel *= int64_t(ne);
    }
    const uint32_t type = c.read<uint32_t>("tensor type");
    t.offset = c.read<uint64_t>("tensor offset");
    if (!c.ok()) return g.error(c.err());
    const GgufTypeTraits* tr = gguf_type_traits(type);
    if (!tr || !tr->weights) {
      return g.error(fmt::format("tensor '{}': ggml type {} ({}) is not supported", t.name, type,
                                 tr ? tr->name : "unknown"));
    }
    t.type = tr->type;
    if (t.ne[0] % tr->block_elems != 0) {
      return g.error(fmt::format("tensor '{}': row length {} is not a multiple of the {} block size {}", t.name,
                                 t.ne[0], tr->name, tr->block_elems));
    }
    t.bytes = size_t(numel / tr->block_elems) * size_t(tr->block_bytes);
    if (t.offset % g.alignment_ != 0) {
      return g.error(fmt::format("tensor '{}': offset {} is not a multiple of the alignment {}", t.name, t.offset,
                                 g.alignment_));
    }
    if (!g.tensor_index_.emplace(t.name, g.tensors_.size()).second) {
      return g.error(fmt::format("duplicate tensor name '{}'", t.name));
    }
    g.tensors_.push_back(std::move(t));
  }

  const size_t end = c.pos();
  g.data_offset_ = (end + g.alignment_ - 1) / g.alignment_ * g.alignment_;
  if (g.data_offset_ > size && !g.tensors_.empty()) return g.error("truncated before the tensor data");
  const size_t data_bytes = size >= g.data_offset_ ? size - g.data_offset_ : 0;
  std::vector<const GgufTensor*> by_offset;
  for (auto& t : g.tensors_) {
    if (t.offset > data_bytes || t.bytes > data_bytes - t.offset) {
      return g.error(fmt::format("tensor '{}': bytes [{}, {}) lie outside the data section ({} bytes; file truncated?)",
                                 t.name, t.offset, t.offset + t.bytes, data_bytes));
    }
    t.data = data + g.data_offset_ + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensor& p = *by_offset[k - 1];
    if (p.offset + p.bytes > by_offset[k]->offset) {
      return g.error(fmt::format("tensors '{}' and '{}' overlap", p.name, by_offset[k]->name));
    }
  }
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Status GgufFile::error(const std::string& what) const { return Status::error(path_ + ": " + what); }

Result<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return error(fmt::format("metadata '{}' is missing", key));
  if (v->type != GgufValueType::STRING) {
    return error(fmt::format("metadata '{}': expected a string, got {}", key, gguf_value_type_name(v->type)));
  }
  return v->s;
}

Result<int64_t> GgufFile::get_int(const std::string& key, int64_t lo, int64_t hi) const {
  const GgufValue* v = find(key);
  if (!v) return error(fmt::format("metadata '{}' is missing", key));
  if (!v->is_integer()) {
    return error(fmt::format("metadata '{}': expected an integer, got {}", key, gguf_value_type_name(v->type)));
  }
  if (v->i < lo || v->i > hi) return error(fmt::format("metadata '{}': {} is outside [{}, {}]", key, v->i, lo, hi));
  return v->i;
}

Result<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return error(fmt::format("metadata '{}' is missing", key));
  if (v->is_float()) return v->f;
  if (v->is_integer()) return double(v->i);
  return error(fmt::format("metadata '{}': expected a number, got {}", key, gguf_value_type_name(v->type)));
}

GgufValue GgufValue::make_string(std::string v) {
  GgufValue r;
  r.type = GgufValueType::STRING;
  r.s = std::move(v);
  return r;
}
GgufValue GgufValue::make_u32(uint32_t v) {
  GgufValue r;
  r.type = GgufValueType::U32;
  r.i = v, r.u = v;
  return r;
}
GgufValue GgufValue::make_i32(int32_t v) {
  GgufValue r;
  r.type = GgufValueType::I32;
  r.i = v, r.u = uint64_t(int64_t(v));
  return r;
}
GgufValue GgufValue::make_f32(float v) {
  GgufValue r;
  r.type = GgufValueType::F32;
  r.f = v;
  return r;
}
GgufValue GgufValue::make_bool(bool v) {
  GgufValue r;
  r.type = GgufValueType::BOOL;
  r.i = v, r.u = v;
  return r;
}
GgufValue GgufValue::make_strings(std::vector<std::string> v) {
  GgufValue r;
  r.type = GgufValueType::ARRAY;
  r.array_type = GgufValueType::STRING;
  r.array_len = v.size();
  r.strings = std::move(v);
  return r;
}
GgufValue GgufValue::make_ints(GgufValueType elem, std::vector<int64_t> v) {
  GgufValue r;
  r.type = GgufValueType::ARRAY;
  r.array_type = elem;
  r.array_len = v.size();
  r.ints = std::move(v);
  return r;
}
GgufValue GgufValue::make_floats(std::vector<double> v) {
  GgufValue r;
  r.type = GgufValueType::ARRAY;
  r.array_type = GgufValueType::F32;
  r.array_len = v.size();
  r.floats = std::move(v);
  return r;
}

bool is_gguf_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char m[4] = {};
  return f && f.read(m, 4) && std::memcmp(m, "GGUF", 4) == 0;
}

}  // namespace tern
