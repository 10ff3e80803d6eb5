// Placeholder until the quantization-algorithms branch (qalgo) lands its implementation of smoothquant.h;
// that branch's smoothquant.cpp replaces this file.
#include "compress/smoothquant.h"

namespace tern {

Result<QuantizedModel> smoothquant_quantize(ExecContext&, const Model&, const CalibData&, const QuantSpec&,
                                     const MethodOptions&, const ProgressFn&) {
  return Status::error("--method smoothquant is not implemented in this build yet");
}

}  // namespace tern
