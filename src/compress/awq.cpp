// Placeholder until the quantization-algorithms branch (qalgo) lands its implementation of awq.h;
// that branch's awq.cpp replaces this file.
#include "compress/awq.h"

namespace tern {

Result<QuantizedModel> awq_quantize(ExecContext&, const Model&, const CalibData&, const QuantSpec&,
                                     const MethodOptions&, const ProgressFn&) {
  return Status::error("--method awq is not implemented in this build yet");
}

}  // namespace tern
