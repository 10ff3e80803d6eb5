// GGUF files (v2 and v3, little-endian), read through mmap and validated before anything is used:
//   header  "GGUF" u32 version, u64 tensor_count, u64 kv_count
//   kv      kv_count x {string key, u32 value type, value}    (string = u64 length + bytes; array =
//           u32 element type + u64 count + elements)
//   infos   tensor_count x {string name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml type,
//           u64 offset relative to the data section}
//   data    at the end of the infos rounded up to general.alignment (default 32)
// Every count, length, type, shape and offset is checked against the file (truncation, absurd counts,
// unknown types, misaligned / out-of-range / overlapping tensors, duplicate keys and names); every
// failure is one Status line naming the file. Tensors are used in place from the mmap.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "kernels/cpu/gguf_blocks.h"

namespace tern {

enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// One metadata value. Integers (and bools) are kept in `i` (u64 above INT64_MAX in `u` only),
// floats in `f`; arrays keep their elements by kind (nested arrays are validated and counted only).
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  GgufValueType array_type = GgufValueType::U8;  // ARRAY only
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string s;
  uint64_t array_len = 0;
  std::vector<std::string> strings;  // ARRAY of STRING
  std::vector<int64_t> ints;         // ARRAY of integers / bools
  std::vector<double> floats;        // ARRAY of F32 / F64

  bool is_integer() const;  // U8..I64 or BOOL
  bool is_float() const { return type == GgufValueType::F32 || type == GgufValueType::F64; }

  static GgufValue make_string(std::string v);
  static GgufValue make_u32(uint32_t v);
  static GgufValue make_i32(int32_t v);
  static GgufValue make_f32(float v);
  static GgufValue make_bool(bool v);
  static GgufValue make_strings(std::vector<std::string> v);
  static GgufValue make_ints(GgufValueType elem, std::vector<int64_t> v);
  static GgufValue make_floats(std::vector<double> v);  // F32 elements
};

struct GgufTensor {
  std::string name;
  GgufType type = GgufType::F32;
  std::vector<int64_t> ne;     // as stored: innermost (contiguous) dimension first
  const void* data = nullptr;  // inside the mmap
  uint64_t offset = 0;         // relative to the data section
  size_t bytes = 0;

  int64_t numel() const;
  // Row-major shape (outermost first), as Hugging Face would write it: ne reversed.
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
};

class GgufFile {
 public:
  static Result<GgufFile> open(const std::string& path);
  // Parses bytes that stay owned by the caller (tests, fuzzing). `name` is used in errors.
  static Result<GgufFile> parse(const uint8_t* data, size_t size, const std::string& name);

  const std::string& path() const { return path_; }
  // Whether the tensors point into a mapping this object owns (open), not caller-owned bytes (parse).
  bool mapped() const { return file_ != nullptr; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order
  const GgufTensor* tensor(const std::string& name) const;

  // Typed metadata access with one-line errors ("<file>: metadata 'key': ...").
  Result<std::string> get_string(const std::string& key) const;
  Result<int64_t> get_int(const std::string& key, int64_t lo, int64_t hi) const;
  Result<double> get_float(const std::string& key) const;  // accepts integers too
  Status error(const std::string& what) const;

 private:
  std::shared_ptr<MappedFile> file_;  // null when parsing caller-owned bytes
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// True when the file at `path` starts with the GGUF magic (cheap: reads 4 bytes).
bool is_gguf_file(const std::string& path);

}  // namespace tern
