// Python-style string helpers (ASCII case mapping, as the chat templates need).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern::jinja {

class Budget;

// s.find(needle, from) in linear time (glibc's two-way memmem; std::string::find can take |s| x |needle|).
size_t find_bytes(const std::string& s, const std::string& needle, size_t from);

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right);
std::string to_upper(std::string s);
std::string to_lower(std::string s);
std::string to_title(const std::string& s);
std::string capitalize(const std::string& s);
// sep == nullptr: split on runs of whitespace, dropping empties (Python's str.split()).
// Both charge `b` and stop at its list / string bounds before building past them.
std::vector<std::string> split_str(const std::string& s, const std::string* sep, int64_t maxsplit, Budget& b);
std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count,
                        Budget& b);

}  // namespace tern::jinja
