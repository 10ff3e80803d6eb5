// `tern quantize --format gguf --type T`: a loaded (safetensors) llama-family model written as GGUF v3
// the way llama.cpp's converter + quantizer lay it out, so llama.cpp loads it:
//   general.* / <arch>.* hyper-parameter keys, llama.cpp tensor names, q/k rows interleaved for arch
//   llama (the converter's rope permutation), norms and biases in F32, llama3 rope scaling as
//   rope_freqs.weight, tokenizer.ggml.* from the model's tokenizer.json (byte-level BPE), chat
//   template, alignment 32.
// Each 2-D weight gets the type the mix gives it (gguf_mix.h: llama.cpp's per-tensor rules, e.g. Q4_K_M
// keeps the output / tied embedding and half of attn_v / ffn_down at Q6_K); a matrix whose row length
// is not a multiple of the block size falls back as llama.cpp does (Q4_K -> Q5_0, Q6_K -> Q8_0, ...).
#pragma once

#include <functional>
#include <string>

#include "core/status.h"
#include "kernels/cpu/gguf_blocks.h"
#include "formats/gguf/gguf_mix.h"
#include "model/model.h"

namespace tern {

using GgufProgress = std::function<void(size_t done, size_t total)>;

Status quantize_to_gguf(const Model& model, const std::string& out_path, const GgufMix& mix,
                        const GgufProgress& progress = nullptr);

// Every 2-D weight in `type` (llama-quantize --pure), general.file_type the mix of that base type.
Status quantize_to_gguf(const Model& model, const std::string& out_path, GgufType type,
                        const GgufProgress& progress = nullptr);

}  // namespace tern
