#!/usr/bin/env bash
# tern's GGUF mixes on MoE models against llama-quantize's own choices: for each mix, tern writes the
# Q-file directly and, from tern's F16 file, `llama-quantize --dry-run` says what llama.cpp would
# write; every tensor's type is compared. Uses all-zero synthetic 8-expert Mixtral / Qwen3-MoE models
# (synth_moe_zeros.py): 8 experts exercises llama.cpp's Mixtral bumps.
# usage: bench/peers/llamacpp/gguf_archs/mix_check.sh LLAMA_CPP_DIR [MIX...]
# env: TERN_BUILD_DIR (default build), OUT (default /tmp/tern-gguf-mix)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
build="${TERN_BUILD_DIR:-$root/build}"
llama="$1"; shift
mixes=("$@")
[[ ${#mixes[@]} -gt 0 ]] || mixes=(Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K Q8_0 Q4_0 Q5_1)
out="${OUT:-/tmp/tern-gguf-mix}"
mkdir -p "$out"
for kind in mixtral qwen3moe; do
  dir="$out/$kind"
  python3 "$here/synth_moe_zeros.py" "$kind" "$dir"
  python3 "$here/tiny_with_tokenizer.py" "$dir" "$dir" > /dev/null 2>&1 || true
  "$build/tern" quantize -m "$dir" -o "$out/$kind-F16.gguf" --format gguf --type F16 > /dev/null 2>&1
  for mix in "${mixes[@]}"; do
    "$build/tern" quantize -m "$dir" -o "$out/$kind-$mix.gguf" --format gguf --type "$mix" > /dev/null 2>&1
    LD_LIBRARY_PATH="$llama/build/bin" "$llama/build/bin/llama-quantize" --dry-run "$out/$kind-F16.gguf" "$mix" 2 \
      > "$out/lq-$kind-$mix.log" 2>&1
    "$build/tern" gguf info "$out/$kind-$mix.gguf" 2>&1 | awk '$1 ~ /weight|bias/ {print $1, $2}' > "$out/tern-$kind-$mix.txt"
    python3 - "$out/lq-$kind-$mix.log" "$out/tern-$kind-$mix.txt" "$kind $mix" <<'PY'
import re, sys
lq = {}
for line in open(sys.argv[1]):
    m = re.search(r"\]\s+(\S+\.(?:weight|bias))\s+-.*type =\s*(\S+?),.*?(?:\((\w+)\))?\s*$", line)
    if m:
        lq[m.group(1)] = (m.group(3) or m.group(2)).upper()
tern = dict(l.split() for l in open(sys.argv[2]))
diff = [(n, tern.get(n), lq.get(n)) for n in sorted(set(lq) | set(tern)) if tern.get(n) != lq.get(n)]
print(f"{sys.argv[3]}: {len(tern)} tensors, {len(diff)} differ from llama-quantize", *diff[:8])
PY
  done
done
