#!/usr/bin/env bash
# Pruning quality on docs-llama-28m (docs/pruning.md, docs/benchmarks.md): `tern prune` with each method
# at 50% unstructured and 2:4, and the structured variants, each evaluated by `tern eval ppl`.
# Calibration = the first half of docs-val.txt (cut at the first line break after the middle byte, as the
# quantization figures), evaluation = the second half and wiki.test.raw, never the calibration text;
# each in tern's protocol (40 windows of 512) and llama.cpp's (BOS first, second half scored; --windows W).
# Prints one markdown row per checkpoint: ppl and ΔPPL against the unpruned model in each of the four columns.
# usage: [PRUNE_ONLY=REGEX] [TERN_PROTOCOL_ONLY=1] bench/prune_quality.sh [BUILD_DIR] [MODEL_DIR] [LLAMACPP_WINDOWS (default 40)]
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$src/build}"
model="${2:-$src/../shared/models/docs-llama-28m}"
lwin="${3:-40}"
data="$src/../shared/data"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tern="$build/tern"

python3 - "$data/docs-val.txt" "$work" <<'PY'
import sys
text = open(sys.argv[1], "rb").read()
cut = text.find(b"\n", len(text) // 2) + 1
open(f"{sys.argv[2]}/calib.txt", "wb").write(text[:cut])
open(f"{sys.argv[2]}/eval.txt", "wb").write(text[cut:])
PY

ppl() {  # model file protocol-args -> ppl
  "$tern" eval ppl -m "$1" -f "$2" $3 --json | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])'
}
declare -a evals=("$work/eval.txt|--windows 40" "$work/eval.txt|--protocol llama.cpp --windows $lwin"
                  "$data/wiki.test.raw|--windows 40" "$data/wiki.test.raw|--protocol llama.cpp --windows $lwin")
# TERN_PROTOCOL_ONLY=1: tern's protocol only (two columns; half the evaluation time on a busy machine).
[ -n "${TERN_PROTOCOL_ONLY:-}" ] && evals=("${evals[0]}" "${evals[2]}")
base=()
for e in "${evals[@]}"; do base+=("$(ppl "$model" "${e%%|*}" "${e#*|}")"); done

row() {  # label dir seconds
  local cells="" i=0
  for e in "${evals[@]}"; do
    local p; p="$(ppl "$2" "${e%%|*}" "${e#*|}")"
    cells+=" $(python3 -c "print('%s (%+.1f%%)' % ('$p', 100 * ($p / ${base[$i]} - 1)))") |"
    i=$((i + 1))
  done
  echo "| $1 | $3 s |$cells"
}

if [ -n "${TERN_PROTOCOL_ONLY:-}" ]; then
  echo "| checkpoint | prune time | docs-val 2nd half, tern | wiki, tern |"
  echo "|---|---|---|---|"
  echo "| unpruned | - | ${base[0]} | ${base[1]} |"
else
  echo "| checkpoint | prune time | docs-val 2nd half, tern | docs-val 2nd half, llama.cpp | wiki, tern | wiki, llama.cpp |"
  echo "|---|---|---|---|---|---|"
  echo "| unpruned | - | ${base[0]} | ${base[1]} | ${base[2]} | ${base[3]} |"
fi
run() {  # label prune-args...
  local label="$1"; shift
  local out="$work/out"; rm -rf "$out"
  local t0; t0=$(date +%s)
  "$tern" prune -m "$model" -o "$out" "$@" 2>"$work/log" || { cat "$work/log" >&2; exit 1; }
  grep -h 'OWL layer' "$work/log" >&2 || true
  row "$label" "$out" "$(( $(date +%s) - t0 ))"
}
calib=(--calib "$work/calib.txt")
# label | tern prune arguments (@calib = the calibration options). PRUNE_ONLY (an extended regex on the
# label) runs a subset, e.g. PRUNE_ONLY='magnitude|owl'.
specs=(
  "magnitude 50% per layer (papers' baseline, default)|--method magnitude --sparsity 0.5"
  "magnitude 50% per row|--method magnitude --sparsity 0.5 --group row"
  "wanda 50%|--method wanda --sparsity 0.5 @calib"
  "wanda 50% + OWL (M 5, lambda 0.08)|--method wanda --sparsity 0.5 --owl @calib"
  "ria 50%|--method ria --sparsity 0.5 @calib"
  "sparsegpt 50% (the reference's block-tile mask, default)|--method sparsegpt --sparsity 0.5 @calib"
  "sparsegpt 50% per row|--method sparsegpt --sparsity 0.5 --group row @calib"
  "sparsegpt 50% per row + OWL (M 5, lambda 0.08)|--method sparsegpt --sparsity 0.5 --group row --owl @calib"
  "sparsegpt 50% + OWL (M 5, lambda 0.08)|--method sparsegpt --sparsity 0.5 --owl @calib"
  "magnitude 2:4|--method magnitude --pattern 2:4"
  "wanda 2:4|--method wanda --pattern 2:4 @calib"
  "ria 2:4|--method ria --pattern 2:4 @calib"
  "sparsegpt 2:4|--method sparsegpt --pattern 2:4 @calib"
  "heads 25% (KV groups 4 -> 3)|--structured heads --ratio 0.25 @calib"
  "channels 25% (1408 -> 1056)|--structured channels --ratio 0.25 @calib"
  "heads + channels 25%|--structured heads,channels --ratio 0.25 @calib"
  "2 of 8 layers (ShortGPT BI)|--structured layers --ratio 0.25 @calib"
)
for spec in "${specs[@]}"; do
  label="${spec%%|*}"
  [ -n "${PRUNE_ONLY:-}" ] && ! [[ "$label" =~ $PRUNE_ONLY ]] && continue
  read -ra args <<<"${spec#*|}"
  full=()
  for a in "${args[@]}"; do
    if [ "$a" = @calib ]; then full+=("${calib[@]}"); else full+=("$a"); fi
  done
  run "$label" "${full[@]}"
done
