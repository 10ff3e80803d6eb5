#!/usr/bin/env bash
# tern and llama.cpp decoding/prefilling the same GGUF files, in the same run, same protocol as
# compare_llamacpp.sh (decode: 128 greedy tokens after a 128-token prompt, batch 1; prefill: 512 tokens).
# usage: bench/compare_gguf.sh FILE.gguf [FILE.gguf...]   env: THREADS (default "1,2"), TERN_PEER_REPS (default 3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${TERN_BUILD_DIR:-$here/../build}"
peer="$here/peers/llamacpp"
threads="${THREADS:-1,2}"
if [[ ! -d "$peer/node_modules/@node-llama-cpp/linux-x64/bins" ]]; then
  (cd "$peer" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund >&2)
fi
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) vCPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for f in "$@"; do
  echo "## $f ($(stat -c %s "$f") bytes)"
  echo "### tern"
  for t in ${threads//,/ }; do "$build/bench_generate" "$f" --threads "$t"; done
  echo "### llama.cpp"
  node "$peer/bench.mjs" "$f" --threads "$threads" --reps "${TERN_PEER_REPS:-3}"
done
