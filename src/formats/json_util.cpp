#include "formats/json_util.h"

#include <algorithm>

#include <exception>
#include <set>

namespace tern {

namespace {

// One object being parsed: the keys seen so far and the key whose value is being read.
struct ObjectFrame {
  std::set<std::string> keys;
  std::string current;
};

// Keeps messages to one line even when the offending input holds control characters.
std::string one_line(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s;
}

}  // namespace

Result<ParsedJson> parse_json(std::string_view text, const std::string& source) {
  ParsedJson out;
  std::vector<ObjectFrame> stack;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) {
      stack.emplace_back();
    } else if (ev == E::object_end) {
      if (!stack.empty()) stack.pop_back();
    } else if (ev == E::key && !stack.empty()) {
      std::string key = parsed.is_string() ? parsed.get<std::string>() : std::string();
      ObjectFrame& top = stack.back();
      top.current = key;
      if (!top.keys.insert(key).second && out.duplicate_path.empty()) {
        for (const ObjectFrame& f : stack) out.duplicate_path.push_back(f.current);
      }
    }
    return true;
  };
  try {
    out.value = nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                                      /*ignore_comments=*/false);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag: users need the position and reason.
    if (size_t p = what.find("] "); p != std::string::npos && what.rfind("[json.exception", 0) == 0) {
      what = what.substr(p + 2);
    }
    return Status::error(source + ": invalid JSON: " + one_line(what));
  } catch (const std::exception& e) {
    return Status::error(source + ": invalid JSON: " + one_line(e.what()));
  }
  return out;
}

const char* json_type_name(const nlohmann::json& j) {
  if (j.is_string()) return "string";
  if (j.is_boolean()) return "boolean";
  if (j.is_number_integer()) return "integer";
  if (j.is_number()) return "number";
  if (j.is_null()) return "null";
  if (j.is_array()) return "array";
  if (j.is_object()) return "object";
  return "binary";
}

namespace {

void excerpt(const nlohmann::json& j, int depth, std::string& out) {
  if (out.size() > 80) return;
  if (j.is_array() || j.is_object()) {
    if (depth >= 3) {
      out += j.is_array() ? "[...]" : "{...}";
      return;
    }
    out += j.is_array() ? '[' : '{';
    bool first = true;
    for (auto it = j.begin(); it != j.end() && out.size() <= 80; ++it) {
      if (!first) out += ", ";
      first = false;
      if (j.is_object()) out += nlohmann::json(it.key().substr(0, 40)).dump() + ": ";
      excerpt(it.value(), depth + 1, out);
    }
    if (out.size() > 80) return;
    out += j.is_array() ? ']' : '}';
    return;
  }
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    out += nlohmann::json(s.substr(0, 60)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (s.size() > 60) out += "...";
    return;
  }
  out += j.dump();
}

}  // namespace

std::string json_excerpt(const nlohmann::json& j) {
  std::string out;
  excerpt(j, 0, out);
  if (out.size() > 80) out = out.substr(0, 80) + "...";
  return out;
}

int json_nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

std::string join_key_path(const std::vector<std::string>& path) {
  std::string s;
  for (size_t i = 0; i < path.size(); ++i) {
    if (i) s += '.';
    s += path[i];
  }
  return s;
}

}  // namespace tern
