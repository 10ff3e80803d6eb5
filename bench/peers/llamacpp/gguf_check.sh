#!/usr/bin/env bash
# tern-written GGUF checked by llama.cpp: for each type, `tern gguf quantize` the model, then on that
# same file compare tern and llama.cpp (node-llama-cpp prebuilt): greedy continuations of the
# reference prompts and perplexity (tern's protocol: 512-token windows, first 40).
# usage: bench/peers/llamacpp/gguf_check.sh MODEL_DIR TYPE [TYPE...]   e.g. ... docs-llama-28m Q8_0 Q4_K
# env: TERN_BUILD_DIR (default build), TERN_PEER_CACHE (default /tmp/tern-peer-llamacpp), THREADS (default 2)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../../.."
build="${TERN_BUILD_DIR:-$root/build}"
model="$(cd "$1" && pwd)"; shift
cache="${TERN_PEER_CACHE:-/tmp/tern-peer-llamacpp}"
threads="${THREADS:-2}"
text="$root/../shared/data/docs-val.txt"
mkdir -p "$cache"
if [[ ! -d "$here/node_modules/@node-llama-cpp/linux-x64/bins" ]]; then
  (cd "$here" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund >&2)
fi
for type in "$@"; do
  gguf="$cache/$(basename "$model")-tern-$type.gguf"
  "$build/tern" gguf quantize -m "$model" -o "$gguf" --type "$type" -q
  echo "## $type: $gguf ($(stat -c %s "$gguf") bytes)"
  echo "### tern"
  "$build/tern" eval ppl -m "$gguf" -f "$text" --json -t "$threads" 2>/dev/null
  python3 - "$model/reference.json" <<'PY' > "$cache/prompts.txt"
import json, sys
for p in json.load(open(sys.argv[1]))["prompts"]: print(json.dumps(p["text"]))
PY
  while IFS= read -r p; do
    prompt="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]), end="")' "$p")"
    out="$("$build/tern" run -m "$gguf" -p "$prompt" -n 32 --temp 0 -q -t "$threads")"
    python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "text": sys.argv[2][:-1]}, ensure_ascii=False))' "$prompt" "$out"
  done < "$cache/prompts.txt"
  echo "### llama.cpp"
  node "$here/validate.mjs" "$gguf" "$model/reference.json" --ppl "$text" --threads "$threads" || true
done
