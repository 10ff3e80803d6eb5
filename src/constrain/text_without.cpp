// text_without: see text_without.h.
#include "constrain/text_without.h"

#include <cstdint>

namespace tern::constrain {
namespace {

// An ASCII character as a GBNF escape (safe inside literals and classes alike).
std::string esc(char c) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("\\x") + kHex[uint8_t(c) >> 4] + kHex[uint8_t(c) & 15];
}

}  // namespace

std::string text_without(std::string_view marker) {
  // T = ( [^m0] | U Qc )* ( U Q )?   where, m0 being the marker's first character (found nowhere else in it):
  //   U  = m0 ( Q m0 )*              a start of the marker, restarted by any later m0;
  //   Q  = ( m1 ( m2 ( ... )? )? )?  a proper prefix of the rest (m1..m(n-2) at most: the marker never completes);
  //   Qc = [^m0 m1] | m1 ( [^m0 m2] | m2 ( ... [^m0 m(n-1)] ) )   such a prefix, then a character that breaks it.
  // Every string without the marker splits so: a return to "nothing matched" is a break (Qc) after the last m0.
  const size_t n = marker.size();
  const std::string m0 = esc(marker[0]);
  if (n == 1) return "[^" + m0 + "]*";
  std::string q, qc = "[^" + m0 + esc(marker[n - 1]) + "]";
  for (size_t j = n - 1; j-- > 1;) {
    q = "\"" + esc(marker[j]) + "\"" + (q.empty() ? "" : " (" + q + ")?");
    qc = "[^" + m0 + esc(marker[j]) + "] | \"" + esc(marker[j]) + "\" (" + qc + ")";
  }
  const std::string qopt = q.empty() ? "" : "(" + q + ")? ";
  const std::string u = "\"" + m0 + "\" ( " + qopt + "\"" + m0 + "\" )*";
  return "( [^" + m0 + "] | " + u + " (" + qc + ") )* ( " + u + " " + qopt + ")?";
}

}  // namespace tern::constrain
