#!/usr/bin/env bash
# tern-written GGUF of every tiny architecture loaded by llama.cpp itself (its libllama, not tern's
# reader): export with `tern quantize --format gguf --type T`, decode the reference's first sequence in
# llama.cpp, compare the last position's logits with transformers' (reference.json).
# usage: bench/peers/llamacpp/gguf_archs/check.sh LLAMA_CPP_DIR [TYPE] [ARCH...]
#   LLAMA_CPP_DIR: a llama.cpp checkout built with build/bin/libllama.so; TYPE default F32.
# env: TERN_BUILD_DIR (default build), OUT (default /tmp/tern-gguf-archs)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
build="${TERN_BUILD_DIR:-$root/build}"
llama="$1"; type="${2:-F32}"; shift $(( $# >= 2 ? 2 : 1 ))
archs=("$@")
[[ ${#archs[@]} -gt 0 ]] || archs=(qwen3_moe mixtral qwen2_moe deepseek_v3 gpt2 gemma2 phi3 glm4 llama qwen3)
out="${OUT:-/tmp/tern-gguf-archs}"
mkdir -p "$out"
gcc -O1 "$here/llama_logits.c" -I"$llama/include" -I"$llama/ggml/include" -L"$llama/build/bin" -lllama -lggml \
  -lggml-base -o "$out/llama_logits"
for arch in "${archs[@]}"; do
  tiny="$root/../shared/models/tiny-archs/$arch"
  dir="$out/$arch/m"
  mkdir -p "$out/$arch"
  ids=$(python3 "$here/tiny_with_tokenizer.py" "$tiny" "$dir")
  "$build/tern" quantize -m "$dir" -o "$out/$arch-$type.gguf" --format gguf --type "$type" > /dev/null 2>&1
  if ! LD_LIBRARY_PATH="$llama/build/bin" "$out/llama_logits" "$out/$arch-$type.gguf" $ids > "$out/$arch-$type.txt" \
       2> "$out/$arch-$type.log"; then
    echo "$arch $type: llama.cpp failed: $(grep -i 'error' "$out/$arch-$type.log" | tail -1)"
    continue
  fi
  python3 - "$out/$arch-$type.txt" "$tiny/reference.json" "$arch $type" <<'PY'
import json, sys
got = [float(x) for x in open(sys.argv[1])]
want = json.load(open(sys.argv[2]))["sequences"][0]["last_logits"]
err = max(abs(a - b) for a, b in zip(got, want))
top = lambda v: max(range(len(v)), key=v.__getitem__)
print(f"{sys.argv[3]}: llama.cpp vs transformers, last-position logits max |diff| {err:.2e}, argmax {top(got)} vs {top(want)}")
PY
done
