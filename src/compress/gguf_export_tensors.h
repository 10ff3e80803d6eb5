// The tensors of a Hugging Face checkpoint laid out as llama.cpp's converter + quantizer write them
// for a GGUF architecture (formats/gguf/gguf_arch.h): renamed by the architecture's table, each
// matrix in the type the mix gives it (gguf_mix.h), 1-D tensors and MoE routers in F32, a layer's
// experts stacked into one [E, rows, cols] tensor, and the converter's changes redone (q/k rows
// interleaved for arch llama, 1 + w for gemma norms, GPT-2's Conv1D weights transposed to [out, in]).
#pragma once

#include <vector>

#include "core/status.h"
#include "formats/gguf/gguf_arch.h"
#include "formats/gguf/gguf_mix.h"
#include "formats/gguf/gguf_writer.h"
#include "formats/model_config.h"
#include "formats/tensor_source.h"

namespace tern {

// Tensors the builders knowingly skip (rotary_emb.inv_freq buffers, GPT-2's attention-mask buffers,
// DeepSeek's multi-token-prediction layers) are left out; any other tensor the table does not know
// is an error naming it. The returned fill functions read `store`, which must outlive them.
Result<std::vector<GgufTensorToWrite>> gguf_export_tensors(const TensorSource& store, const ModelConfig& c,
                                                           const GgufArch& arch, const GgufMix& mix);

}  // namespace tern
