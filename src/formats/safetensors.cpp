// safetensors reading: the 8-byte little-endian header length, a JSON header, then the data section.
// Everything in the header is checked against the mapped file before a TensorInfo escapes, so later
// code may trust data/bytes/shape without re-checking.
#include "formats/safetensors.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <string_view>
#include <utility>

#include "formats/json_util.h"

namespace tern {

namespace {

// safetensors' own reader refuses headers above 100 MB; a header that size already describes
// millions of tensors, so anything larger is corruption or an attack.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// dtypes the format defines that tern does not load (named in errors so users know why).
constexpr std::array<std::string_view, 12> kUnsupportedDtypes = {
    "BOOL", "I16", "U16", "U32", "U64", "F64", "C64", "F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E8M0"};

// Tensor names come from user files: keep messages on one line whatever they contain.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[(c >> 4) & 0xf];
      out += hex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

Status tensor_error(const std::string& file, const std::string& name, const std::string& what) {
  return Status::error(file + ": tensor '" + printable(name) + "': " + what);
}

// Reads a JSON value that must be a non-negative integer fitting in int64.
bool as_index(const nlohmann::json& j, uint64_t* out) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) return false;
  uint64_t v = j.get<uint64_t>();
  if (v > uint64_t(INT64_MAX)) return false;
  *out = v;
  return true;
}

struct Span {
  uint64_t begin = 0, end = 0;
  size_t tensor = 0;  // position in FileHeader::tensors
};

struct FileHeader {
  std::vector<TensorInfo> tensors;  // header (name) order
  std::map<std::string, std::string> metadata;
};

// Validates one header entry and fills `t` (except `data`) and its byte span in the data section.
Status parse_entry(const std::string& file, const std::string& name, const nlohmann::json& e,
                   uint64_t data_size, TensorInfo* t, Span* span) {
  if (name.empty()) return Status::error(file + ": a tensor has an empty name");
  if (!e.is_object()) {
    return tensor_error(file, name, std::string("entry is a JSON ") + json_type_name(e) + ", expected an object");
  }
  auto dt = e.find("dtype");
  if (dt == e.end()) return tensor_error(file, name, "missing 'dtype'");
  if (!dt->is_string()) return tensor_error(file, name, std::string("'dtype' is a ") + json_type_name(*dt));
  const std::string dname = dt->get<std::string>();
  std::optional<DType> dtype = dtype_from_safetensors(dname);
  if (!dtype) {
    bool known = std::find(kUnsupportedDtypes.begin(), kUnsupportedDtypes.end(), dname) != kUnsupportedDtypes.end();
    return tensor_error(file, name,
                        known ? "dtype " + dname + " is not supported (tern loads F32, F16, BF16, I8, U8, I32, I64, F8_E4M3)"
                              : "unknown dtype '" + printable(dname) + "'");
  }

  auto sh = e.find("shape");
  if (sh == e.end()) return tensor_error(file, name, "missing 'shape'");
  if (!sh->is_array()) return tensor_error(file, name, std::string("'shape' is a ") + json_type_name(*sh));
  uint64_t numel = 1;
  t->shape.clear();
  for (const auto& d : *sh) {
    uint64_t v = 0;
    if (!as_index(d, &v)) return tensor_error(file, name, "shape " + json_excerpt(d) + " entry is not a non-negative integer");
    if (__builtin_mul_overflow(numel, v, &numel) || numel > uint64_t(INT64_MAX)) {
      return tensor_error(file, name, "shape " + sh->dump() + " has too many elements");
    }
    t->shape.push_back(int64_t(v));
  }
  uint64_t expect = 0;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(*dtype)), &expect)) {
    return tensor_error(file, name, "shape " + sh->dump() + " is too large in bytes");
  }

  auto off = e.find("data_offsets");
  if (off == e.end()) return tensor_error(file, name, "missing 'data_offsets'");
  if (!off->is_array() || off->size() != 2 || !as_index((*off)[0], &span->begin) ||
      !as_index((*off)[1], &span->end)) {
    return tensor_error(file, name, "data_offsets " + json_excerpt(*off) + " is not [begin, end] of non-negative integers");
  }
  if (span->begin > span->end) {
    return tensor_error(file, name, "data_offsets " + off->dump() + " has begin > end");
  }
  if (span->end - span->begin != expect) {
    return tensor_error(file, name,
                        "data_offsets " + off->dump() + " span " + std::to_string(span->end - span->begin) +
                            " bytes but " + dname + " " + sh->dump() + " needs " + std::to_string(expect));
  }
  if (span->end > data_size) {
    return tensor_error(file, name,
                        "data_offsets " + off->dump() + " run past the data section (" + std::to_string(data_size) +
                            " bytes)");
  }
  t->name = name;
  t->dtype = *dtype;
  t->bytes = size_t(expect);
  t->file = file;
  return Status::ok();
}

// The data section must be exactly the tensors, back to back: anything else is a corrupt or
// hand-edited file (and overlapping tensors would alias each other's weights).
Status check_layout(const std::string& file, std::vector<Span> spans, const std::vector<TensorInfo>& tensors,
                    uint64_t data_size) {
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const Span* prev = nullptr;
  for (const Span& s : spans) {
    const std::string& name = tensors[s.tensor].name;
    if (s.begin < cursor) {
      return tensor_error(file, name,
                          "bytes [" + std::to_string(s.begin) + ", " + std::to_string(s.end) + ") overlap tensor '" +
                              printable(tensors[prev->tensor].name) + "'");
    }
    if (s.begin > cursor) {
      return tensor_error(file, name,
                          "gap of " + std::to_string(s.begin - cursor) + " bytes before it in the data section");
    }
    cursor = s.end;
    prev = &s;
  }
  if (cursor != data_size) {
    return Status::error(file + ": " + std::to_string(data_size - cursor) +
                         " bytes after the last tensor in the data section");
  }
  return Status::ok();
}

Result<FileHeader> parse_file(const MappedFile& f) {
  const std::string& file = f.path();
  if (f.size() < 8) {
    return Status::error(file + ": file is " + std::to_string(f.size()) +
                         " bytes, too short for the 8-byte header length");
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | f.data()[i];  // little-endian on any host
  if (hlen > kMaxHeaderBytes) {
    return Status::error(file + ": header length " + std::to_string(hlen) + " is absurd (limit " +
                         std::to_string(kMaxHeaderBytes) + ")");
  }
  if (hlen > f.size() - 8) {
    return Status::error(file + ": header length " + std::to_string(hlen) + " runs past the end of the file (" +
                         std::to_string(f.size()) + " bytes)");
  }
  std::string_view text(reinterpret_cast<const char*>(f.data() + 8), size_t(hlen));
  TERN_ASSIGN_OR_RETURN(ParsedJson parsed, parse_json(text, file + ": header"));
  const nlohmann::json& h = parsed.value;
  if (!h.is_object()) {
    return Status::error(file + ": header is a JSON " + std::string(json_type_name(h)) + ", expected an object");
  }
  if (!parsed.duplicate_path.empty()) {
    const auto& p = parsed.duplicate_path;
    if (p.size() == 1) return tensor_error(file, p[0], "duplicate tensor name in the header");
    return tensor_error(file, p[0], "duplicate key '" + printable(join_key_path({p.begin() + 1, p.end()})) + "'");
  }

  const uint64_t data_size = f.size() - 8 - hlen;
  const uint8_t* base = f.data() + 8 + hlen;
  FileHeader out;
  std::vector<Span> spans;
  for (const auto& [name, entry] : h.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Status::error(file + ": __metadata__ is not a JSON object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) {
          return Status::error(file + ": __metadata__: '" + printable(k) + "' is a " + json_type_name(v) +
                               ", expected a string");
        }
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    TensorInfo t;
    Span span;
    TERN_RETURN_IF_ERROR(parse_entry(file, name, entry, data_size, &t, &span));
    t.data = base + span.begin;
    span.tensor = out.tensors.size();
    out.tensors.push_back(std::move(t));
    spans.push_back(span);
  }
  TERN_RETURN_IF_ERROR(check_layout(file, std::move(spans), out.tensors, data_size));
  return out;
}

// Shard names come from a user file and are joined to the directory: they must stay inside it.
bool safe_shard_name(const std::string& s) {
  return !s.empty() && s.find('/') == std::string::npos && s.find('\\') == std::string::npos &&
         s.find("..") == std::string::npos && s.find('\0') == std::string::npos;
}

// tensors() is sorted by name so listings are stable; the map gives find() in O(log n).
void sort_and_index(std::vector<TensorInfo>* tensors, std::map<std::string, size_t>* index) {
  std::sort(tensors->begin(), tensors->end(), [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  for (size_t i = 0; i < tensors->size(); ++i) (*index)[(*tensors)[i].name] = i;
}

}  // namespace

Result<SafetensorsStore> SafetensorsStore::open_file(const std::string& path) {
  TERN_ASSIGN_OR_RETURN(MappedFile mf, MappedFile::open(path));
  auto file = std::make_shared<MappedFile>(std::move(mf));
  TERN_ASSIGN_OR_RETURN(FileHeader header, parse_file(*file));
  SafetensorsStore s;
  s.source_ = path;
  s.files_.push_back(file);
  s.tensors_ = std::move(header.tensors);
  s.metadata_ = std::move(header.metadata);
  sort_and_index(&s.tensors_, &s.index_);
  return s;
}

Result<SafetensorsStore> SafetensorsStore::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (!fs::exists(index_path, ec)) {
    const std::string single = dir + "/model.safetensors";
    if (fs::exists(single, ec)) return open_file(single);
    return Status::error(dir + ": no model.safetensors or model.safetensors.index.json");
  }

  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path));
  TERN_ASSIGN_OR_RETURN(ParsedJson parsed, parse_json(text, index_path));
  const nlohmann::json& idx = parsed.value;
  if (!idx.is_object()) return Status::error(index_path + ": not a JSON object");
  if (!parsed.duplicate_path.empty()) {
    const auto& p = parsed.duplicate_path;
    if (p.size() == 2 && p[0] == "weight_map") return tensor_error(index_path, p[1], "listed twice in weight_map");
    return Status::error(index_path + ": duplicate key '" + printable(join_key_path(p)) + "'");
  }
  auto wm = idx.find("weight_map");
  if (wm == idx.end()) return Status::error(index_path + ": missing 'weight_map'");
  if (!wm->is_object()) return Status::error(index_path + ": 'weight_map' is not a JSON object");
  if (wm->empty()) return Status::error(index_path + ": 'weight_map' is empty");
  if (auto md = idx.find("metadata"); md != idx.end() && !md->is_object() && !md->is_null()) {
    return Status::error(index_path + ": 'metadata' is not a JSON object");
  }

  std::map<std::string, std::string> where;  // tensor -> shard file name
  std::map<std::string, size_t> shard_counts;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) {
      return tensor_error(index_path, name,
                          std::string("shard is a ") + json_type_name(shard) + ", expected a file name");
    }
    std::string s = shard.get<std::string>();
    if (!safe_shard_name(s)) {
      return tensor_error(index_path, name, "shard name '" + printable(s) + "' must be a plain file name in " + dir);
    }
    where[name] = s;
    ++shard_counts[s];
  }

  SafetensorsStore st;
  st.source_ = index_path;
  bool first = true;
  for (const auto& [shard, count] : shard_counts) {
    const std::string path = dir + "/" + shard;
    TERN_ASSIGN_OR_RETURN(MappedFile mf, MappedFile::open(path));
    auto file = std::make_shared<MappedFile>(std::move(mf));
    TERN_ASSIGN_OR_RETURN(FileHeader header, parse_file(*file));
    for (const TensorInfo& t : header.tensors) {
      auto it = where.find(t.name);
      if (it == where.end()) {
        return tensor_error(path, t.name, "in the shard but missing from the weight_map of " + index_path);
      }
      if (it->second != shard) {
        return tensor_error(path, t.name,
                            "in this shard but the weight_map places it in '" + printable(it->second) + "'");
      }
    }
    if (header.tensors.size() != count) {
      // Some tensor the index assigns to this shard is not in it: name the first one.
      std::map<std::string, bool> present;
      for (const TensorInfo& t : header.tensors) present[t.name] = true;
      for (const auto& [name, s] : where) {
        if (s == shard && !present.count(name)) {
          return tensor_error(index_path, name, "not found in its shard " + path);
        }
      }
    }
    if (first) st.metadata_ = std::move(header.metadata);
    first = false;
    st.files_.push_back(file);
    for (TensorInfo& t : header.tensors) st.tensors_.push_back(std::move(t));
  }
  sort_and_index(&st.tensors_, &st.index_);
  return st;
}

const TensorInfo* SafetensorsStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

size_t SafetensorsStore::total_bytes() const {
  size_t n = 0;
  for (const TensorInfo& t : tensors_) n += t.bytes;
  return n;
}

}  // namespace tern
