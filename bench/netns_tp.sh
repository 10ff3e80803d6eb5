#!/usr/bin/env bash
# Two ranks over a shaped link (issue 17 items 5, 6): one rank in each of two network namespaces joined
# by a veth pair shaped with tc tbf (scripts/netns), OpenMPI's TCP transport over the veth. For each
# rate: the link as MPI sees it (bench_link: every kind of call the engine makes over a sweep of
# sizes, fitted to α + β · bytes — measured apart from the decode runs); then per model and layout
# decode tok/s and the time a step spends on the link (bench_tp / bench_pp --decode), TTFT of a
# 512-token prompt, and the bytes that crossed the veth (its counters). Baselines on this machine
# without the namespaces: the single process with 2 threads and TP = 2 over shared memory. At the
# end `tern plan --check` prices every run from the link rows and compares (±20%).
#
#   bench/netns_tp.sh [--rates "10gbit 1gbit"] [--models "DIR ..."] [--layouts "tp2 pp2 tp2-int8"]
#                     [--decode 32] [--prompt 512] [--burst BYTES] [--gap-us N] [--out DIR] [--force]
#
# Layouts: tp2 (bench_tp under -np 2), pp2 (bench_pp --pp 2 --micro-batches 1: batch 1, the stages one
# after another, so a step less the stages' work is the link), tp2-int8 (bench_tp --tp-comm int8).
# --burst: the shaper's bucket (default 15000 bytes: with one packet tbf on this VM held "10 Gbit/s" to
# under 1). --gap-us N: bench_link's compute between calls, for every model (default: per model from
# its single-process baseline, see gaps_of below).
# Output: DIR/results.jsonl (one JSON line per run, with the rate, model, layout and load average),
# a table and the plan --check comparison on stdout. Refuses to run while the 1-minute load average is
# 1.5 or more (figures taken during builds are worthless) unless --force.
# Needs root (network namespaces); removes its namespaces on exit, failed or not.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

rates="10gbit 1gbit"
models="/work/models/llama-1b $root/../shared/models/docs-llama-28m"
[ -d /work/shared/models/docs-llama-28m ] && models="/work/models/llama-1b /work/shared/models/docs-llama-28m"
layouts="tp2 pp2 tp2-int8"  # the ones whose program or flag is missing are reported as skipped
decode=32
prompt=512
out=/tmp/netns_tp
force=0
burst_arg=(--burst 15000)
gap_us=200
gap_given=0
name=ternb
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    --prompt) prompt=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --burst) burst_arg=(--burst "$2"); shift 2 ;;
    --gap-us) gap_us=$2; gap_given=1; shift 2 ;;
    --force) force=1; shift ;;
    *) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done

load() { cut -d' ' -f1 /proc/loadavg; }
if [ "$force" = 0 ] && awk -v l="$(load)" 'BEGIN { exit !(l >= 1.5) }'; then
  echo "bench/netns_tp.sh: load average $(load) >= 1.5: figures would measure the other processes (wait, or --force)" >&2
  exit 3
fi
for b in build/bench_tp build/bench_pp build/bench_link build/tern; do
  [ -x "$b" ] || { echo "bench/netns_tp.sh: $b missing: cmake --build build --target tern bench_tp bench_pp bench_link" >&2; exit 1; }
done
for m in $models; do
  [ -f "$m/config.json" ] || { echo "bench/netns_tp.sh: $m: no config.json (the synth 1B: build/tern synth --shape llama-3.2-1b -o $m)" >&2; exit 1; }
done

mkdir -p "$out"
results=$out/results.jsonl
: > "$results"
trap 'scripts/netns down --name $name >/dev/null' EXIT
trap 'exit 130' INT TERM
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun_local=(/usr/bin/mpirun -np 2 --allow-run-as-root --oversubscribe --bind-to none)

# Appends one result: the last JSON summary line bench_tp / bench_pp printed (the one with decode_tok_s), tagged.
record() {  # record RATE MODEL LAYOUT KIND FILE [VETH_BYTES]
  local line
  line=$(grep '"decode_tok_s"' "$5" | tail -1 || true)
  if [ -z "$line" ]; then
    local why
    why=$(grep -m1 -E 'bench_|error|usage' "$5" || tail -1 "$5")
    echo "{\"rate\":\"$1\",\"model\":\"$(basename "$2")\",\"layout\":\"$3\",\"kind\":\"$4\",\"error\":$(printf '%s' "$why" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}" >> "$results"
    return
  fi
  python3 - "$line" "$1" "$(basename "$2")" "$3" "$4" "$(load)" "${6:-0}" >> "$results" <<'EOF'
import json, sys
j = json.loads(sys.argv[1])
j.update(rate=sys.argv[2], model=sys.argv[3], layout=sys.argv[4], kind=sys.argv[5], load=float(sys.argv[6]))
if int(sys.argv[7]) > 0: j["veth_bytes"] = int(sys.argv[7])
print(json.dumps(j))
EOF
}

# Layout → the bench program and its flags. Both print a JSON summary line with decode_tok_s, ttft_s,
# comm_s_per_token, comm_share (a TimedCommunicator around the communicator); bench_tp adds
# all_reduce_link_s_per_token and comm_link_s_per_token, bench_pp comm_critical_s_per_token.
declare -A layout_prog=([tp2]=bench_tp [pp2]=bench_pp [tp2-int8]=bench_tp)
declare -A layout_flags=([tp2]="" [pp2]="--pp 2 --micro-batches 1" [tp2-int8]="--tp-comm int8")

veth_total() { scripts/netns counters --name $name | awk '{printf "%.0f\n", $1 + $3}'; }

# bench_link's compute between calls for a model, from its single-process baseline (no link in it):
# a TP rank computes about half a layer on 1 thread between its all-reduces ≈ the 2-thread step ÷
# (2 × layers); a pipeline stage computes about the whole 2-thread step before it sends. Both capped
# at 2 ms (bench_link's time). --gap-us N uses N for both instead.
declare -A gap_tp gap_p2p
gaps_of() {  # gaps_of MODEL SINGLE_OUT
  read -r gap_tp[$1] gap_p2p[$1] < <(python3 - "$1/config.json" "$2" "$gap_us" "$gap_given" <<'EOF'
import json, sys
layers = json.load(open(sys.argv[1])).get("num_hidden_layers", 16)
runs = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{") and "decode_tok_s" in l]
if sys.argv[4] == "1" or not runs or runs[-1]["decode_tok_s"] <= 0:
    print(sys.argv[3], sys.argv[3])
else:
    step_us = 1e6 / runs[-1]["decode_tok_s"]
    print(f"{min(2000.0, step_us / (2 * layers)):.0f} {min(2000.0, step_us):.0f}")
EOF
)
}

echo "load average at start: $(cat /proc/loadavg)"
for m in $models; do
  # Baselines without namespaces: one process with 2 threads, and TP = 2 over shared memory.
  build/bench_tp "$m" --threads 2 --prompt 16 --decode "$decode" > "$out/single.out" 2>&1 || true
  record none "$m" single decode "$out/single.out"
  gaps_of "$m" "$out/single.out"
  echo "$(basename "$m"): bench_link's compute between calls ${gap_tp[$m]} us (collectives), ${gap_p2p[$m]} us (sends)"
  "${mpirun_local[@]}" build/bench_tp "$m" --threads 1 --prompt 16 --decode "$decode" > "$out/shm.out" 2>&1 || true
  record shm "$m" tp2 decode "$out/shm.out"
done
for rate in $rates; do
  scripts/netns up --name $name --rate "$rate" "${burst_arg[@]}" >/dev/null
  echo "== $rate: veth round trip (ping): $(scripts/netns latency --name $name)"
  # The shaper's bucket as tc rounded it ("burst 1500b"): the planner's --check prices it (--link-burst-bytes).
  burst=$(tc -n $name-a qdisc show dev $name-va | sed -nE 's/.* burst ([0-9.]+)(b|Kb|Mb) .*/\1 \2/p' |
          awk '{ m = $2 == "Kb" ? 1024 : $2 == "Mb" ? 1048576 : 1; print $1 * m }')
  ping_rtt=$(scripts/netns latency --name $name)
  for m in $models; do
    # The link as this model's decode meets it: bench_link with the model's compute between calls.
    timeout 240 scripts/netns mpirun --name $name -- -np 2 "$root/build/bench_link" --reps 200 \
      --gap-us "${gap_tp[$m]}" --p2p-gap-us "${gap_p2p[$m]}" > "$out/link-$rate-$(basename "$m").out" 2>&1 || true
    grep -E '"fit":"all_reduce"' "$out/link-$rate-$(basename "$m").out" | sed "s/^/   bench_link $(basename "$m"): /" ||
      tail -3 "$out/link-$rate-$(basename "$m").out"
    python3 - "$rate" "$(load)" "$out/link-$rate-$(basename "$m").out" "${burst:-0}" "$ping_rtt" link "$(basename "$m")" >> "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[3]) if l.startswith("{")]
print(json.dumps({"rate": sys.argv[1], "kind": sys.argv[6], "model": sys.argv[7], "load": float(sys.argv[2]), "rows": rows,
                  "burst_bytes": float(sys.argv[4]), "ping": sys.argv[5]}))
EOF
  done
  # The same with back-to-back calls (no compute between): what the gap changes. Recorded, not priced.
  timeout 180 scripts/netns mpirun --name $name -- -np 2 "$root/build/bench_link" --reps 200 --gap-us 0 \
    > "$out/link0-$rate.out" 2>&1 || true
  python3 - "$rate" "$(load)" "$out/link0-$rate.out" "${burst:-0}" "" link-gap0 >> "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[3]) if l.startswith("{")]
print(json.dumps({"rate": sys.argv[1], "kind": sys.argv[6], "load": float(sys.argv[2]), "rows": rows,
                  "burst_bytes": float(sys.argv[4])}))
EOF
  for m in $models; do
    for layout in $layouts; do
      [ -n "${layout_prog[$layout]:-}" ] || { echo "bench/netns_tp.sh: unknown layout $layout (${!layout_prog[*]})" >&2; exit 2; }
      prog=$root/build/${layout_prog[$layout]} args=${layout_flags[$layout]}
      for kind in decode ttft; do
        if [ $kind = decode ]; then p=16 n=$decode; else p=$prompt n=2; fi
        b0=$(veth_total)
        # shellcheck disable=SC2086
        if [ -x "$prog" ]; then
          timeout 300 scripts/netns mpirun --name $name -- -np 2 "$prog" "$m" --threads 1 --prompt $p --decode $n $args \
            > "$out/run.out" 2>&1 || true
        else
          echo "bench_tp: $prog is not built (yet)" > "$out/run.out"
        fi
        record "$rate" "$m" "$layout" $kind "$out/run.out" $(( $(veth_total) - b0 ))
      done
    done
  done
done
echo "load average at end: $(cat /proc/loadavg)"

python3 - "$results" <<'EOF'
import json, sys
print(f"{'rate':>7} {'model':<16} {'layout':<9} {'kind':<6} {'tok/s':>7} {'TTFT s':>7} {'comm %':>7} {'link ms/tok':>11} {'veth MB':>8} {'load':>5}")
print("  (link ms/tok: TP every collective at its fastest rank, comm_link_s_per_token; PP the step less the stages' work)")
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get("kind") == "link-gap0":
        for f in (r for r in j["rows"] if r.get("fit") == "all_reduce"):
            print(f"{j['rate']:>7} link, calls back to back: all_reduce {f.get('min_bytes', 0):>8.0f} .. {f.get('max_bytes', 0):<8.0f} B: alpha {f['alpha_us']:8.1f} us  beta {f['beta_ns_per_byte']:6.3f} ns/B")
        continue
    if j.get("kind") == "link":
        lat = [r for r in j["rows"] if "latency_us" in r]
        if lat: print(f"{j['rate']:>7} link ({j.get('model', '')}, compute between calls {lat[0].get('gap_us', 0):.0f} us): one-way {lat[0]['latency_us']:.1f} us, {lat[0]['bandwidth_gbps']:.2f} Gbit/s (4 MiB)")
        for f in (r for r in j["rows"] if "fit" in r):
            print(f"{j['rate']:>7} link: {f['fit']:<10} {f.get('min_bytes', 0):>8.0f} .. {f.get('max_bytes', 0):<8.0f} B: alpha {f['alpha_us']:8.1f} us  beta {f['beta_ns_per_byte']:6.3f} ns/B  (fit within {100 * f['max_rel_residual']:.0f}%)")
        continue
    if "error" in j:
        print(f"{j['rate']:>7} {j['model']:<16} {j['layout']:<9} {j['kind']:<6} skipped: {j['error'].strip().splitlines()[-1] if j['error'].strip() else 'no output'}")
        continue
    veth = j.get("veth_bytes", 0)
    print(f"{j['rate']:>7} {j['model']:<16} {j['layout']:<9} {j['kind']:<6} {j.get('decode_tok_s', float('nan')):>7.2f} {j.get('ttft_s', float('nan')):>7.3f} "
          f"{100 * j.get('comm_share', 0):>6.1f}% {1e3 * j.get('comm_link_s_per_token', j.get('comm_critical_s_per_token', 0)):>11.3f} "
          f"{'-' if not veth else '%.2f' % (veth / 1e6):>8} {j['load']:>5.2f}")
EOF

# The planner's prediction from the link rows, next to each run (exit status ignored: outside ±20% is a finding).
for m in $models; do
  build/tern plan --check -m "$m" --measured "$results" || true
done
echo "load average at the very end: $(cat /proc/loadavg)"
