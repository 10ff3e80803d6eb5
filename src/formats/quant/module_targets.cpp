#include "formats/quant/module_targets.h"

#include <regex>

namespace tern {

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

bool module_matches(const std::string& module, const std::string& target) {
  if (target.empty()) return false;
  if (target.rfind("re:", 0) == 0) {
    try {
      return std::regex_match(module, std::regex(target.substr(3)));
    } catch (const std::regex_error&) {
      return false;  // an unparsable pattern matches nothing (parse_quant_config rejects it up front)
    }
  }
  if (target == "Linear") return module.rfind("model.layers.", 0) == 0 && ends_with(module, "_proj");
  if (target == "Embedding") return module == kEmbedModule;
  return module == target || ends_with(module, "." + target);
}

bool module_matches_any(const std::string& module, const std::vector<std::string>& targets) {
  for (const auto& t : targets)
    if (module_matches(module, t)) return true;
  return false;
}

}  // namespace tern
