// Placeholder until the quantization-algorithms branch (qalgo) lands its implementation of gptq.h;
// that branch's gptq.cpp replaces this file.
#include "compress/gptq.h"

namespace tern {

Result<QuantizedModel> gptq_quantize(ExecContext&, const Model&, const CalibData&, const QuantSpec&,
                                     const MethodOptions&, const ProgressFn&) {
  return Status::error("--method gptq is not implemented in this build yet");
}

}  // namespace tern
