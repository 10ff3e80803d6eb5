// Python-style string helpers (ASCII case mapping, as the chat templates need).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern::jinja {

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right);
std::string to_upper(std::string s);
std::string to_lower(std::string s);
std::string to_title(const std::string& s);
std::string capitalize(const std::string& s);
// sep == nullptr: split on runs of whitespace, dropping empties (Python's str.split()).
std::vector<std::string> split_str(const std::string& s, const std::string* sep, int64_t maxsplit);
std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count);

}  // namespace tern::jinja
