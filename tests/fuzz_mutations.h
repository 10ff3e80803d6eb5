// The mutations of tests/fuzz_model_files.h: byte-level ones for any file (biased to the structure of safetensors
// and GGUF files, where the loaders' logic is), JSON-aware ones, and hostile chat templates.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "formats/gguf/gguf_file.h"

namespace tern::fuzz {

using nlohmann::json;

// Where the structure of a binary file ends (safetensors header, GGUF metadata and tensor infos): most byte
// mutations land before it, since the data after it is only weights.
inline size_t structure_end(const std::string& name, const std::string& bytes) {
  if (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0 && bytes.size() >= 8) {
    uint64_t h = 0;
    std::memcpy(&h, bytes.data(), 8);
    return size_t(std::min<uint64_t>(bytes.size(), 8 + h));
  }
  if (bytes.compare(0, 4, "GGUF") == 0) {
    auto g = GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "base");
    return g.is_ok() ? g->data_offset() : bytes.size();
  }
  return bytes.size();
}

// Stands for a value nested 100,000 deep, which is spliced into the text after dump() (nlohmann's dump recurses).
constexpr const char* kDeepMarker = "<<tern fuzz: deep value>>";

inline std::string deepen(const std::string& text, const std::string& open, const std::string& close) {
  const std::string marker = json(kDeepMarker).dump();
  std::string out = text;
  for (size_t at = out.find(marker); at != std::string::npos; at = out.find(marker, at)) {
    std::string deep;
    for (int k = 0; k < 100000; ++k) deep += open;
    deep += "null";
    for (int k = 0; k < 100000; ++k) deep += close;
    out.replace(at, marker.size(), deep);
    at += deep.size();
  }
  return out;
}

// A value a field may take in a hostile file.
inline json extreme_value(std::mt19937_64& rng) {
  switch (rng() % 18) {
    case 0: return nullptr;
    case 1: return true;
    case 2: return -1;
    case 3: return 0;
    case 4: return int64_t(1) << 31;
    case 5: return INT64_MAX;
    case 6: return INT64_MIN;
    case 7: return UINT64_MAX;
    case 8: return 1e308;
    case 9: return -0.5;
    case 10: return "";
    case 11: return std::string(100000, 'x');
    case 12: return json::array();
    case 13: return json::object();
    case 14: return kDeepMarker;  // replaced by 100,000 nested arrays in the text (see deepen)
    case 15: return std::vector<int>(100000, 7);
    case 16: return 1000000;
    default: return 8192;
  }
}

// Templates that try to crash or hang a renderer (issue 14 item 12), and pieces to splice random ones from.
inline std::string hostile_template(std::mt19937_64& rng) {
  auto rep = [](const std::string& s, int n) {
    std::string out;
    for (int k = 0; k < n; ++k) out += s;
    return out;
  };
  static const char* pieces[] = {"{% for m in messages %}", "{% endfor %}", "{% if m.role == 'user' %}", "{% else %}",
                                 "{% endif %}", "{{ m.content }}", "{{ bos_token }}", "{% set ns = namespace(a=[]) %}",
                                 "{% set ns.a = ns.a + [ns] %}", "{{ ns | tojson }}", "{% macro f(x) %}",
                                 "{{ f(x) }}", "{% endmacro %}", "{{ f(1) }}", "{{ 'x' * 999999 }}",
                                 "{% for i in range(99999) %}", "{{ (", ") }}", "{{ messages[0]['content'][::-1] }}",
                                 "{% call f(1) %}", "{% endcall %}", "{{ caller() }}", "{{ loop.index }}",
                                 "{{ raise_exception('no') }}", "{%- ", " -%}", "{{ 10 ** 30 }}", "{% break %}"};
  switch (rng() % 8) {
    case 0: return rep("{% if true %}", 20000) + "x" + rep("{% endif %}", 20000);
    case 1: return "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}";
    case 2: return "{{ 'x' * 1000000000 }}";
    case 3: return "{{ range(10**9) | length }}";
    case 4: return "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}";
    default: {
      std::string t;
      const int n = 1 + int(rng() % 40);
      for (int k = 0; k < n; ++k) t += pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
      return t;
    }
  }
}

// A random node of j (descending from the root, stopping at each level with probability 1/4).
inline json* random_node(json& j, std::mt19937_64& rng) {
  json* at = &j;
  while ((at->is_object() || at->is_array()) && !at->empty() && rng() % 4 != 0) {
    const size_t k = rng() % at->size();
    if (at->is_array()) {
      at = &(*at)[k];
    } else {
      auto it = at->begin();
      std::advance(it, std::ptrdiff_t(k));
      at = &it.value();
    }
  }
  return at;
}

// JSON-aware mutation; false when the text is not JSON.
inline bool mutate_json(std::string& text, const std::string& name, std::mt19937_64& rng, std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return false;
  std::string open = "[", close = "]";
  if (name == "tokenizer_config.json" && j.is_object() && rng() % 2 == 0) {
    j["chat_template"] = hostile_template(rng);
    what = "hostile chat_template";
  } else if (name == "tokenizer.json" && j.is_object() && rng() % 4 == 0) {
    // A pipeline stage inside Sequences nested 100,000 deep.
    static const char* stages[][2] = {{"normalizer", "normalizers"}, {"pre_tokenizer", "pretokenizers"},
                                      {"post_processor", "processors"}, {"decoder", "decoders"}};
    const auto& st = stages[rng() % 4];
    j[st[0]] = kDeepMarker;
    open = std::string("{\"type\": \"Sequence\", \"") + st[1] + "\": [";
    close = "]}";
    what = std::string(st[0]) + " in Sequences nested 100000 deep";
  } else if (rng() % 3 == 0 && j.is_object() && !j.empty()) {
    auto it = j.begin();
    std::advance(it, std::ptrdiff_t(rng() % j.size()));
    what = "removed key '" + it.key() + "'";
    j.erase(it);
  } else {
    json* node = random_node(j, rng);
    *node = extreme_value(rng);
    what = "a value set to " + node->dump().substr(0, 40);
  }
  text = deepen(j.dump(), open, close);
  return true;
}

inline void mutate_bytes(std::string& b, const std::string& name, std::mt19937_64& rng, std::string& what) {
  const size_t end = std::max<size_t>(1, structure_end(name, b));
  auto pos = [&]() -> size_t {
    if (b.empty()) return 0;
    return rng() % 5 != 0 ? rng() % std::min(end, b.size()) : rng() % b.size();
  };
  switch (rng() % 6) {
    case 0: {  // a few bytes set to random or boundary values
      const int n = 1 + int(rng() % 8);
      for (int k = 0; k < n && !b.empty(); ++k) {
        static const uint8_t vals[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, '"', '{', '}', '[', ']', ',', ':', '\\', '9'};
        const uint8_t v = rng() % 2 ? uint8_t(rng()) : vals[rng() % sizeof(vals)];
        b[pos()] = char(v);
      }
      what = std::to_string(n) + " bytes overwritten";
      break;
    }
    case 1: {
      const size_t at = pos();
      b.resize(at);
      what = "truncated to " + std::to_string(at) + " bytes";
      break;
    }
    case 2: {  // splice: a range copied over another
      if (b.size() < 2) break;
      const size_t from = pos(), to = pos(), n = 1 + rng() % std::min<size_t>(4096, b.size() - std::max(from, to));
      b.replace(to, n, b.substr(from, n));
      what = "spliced " + std::to_string(n) + " bytes from " + std::to_string(from) + " to " + std::to_string(to);
      break;
    }
    case 3: {
      const size_t at = pos(), n = 1 + rng() % 64;
      std::string junk(n, '\0');
      for (char& c : junk) c = char(rng());
      b.insert(at, junk);
      what = "inserted " + std::to_string(n) + " bytes at " + std::to_string(at);
      break;
    }
    case 4: {
      const size_t at = pos(), n = std::min(b.size() - at, size_t(1 + rng() % 256));
      b.erase(at, n);
      what = "deleted " + std::to_string(n) + " bytes at " + std::to_string(at);
      break;
    }
    default: {  // a 4- or 8-byte field set to a boundary integer (counts, lengths, offsets, dims)
      static const uint64_t vals[] = {0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, ~0ull, 1ull << 40};
      const uint64_t v = vals[rng() % (sizeof(vals) / sizeof(vals[0]))];
      const size_t w = rng() % 2 ? 4 : 8, at = pos();
      if (at + w <= b.size()) std::memcpy(&b[at], &v, w);
      what = std::to_string(w) + "-byte field at " + std::to_string(at) + " set to " + std::to_string(v);
    }
  }
}

}  // namespace tern::fuzz
