#!/usr/bin/env bash
# Tensor parallelism on quantized checkpoints and the int8 all-reduce, on docs-llama-28m (issue 17;
# docs/benchmarks.md "Tensor parallelism: quantized checkpoints and --tp-comm int8"):
#   1. perplexity of each checkpoint (bf16; tern quantize int8 / int4 g128; GGUF Q8_0 / Q4_K_M) in one
#      process and under mpirun -np 2 --tp 2: what the split sums' rounding order changes;
#   2. --tp-comm int8 against the f32 all-reduce (both --tp 2): ΔPPL and the KL divergence of the
#      next-token distributions (the f32 run's logits saved once with --save-logits);
#   3. resident memory per rank (bench_tp --decode) for each checkpoint, one process and --tp 2.
# Evaluation text: the second half of docs-val.txt (cut at the first line break after the middle byte,
# as bench/prune_quality.sh), tern's protocol, WINDOWS windows of 512 (default 40). Quality figures do
# not depend on load; on a loaded machine OpenMPI's busy-polling ranks are told to yield.
# usage: bench/tp_quality.sh [BUILD_DIR] [MODEL_DIR] [WINDOWS]
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$src/build}"
model="${2:-$src/../shared/models/docs-llama-28m}"
windows="${3:-40}"
data="$src/../shared/data"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tern="$build/tern"
mpirun_bin="$(readlink -f "$(command -v mpirun)")"
mpi() { OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
        "$mpirun_bin" -np 2 --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 "$@"; }

python3 - "$data/docs-val.txt" "$work" <<'PY'
import sys
text = open(sys.argv[1], "rb").read()
cut = text.find(b"\n", len(text) // 2) + 1
open(f"{sys.argv[2]}/eval.txt", "wb").write(text[cut:])
PY
eval_args=(-f "$work/eval.txt" --windows "$windows" --ctx 512 --json)
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

"$tern" quantize -m "$model" -o "$work/int8" --bits 8 >/dev/null 2>&1
"$tern" quantize -m "$model" -o "$work/int4" --bits 4 --group 128 >/dev/null 2>&1
"$tern" gguf quantize -q -m "$model" -o "$work/q8_0.gguf" --type Q8_0
"$tern" gguf quantize -q -m "$model" -o "$work/q4_k_m.gguf" --type Q4_K_M

echo "| checkpoint | ppl, 1 process | ppl, --tp 2 | difference | RSS 1 process (MiB) | RSS per rank, --tp 2 (MiB) |"
echo "|---|---|---|---|---|---|"
for m in "$model|bf16" "$work/int8|int8 per channel" "$work/int4|int4 group 128" "$work/q8_0.gguf|GGUF Q8_0" \
         "$work/q4_k_m.gguf|GGUF Q4_K_M"; do
  dir="${m%%|*}"; label="${m#*|}"
  one=$("$tern" eval ppl -m "$dir" "${eval_args[@]}" -t 1 | field ppl)
  two=$(mpi "$tern" eval ppl -m "$dir" "${eval_args[@]}" -t 1 --tp 2 | field ppl)
  rss1=$("$build/bench_tp" "$dir" --decode 8 --prompt 16 | python3 -c 'import json,sys; print([json.loads(l)["rss_mib"] for l in sys.stdin if "rss_mib" in l][0])')
  rss2=$(mpi "$build/bench_tp" "$dir" --decode 8 --prompt 16 | python3 -c 'import json,sys; print(" / ".join(str(json.loads(l)["rss_mib"]) for l in sys.stdin if "rss_mib" in l))')
  diff=$(python3 -c "print('%+.2e (%+.5f%%)' % ($two - $one, 100 * ($two / $one - 1)))")
  echo "| $label | $one | $two | $diff | $rss1 | $rss2 |"
done

echo
echo "| all-reduce | ppl | ΔPPL vs f32 | KL mean | KL p99 | KL max | top-1 agreement | bytes per token per rank |"
echo "|---|---|---|---|---|---|---|---|"
for m in "$model|bf16" "$work/int4|int4 group 128"; do
  dir="${m%%|*}"; label="${m#*|}"
  base=$(mpi "$tern" eval ppl -m "$dir" "${eval_args[@]}" -t 1 --tp 2 --save-logits "$work/base.logits" | field ppl)
  mpi "$tern" eval ppl -m "$dir" "${eval_args[@]}" -t 1 --tp 2 --tp-comm int8 --base-logits "$work/base.logits" \
    >"$work/q.json"
  bytes=$(mpi "$build/bench_tp" "$dir" --decode 8 --prompt 16 --tp-comm int8 | python3 -c 'import json,sys; print([json.loads(l)["all_reduce_bytes_per_token"] for l in sys.stdin if "all_reduce_bytes_per_token" in l][0])')
  python3 - "$work/q.json" "$label" "$base" "$bytes" <<'PY'
import json, sys
q = json.load(open(sys.argv[1]))
label, base, nbytes = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
print(f"| {label}: f32 | {base:.4f} | - | - | - | - | - | - |")
print(f"| {label}: int8 | {q['ppl']:.4f} | {100 * (q['ppl'] / base - 1):+.3f}% | {q['kl_mean']:.2e} | {q['kl_p99']:.2e} "
      f"| {q['kl_max']:.2e} | {100 * q['top1']:.2f}% | {nbytes:.0f} |")
PY
done
