#!/usr/bin/env bash
# Sparse decode figures (issue 18): the synth Llama-3.2-1B pruned by magnitude (speed does not depend on
# the values), stored dense and sparse, decoded by bench_generate, which measures the read bandwidth in
# the same run and reports each model's bytes per token against it.
#   bench/bench_sparse.sh BUILD_DIR WORK_DIR [bench_generate options, default: --prefill 64]
#     dense-bf16     tern synth --shape llama-3.2-1b
#     sparse50-bf16  tern prune --method magnitude --sparsity 0.5, then tern sparsify (sparse-bitmask, bf16)
#     dense-int8     tern quantize --method rtn --bits 8 --no-mixed (per-channel int8, W8A16)
#     sparse24-int8  tern prune --method magnitude --pattern 2:4, then tern sparsify --int8 (sparse-24-bitmask)
set -euo pipefail
build=${1:?build dir}; work=${2:?work dir}; shift 2
opts=("$@"); [ ${#opts[@]} -eq 0 ] && opts=(--prefill 64)
tern="$build/tern"
mkdir -p "$work"
[ -d "$work/dense-bf16" ] || "$tern" synth --shape llama-3.2-1b -o "$work/dense-bf16"
[ -d "$work/pruned50" ] || "$tern" prune -m "$work/dense-bf16" -o "$work/pruned50" --method magnitude --sparsity 0.5
[ -d "$work/pruned24" ] || "$tern" prune -m "$work/dense-bf16" -o "$work/pruned24" --method magnitude --pattern 2:4
[ -d "$work/sparse50-bf16" ] || "$tern" sparsify -m "$work/pruned50" -o "$work/sparse50-bf16"
[ -d "$work/sparse24-int8" ] || "$tern" sparsify -m "$work/pruned24" -o "$work/sparse24-int8" --int8
[ -d "$work/dense-int8" ] || "$tern" quantize -m "$work/pruned24" -o "$work/dense-int8" --method rtn --bits 8 --no-mixed
echo "# $(date -u '+%F %T') UTC, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in dense-bf16 sparse50-bf16 dense-int8 sparse24-int8; do
  "$build/bench_generate" "$work/$m" "${opts[@]}"
  echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
