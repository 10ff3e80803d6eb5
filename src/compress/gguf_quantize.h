// `tern quantize --format gguf --type T`: a loaded safetensors model written as GGUF v3 the way
// llama.cpp's converter + quantizer lay it out, so llama.cpp loads it, for every architecture of
// formats/gguf/gguf_arch.h (llama / mistral, mixtral, qwen2, qwen3, qwen2moe, qwen3moe, gpt2, gemma2,
// phi3, glm4, deepseek2): general.* and <arch>.* keys (gguf_config.h), llama.cpp tensor names and the
// converter's layout (gguf_export_tensors.h: stacked experts, q/k interleave for arch llama, gemma's
// 1 + w norms, GPT-2's transposes, DeepSeek's split kv_b), llama3 rope scaling as rope_freqs.weight,
// tokenizer.ggml.* from the model's tokenizer.json (byte-level BPE; none when the model has no
// tokenizer.json), chat template, alignment 32.
// Each matrix gets the type the mix gives it (gguf_mix.h: llama.cpp's per-tensor rules, e.g. Q4_K_M
// keeps the output / tied embedding and half of attn_v / ffn_down at Q6_K); a matrix whose row length
// is not a multiple of the block size falls back as llama.cpp does (Q4_K -> Q5_0, Q6_K -> Q8_0, ...).
// The tensors come from the model's checkpoint (Model::store()), not from weights replaced in memory.
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
