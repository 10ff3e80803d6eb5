// `tern quantize --format gguf --type T`: a loaded (safetensors) llama-family model written as GGUF v3
// the way llama.cpp's converter + quantizer lay it out, so llama.cpp loads it:
//   general.* / <arch>.* hyper-parameter keys, llama.cpp tensor names, q/k rows interleaved for arch
//   llama (the converter's rope permutation), norms and biases in F32, llama3 rope scaling as
//   rope_freqs.weight, tokenizer.ggml.* from the model's tokenizer.json (byte-level BPE), chat
//   template, alignment 32.
// Every 2-D weight gets type T; a matrix whose row length is not a multiple of T's block size falls
// back as llama.cpp does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0; legacy -> F16).
#pragma once

#include <functional>
#include <string>

#include "core/status.h"
#include "kernels/cpu/gguf_blocks.h"
#include "model/model.h"

namespace tern {

using GgufProgress = std::function<void(size_t done, size_t total)>;

Status quantize_to_gguf(const Model& model, const std::string& out_path, GgufType type,
                        const GgufProgress& progress = nullptr);

// The type a matrix with rows of `cols` values gets when `wanted` is asked for (fallback above).
GgufType gguf_type_for_row(GgufType wanted, int64_t cols);

}  // namespace tern
