#!/usr/bin/env bash
# Sparse decode figures (issue 18): the synth Llama-3.2-1B pruned by magnitude (speed does not depend on
# the values; --group row so every row keeps the same count at 50%), stored dense and sparse, decoded by
# bench_generate, which measures the read bandwidth in the same run and reports each model's bytes per
# token against it.
#   bench/bench_sparse.sh BUILD_DIR WORK_DIR [bench_generate options, default: --prefill 64]
#     dense-bf16          tern synth --shape llama-3.2-1b
#     sparse50-bf16       tern prune --method magnitude --sparsity 0.5 --prune-lm-head, then tern sparsify
#                         (sparse-bitmask, bf16; the LM head stays dense: its pruned copy stored dense)
#     sparse50-bf16-head  the same with tern sparsify --sparse-lm-head (the LM head sparse too)
#     dense-int8          tern quantize --method rtn --bits 8 --no-mixed (per-channel int8, W8A16; int8 head)
#     sparse24-int8       tern prune --method magnitude --pattern 2:4 --prune-lm-head, then tern sparsify --int8
#                         (sparse-24-bitmask; the dense head quantized to int8 at load, as dense-int8's)
#     sparse24-int8-head  the same with tern sparsify --int8 --sparse-lm-head (the LM head 2:4 int8 too)
# MODELS="dense-bf16 sparse50-bf16-head" picks (and orders) the models run; the default runs all six.
set -euo pipefail
build=${1:?build dir}; work=${2:?work dir}; shift 2
opts=("$@"); [ ${#opts[@]} -eq 0 ] && opts=(--prefill 64)
tern="$build/tern"
mkdir -p "$work"
[ -d "$work/dense-bf16" ] || "$tern" synth --shape llama-3.2-1b -o "$work/dense-bf16"
prune=(--method magnitude --group row --prune-lm-head)
[ -d "$work/pruned50" ] || "$tern" prune -m "$work/dense-bf16" -o "$work/pruned50" "${prune[@]}" --sparsity 0.5
# (--group is for --sparsity: N:M always compares within each group of 4 inputs)
[ -d "$work/pruned24" ] || "$tern" prune -m "$work/dense-bf16" -o "$work/pruned24" --method magnitude --prune-lm-head --pattern 2:4
[ -d "$work/sparse50-bf16" ] || "$tern" sparsify -m "$work/pruned50" -o "$work/sparse50-bf16"
[ -d "$work/sparse50-bf16-head" ] || "$tern" sparsify -m "$work/pruned50" -o "$work/sparse50-bf16-head" --sparse-lm-head
[ -d "$work/sparse24-int8" ] || "$tern" sparsify -m "$work/pruned24" -o "$work/sparse24-int8" --int8
[ -d "$work/sparse24-int8-head" ] || "$tern" sparsify -m "$work/pruned24" -o "$work/sparse24-int8-head" --int8 --sparse-lm-head
[ -d "$work/dense-int8" ] || "$tern" quantize -m "$work/pruned24" -o "$work/dense-int8" --method rtn --bits 8 --no-mixed
echo "# $(date -u '+%F %T') UTC, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in ${MODELS:-dense-bf16 sparse50-bf16 sparse50-bf16-head dense-int8 sparse24-int8 sparse24-int8-head}; do
  "$build/bench_generate" "$work/$m" "${opts[@]}"
  echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
