// Integer and number ranges as digit grammars, and the JSON Schema front-door functions (text in, GBNF out).
// Ranges are lexical rules (no calls), so their masks are shared by every grammar (vocab_impl.h).
#include <fmt/format.h>

#include <string>

#include "constrain/json_schema.h"

#include <algorithm>

#include "constrain/token_constraint.h"
#include "formats/json_util.h"

namespace tern::constrain {
namespace {


// Numbers of exactly a.size() digits between a and b (same length, a <= b).
std::string same_len(const std::string& a, const std::string& b) {
  const size_t n = a.size();
  if (n == 0) return "\"\"";
  if (a == b) return "\"" + a + "\"";
  const std::string ra = a.substr(1), rb = b.substr(1);
  const bool low_open = ra.find_first_not_of('0') == std::string::npos;
  const bool high_open = rb.find_first_not_of('9') == std::string::npos;
  auto any = [](size_t k) { return k == 0 ? std::string() : fmt::format(" [0-9]{{{}}}", k); };
  if (a[0] == b[0]) return fmt::format("\"{}\" ({})", a[0], same_len(ra, rb));
  if (low_open && high_open) return fmt::format("[{}-{}]{}", a[0], b[0], any(n - 1));
  std::vector<std::string> alts;
  char lo_first = a[0], hi_first = b[0];
  if (!low_open) {
    alts.push_back(fmt::format("\"{}\" ({})", a[0], same_len(ra, std::string(n - 1, '9'))));
    ++lo_first;
  }
  if (!high_open) --hi_first;
  if (lo_first <= hi_first) alts.push_back(fmt::format("[{}-{}]{}", lo_first, hi_first, any(n - 1)));
  if (!high_open) alts.push_back(fmt::format("\"{}\" ({})", b[0], same_len(std::string(n - 1, '0'), rb)));
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return out;
}

// Non-negative integers lo..hi (hi < 0: up to 16 digits, like an unbounded integer), without leading zeros.
std::string nonneg_range(int64_t lo, int64_t hi) {
  const bool unbounded = hi < 0;
  const std::string top = unbounded ? std::string(16, '9') : std::to_string(hi);
  std::string slo = std::to_string(lo);
  std::vector<std::string> alts;
  for (size_t d = slo.size(); d <= top.size(); ++d) {
    if (unbounded && d > slo.size()) {  // every longer length at once
      alts.push_back(fmt::format("[1-9] [0-9]{{{},{}}}", d - 1, top.size() - 1));
      break;
    }
    const std::string a = d == slo.size() ? slo : (d == 1 ? "0" : "1" + std::string(d - 1, '0'));
    const std::string b = d == top.size() ? top : std::string(d, '9');
    alts.push_back(same_len(a, b));
  }
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + std::string("(") + alts[i] + ")";
  return out;
}

}  // namespace

std::string integer_range_gbnf(const int64_t* lo, const int64_t* hi) {
  constexpr int64_t kCap = 9999999999999999;  // 16 digits, as the unbounded integer rule
  if (!lo && !hi) return "\"-\"? ( \"0\" | [1-9] [0-9]{0,15} )";
  std::vector<std::string> alts;
  // Non-negative part.
  const int64_t nlo = lo ? std::max<int64_t>(*lo, 0) : 0;
  const int64_t nhi = hi ? std::min(*hi, kCap) : -1;
  if (nlo <= kCap && (nhi < 0 ? !hi : nlo <= nhi)) alts.push_back(nonneg_range(nlo, nhi));
  // Negative part: "-" then |x| in [max(-hi, 1), -lo].
  if (!lo || *lo < 0) {
    const int64_t mag_lo = hi ? std::max<int64_t>(-std::min<int64_t>(*hi, -1), 1) : 1;
    const int64_t mag_hi = lo ? std::min(-*lo, kCap) : -1;
    if (mag_hi < 0 || mag_lo <= mag_hi) alts.push_back("\"-\" (" + nonneg_range(mag_lo, mag_hi) + ")");
  }
  if (alts.empty()) return "";
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + std::string("(") + alts[i] + ")";
  return out;
}

// Magnitudes m (JSON number text without sign or exponent) with a <= m <= b (or < when exclusive); b < 0: no
// upper bound. a, b integers >= 0.
static std::string magnitude_range(int64_t a, bool a_excl, int64_t b, bool b_excl) {
  const char* frac = "( \".\" [0-9]{1,16} )";
  std::vector<std::string> alts;
  if (a_excl) {  // a itself only with a non-zero fraction
    if (b < 0 || a < b) alts.push_back(fmt::format("\"{}\" \".\" [0-9]{{0,15}} [1-9]", a));
    ++a;
  }
  const int64_t top = b < 0 ? -1 : b - 1;  // whole part of values below b
  if (b < 0 || a <= top) alts.push_back("( " + nonneg_range(a, top) + " ) " + frac + "?");
  if (b >= 0 && !b_excl && a <= b) alts.push_back(fmt::format("\"{}\" ( \".\" \"0\"{{1,16}} )?", b));
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + std::string("( ") + alts[i] + " )";
  return out;
}

std::string number_range_gbnf(const int64_t* lo, bool lo_excl, const int64_t* hi, bool hi_excl) {
  std::vector<std::string> alts;
  // v >= 0: magnitude in [max(lo,0), hi].
  if (!hi || *hi > 0 || (*hi == 0 && !hi_excl)) {
    const bool a_excl = lo && *lo >= 0 && lo_excl;
    const int64_t a = lo && *lo > 0 ? *lo : 0;
    const std::string m = magnitude_range(a, a_excl, hi ? *hi : -1, hi && hi_excl);
    if (!m.empty()) alts.push_back(m);
  }
  // v < 0: "-" magnitude in [max(-hi,0), -lo].
  if (!lo || *lo < 0) {
    const bool a_excl = hi && *hi <= 0 && hi_excl;
    const int64_t a = hi && *hi < 0 ? -*hi : 0;
    const std::string m = magnitude_range(a, a_excl, lo ? -*lo : -1, lo && lo_excl);
    if (!m.empty()) alts.push_back("\"-\" ( " + m + " )");
  }
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + std::string("( ") + alts[i] + " )";
  return out;
}

}  // namespace tern::constrain

namespace tern {

Result<std::string> json_schema_to_gbnf(const nlohmann::ordered_json& schema, const GrammarLimits& limits) {
  std::string text;
  try {
    text = schema.dump();
  } catch (const std::exception& e) {  // invalid UTF-8 in a string
    return Status::error(std::string("json_schema: ") + e.what());
  }
  return json_schema_text_to_gbnf(text, limits);
}

Result<std::string> json_schema_text_to_gbnf(std::string_view schema_json, const GrammarLimits& limits) {
  if (int64_t(schema_json.size()) > limits.max_text_bytes) return Status::error("json_schema: schema text over the size limit");
  // Nesting is checked by the converter; nlohmann's parser recurses, so bound the depth of the text first.
  const int max_depth = json_nesting_depth(schema_json);
  if (max_depth > 4 * limits.max_nesting) return Status::error(fmt::format("json_schema: nested deeper than {}", 4 * limits.max_nesting));
  auto j = nlohmann::ordered_json::parse(schema_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::error("json_schema: the schema is not valid JSON");
  return constrain::schema_to_gbnf(j, limits);
}

}  // namespace tern
