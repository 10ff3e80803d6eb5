#include "plan/kv_bytes.h"

namespace tern::plan {

double kv_bytes_per_token_layer(const ModelShape& s, const KvPrecision& kv) {
  // KvPrecision::scale_bytes_per_head counts a K scale and a V scale; MLA stores one row per token.
  const double scales = s.is_mla() ? kv.scale_bytes_per_head / 2 : double(s.kv_heads) * kv.scale_bytes_per_head;
  return double(s.kv_elems_per_token_layer()) * kv.bytes + scales;
}

double kv_bytes_per_token(const ModelShape& s, const KvPrecision& kv) {
  return double(s.layers) * kv_bytes_per_token_layer(s, kv);
}

}  // namespace tern::plan
