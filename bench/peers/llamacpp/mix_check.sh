#!/usr/bin/env bash
# tern's GGUF mixes against llama.cpp's own quantizer: for each model and mix, llama_model_quantize (the
# prebuilt libllama, llama_quantize.py) and `tern gguf quantize --type MIX` on the same model; prints whether
# every tensor got the same type, both file sizes and tern's general.file_type.
# usage: bench/peers/llamacpp/mix_check.sh MODEL_DIR [MODEL_DIR...]
#   e.g. ... ../shared/models/docs-llama-28m /tmp/m16 /tmp/m80   (synth_llama.py /tmp/m16 16 4 1; /tmp/m80 80 8 1)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tern="${TERN_BUILD_DIR:-$here/../../../build}/tern"
cache="${TERN_PEER_CACHE:-/tmp/tern-peer-llamacpp}"
mkdir -p "$cache"
if [[ ! -d "$here/node_modules/@node-llama-cpp/linux-x64/bins" ]]; then
  (cd "$here" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund >&2)
fi
types() { "$tern" gguf info "$1" | awk '$1 ~ /weight$/ {print $1, $2}' | sort; }
for m in "$@"; do
  n="$cache/$(basename "$m")"
  "$tern" gguf quantize -q -m "$m" -o "$n.f32.gguf" --type F32
  for mix in Q2_K:10 Q3_K_S:11 Q3_K_M:12 Q3_K_L:13 Q4_K_S:14 Q4_K_M:15 Q5_K_S:16 Q5_K_M:17 Q6_K:18 \
             Q4_0:2 Q4_1:3 Q8_0:7 Q5_0:8 Q5_1:9; do
    name=${mix%%:*}; ft=${mix#*:}
    python3 "$here/llama_quantize.py" "$n.f32.gguf" "$n.llama.$name.gguf" "$ft" > /dev/null 2>&1
    "$tern" gguf quantize -q -m "$m" -o "$n.tern.$name.gguf" --type "$name"
    same=$(diff <(types "$n.llama.$name.gguf") <(types "$n.tern.$name.gguf") > /dev/null && echo same || echo DIFFERENT)
    echo "$(basename "$m") $name: types $same, bytes llama.cpp $(stat -c %s "$n.llama.$name.gguf") tern" \
         "$(stat -c %s "$n.tern.$name.gguf"), file_type $("$tern" gguf info "$n.tern.$name.gguf" | awk '/general.file_type/ {print $3}')"
    rm -f "$n.llama.$name.gguf" "$n.tern.$name.gguf"
  done
  rm -f "$n.f32.gguf"
done
