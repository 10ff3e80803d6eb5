#!/usr/bin/env bash
# tern and llama.cpp on the same checkpoint, in the same run, with the same protocol
# (decode: 128 greedy tokens after a 128-token prompt, batch 1; prefill: one 512-token prompt; 1 and 2 threads).
# usage: bench/compare_llamacpp.sh MODEL_DIR [MODEL_DIR...]     (build first: scripts/setup)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${TERN_BUILD_DIR:-$here/../build}"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) vCPUs"
for model in "$@"; do
  echo "## $model"
  echo "### tern"
  "$build/bench_generate" "$model"
  echo "### llama.cpp"
  "$here/peers/llamacpp/run.sh" "$model" --reps "${TERN_PEER_REPS:-3}"
done
