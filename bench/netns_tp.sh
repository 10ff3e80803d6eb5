#!/usr/bin/env bash
# Two ranks over a shaped link (issue 17 items 5, 6): one rank in each of two network namespaces joined
# by a veth pair shaped with tc tbf (scripts/netns), OpenMPI's TCP transport over the veth. For each
# rate: the link as MPI sees it (bench_link: every kind of call the engine makes over a sweep of
# sizes, fitted to α + β · bytes, and α over a sweep of the compute before the call — measured apart
# from the decode runs; DIR/link-RATE.out is the fits file `tern plan --link-fits` reads); then per model and layout
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
# under 1). --gap-us N: bench_link's compute before each call for its fit rows (default 2000); its
# gap sweep (0 .. 10 ms, the alpha_gap rows) is what the planner prices each model's calls with, at
# the compute that model's run had between its calls.
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
gap_us=2000
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
    --gap-us) gap_us=$2; shift 2 ;;
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

echo "load average at start: $(cat /proc/loadavg)"
for m in $models; do
  # Baselines without namespaces: one process with 2 threads, and TP = 2 over shared memory.
  build/bench_tp "$m" --threads 2 --prompt 16 --decode "$decode" > "$out/single.out" 2>&1 || true
  record none "$m" single decode "$out/single.out"
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
  # The link as the decode meets it: bench_link with --gap-us of work before each call (the fit rows),
  # and its sweep of gaps 0 .. 10 ms (the alpha_gap rows): the planner prices each model's calls at
  # the compute that model has between them. One run serves every model at this rate.
  timeout 300 scripts/netns mpirun --name $name -- -np 2 "$root/build/bench_link" --reps 200 --gap-us "$gap_us" --p2p-one-way \
    > "$out/link-$rate.out" 2>&1 || true
  grep -E '"(fit|alpha_gap)":"all_reduce"' "$out/link-$rate.out" | cut -c1-200 | sed "s/^/   bench_link: /" || tail -3 "$out/link-$rate.out"
  python3 - "$rate" "$(load)" "$out/link-$rate.out" "${burst:-0}" "$ping_rtt" link >> "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[3]) if l.startswith("{")]
print(json.dumps({"rate": sys.argv[1], "kind": sys.argv[6], "load": float(sys.argv[2]), "rows": rows,
                  "burst_bytes": float(sys.argv[4]), "ping": sys.argv[5]}))
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
    if j.get("kind") == "link":
        lat = [r for r in j["rows"] if "latency_us" in r]
        if lat: print(f"{j['rate']:>7} link ({j.get('model', '')}, compute between calls {lat[0].get('gap_us', 0):.0f} us): one-way {lat[0]['latency_us']:.1f} us, {lat[0]['bandwidth_gbps']:.2f} Gbit/s (4 MiB)")
        for f in (r for r in j["rows"] if "fit" in r):
            print(f"{j['rate']:>7} link: {f['fit']:<10} {f.get('min_bytes', 0):>8.0f} .. {f.get('max_bytes', 0):<8.0f} B: alpha {f['alpha_us']:8.1f} us  beta {f['beta_ns_per_byte']:6.3f} ns/B  (fit within {100 * f['max_rel_residual']:.0f}%)")
        for f in (r for r in j["rows"] if "alpha_gap" in r):
            pts = " ".join(f"{g:.0f}:{a:.1f}" for g, a in f["points"])
            print(f"{j['rate']:>7} link: {f['alpha_gap']:<10} alpha(gap) = {f['alpha0_us']:.1f} + {f['wake_us']:.1f} (1 - e^(-gap/{f['tau_us']:.0f} us)) us, beta {f['beta_ns_per_byte']:.3f} ns/B; measured gap us:alpha us {pts}")
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
# The layout search priced with the same fits, at the compute gaps of its own roofline for this VM
# (a 512-token prompt in a 1024-token context: the TTFT runs' prompt, about the decode runs' KV reads).
for rate in $rates; do
  for m in $models; do
    build/tern plan -m "$m" --devices 2 -d dev-epyc-2vcpu -c 1 --ctx 1024 --prompt-len 512 --link-fits "$out/link-$rate.out" || true
  done
done
echo "load average at the very end: $(cat /proc/loadavg)"
