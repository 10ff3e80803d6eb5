#!/usr/bin/env bash
# Peer benchmark: llama.cpp (prebuilt CPU build shipped in the npm package @node-llama-cpp/linux-x64)
# on a Hugging Face Llama checkpoint, 1 and 2 threads, same protocol as tern's bench_generate.
# usage: bench/peers/llamacpp/run.sh MODEL_DIR [--validate] [extra bench.mjs args, e.g. --reps 5]
#   --validate: also check greedy text (and prompt ids) against MODEL_DIR/reference.json
# env: TERN_PEER_CACHE (default /tmp/tern-peer-llamacpp) holds converted GGUFs, keyed by the checkpoint.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 1 ]] || { echo "usage: $0 MODEL_DIR [--validate] [bench.mjs args]" >&2; exit 2; }
model_dir="$(cd "$1" && pwd)"; shift
validate=0
if [[ "${1:-}" == "--validate" ]]; then validate=1; shift; fi

command -v node >/dev/null || { echo "node (v20+) is required" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

# 1. npm deps: registry only. NODE_LLAMA_CPP_SKIP_DOWNLOAD stops node-llama-cpp's postinstall from ever
#    fetching or building llama.cpp sources; the prebuilt binary comes from @node-llama-cpp/linux-x64.
#    `npm install`, not `npm ci`: the lock lists optional prebuilts (mac/win/riscv) that this registry
#    lacks for 3.22.1, which `npm ci` rejects as out of sync; .npmrc omits optional deps anyway.
if [[ ! -d "$here/node_modules/@node-llama-cpp/linux-x64/bins" ]]; then
  echo "== installing node-llama-cpp (npm registry, prebuilt binaries only)" >&2
  (cd "$here" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund >&2)
fi

# 2. convert (cached by checkpoint path + file sizes/mtimes + converter version)
cache="${TERN_PEER_CACHE:-/tmp/tern-peer-llamacpp}"
mkdir -p "$cache"
key="$( { echo "$model_dir"; stat -c '%n %s %Y' "$model_dir"/*.json "$model_dir"/*.safetensors; sha256sum "$here/hf_to_gguf.py"; } | sha256sum | cut -c1-16)"
gguf="$cache/$(basename "$model_dir")-$key.gguf"
if [[ ! -f "$gguf" ]]; then
  echo "== converting $model_dir -> $gguf" >&2
  python3 "$here/hf_to_gguf.py" "$model_dir" "$gguf" >&2
fi

# 3. optional correctness check, then the benchmark
if [[ $validate == 1 && -f "$model_dir/reference.json" ]]; then
  echo "== validating greedy output against $model_dir/reference.json" >&2
  node "$here/validate.mjs" "$gguf" "$model_dir/reference.json"
fi
echo "== benchmarking (threads 1,2)" >&2
node "$here/bench.mjs" "$gguf" --threads 1,2 "$@"
