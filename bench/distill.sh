#!/usr/bin/env bash
# Distillation figure (docs/distill.md, docs/benchmarks.md): docs-llama-28m pruned by 25% of its width
# (`tern prune --structured channels --ratio 0.25`, calibrated on the first half of docs-val), then
#   (a) untrained, (b) trained on cross-entropy alone (--no-teacher) and (c) distilled from the unpruned
# model (forward KL over the whole vocabulary), (b) and (c) for the same tokens of Debian documentation
# (bench/distill_data.sh: never docs-val, deduplicated against it). Perplexity in tern's protocol (40
# windows of 512) on the second half of docs-val and on wiki.test.raw, training tokens/s, and the share
# of the FMA peak (bench_fma_peak, all threads): training FLOPs ≈ 6 × student parameters per token, plus
# 2 × teacher parameters per token for the teacher's forward in (c).
# usage: bench/distill.sh [TOKENS (131072)] [TRAIN_TEXT (made by distill_data.sh when absent)] [BUILD_DIR]
#        environment-free; extra distill options: edit `train` below (same for both runs).
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
tokens="${1:-131072}"
text="${2:-/tmp/tern_distill_train.txt}"
build="${3:-$src/build}"
teacher="$src/../shared/models/docs-llama-28m"
data="$src/../shared/data"
work="${DISTILL_WORK:-$(mktemp -d)}"
tern="$build/tern"
[ -s "$text" ] || "$src/bench/distill_data.sh" "$text"

python3 - "$data/docs-val.txt" "$work" <<'PY'
import sys
text = open(sys.argv[1], "rb").read()
cut = text.find(b"\n", len(text) // 2) + 1
open(f"{sys.argv[2]}/calib.txt", "wb").write(text[:cut])
open(f"{sys.argv[2]}/eval.txt", "wb").write(text[cut:])
PY

ppl() {  # model file -> ppl (tern protocol, 40 windows of 512)
  "$tern" eval ppl -m "$1" -f "$2" --windows 40 --json | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])'
}
[ -d "$work/pruned" ] || "$tern" prune -m "$teacher" -o "$work/pruned" --structured channels --ratio 0.25 --calib "$work/calib.txt" 2>"$work/prune.log"
train() {  # out-dir extra-args...
  local out="$1"; shift
  echo "[distill.sh] $(date -u +%H:%M:%S) start $out, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "$tern" distill --student "$work/pruned" -o "$out" --data "$text" --tokens "$tokens" --batch 8 --seq 256 \
    --lr 1e-4 --log-every 8 "$@" 2>"$out.log" || { cat "$out.log" >&2; exit 1; }
  echo "[distill.sh] $(date -u +%H:%M:%S) done $out, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}
[ -f "$work/ce/config.json" ] || train "$work/ce" --no-teacher
[ -f "$work/kd/config.json" ] || train "$work/kd" --teacher "$teacher"
rate() { grep -o '[0-9]* tok/s' "$1" | tail -1 | cut -d' ' -f1; }
params() { grep -o '([0-9.]*M parameters' "$1" | head -1 | tr -dc '0-9.'; }
peak="$("$build/bench_fma_peak" --threads 2 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(max(r["fma_gflops"] for r in d))' || echo 0)"
ps="$(params "$work/kd.log")"
pt="$(python3 -c 'print(27.82)')"
echo "training tokens: $(grep -o '= [0-9]* tokens' "$work/kd.log" | tr -dc '0-9'), text: $text; FMA peak ${peak} GFLOP/s; load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| student | docs-val 2nd half | wiki.test.raw | training tok/s | % of FMA peak |"
echo "|---|---|---|---|---|"
echo "| docs-llama-28m (teacher, unpruned) | $(ppl "$teacher" "$work/eval.txt") | $(ppl "$teacher" "$data/wiki.test.raw") | - | - |"
echo "| (a) pruned, untrained | $(ppl "$work/pruned" "$work/eval.txt") | $(ppl "$work/pruned" "$data/wiki.test.raw") | - | - |"
for run in ce kd; do
  r="$(rate "$work/$run.log")"
  if [ "$run" = ce ]; then label="(b) pruned + cross-entropy alone (--no-teacher)"; fl="6 * $ps"; else label="(c) pruned + distilled (KL, whole vocabulary)"; fl="6 * $ps + 2 * $pt"; fi
  pct="$(python3 -c "p=$peak; print('%.1f%%' % (100 * ($fl) * 1e6 * $r / (p * 1e9)) if p > 0 else 'n/a')")"
  echo "| $label | $(ppl "$work/$run" "$work/eval.txt") | $(ppl "$work/$run" "$data/wiki.test.raw") | $r | $pct |"
done
