#!/usr/bin/env bash
# Speculative decoding on docs-llama-28m (docs/speculative.md, docs/benchmarks.md): `tern bench offline`
# (greedy, EOS ignored, closed loop) with and without n-gram drafting, on copy-heavy prompts (a passage
# of docs-val.txt, whole lines of about 600 characters, twice, then its first line again: the model
# goes on repeating it, and like any small model drifts into loops of its own)
# and on ordinary prompts (a 400-character slice of docs-val.txt, continued), at 1, 4 and 16 in flight.
# Prints one markdown row per run: output tok/s (wall, prefill included), decode-phase tok/s, the
# acceptance rate and the mean accepted length (tokens per verify step, the bonus token included).
# On a shared machine, separate runs drift apart; for ratios taken in the same moments run
# `BUILD_DIR/bench_spec_drafter MODEL_DIR PROMPTS.jsonl --timed 3` on the same prompt files (kept with
# KEEP=DIR), which times the engines request by request in turn in one process.
# usage: bench/bench_speculative.sh [BUILD_DIR] [MODEL_DIR] [extra tern bench offline flags...]
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$src/build}"
model="${2:-$src/../shared/models/docs-llama-28m}"
shift $(( $# > 2 ? 2 : $# ))
text="$src/../shared/data/docs-val.txt"
if [ -n "${KEEP:-}" ]; then
  work="$KEEP"; mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi

python3 - "$text" "$work" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
copy, plain = [], []
for i in range(32):
    at = text.find("\n", (i * 1931) % (len(text) - 2000)) + 1
    passage = text[at:at + 600]
    passage = passage[:passage.rfind("\n") + 1]          # whole lines
    cut = passage.find("\n", 40)
    first = passage[:cut + 1] if cut > 0 else passage[:60]
    copy.append({"prompt": passage + "\n" + passage + "\n" + first})
    at2 = text.find("\n", (i * 2713 + 500) % (len(text) - 2000)) + 1
    plain.append({"prompt": text[at2:at2 + 400]})
for name, rows in (("copy", copy), ("plain", plain)):
    with open(f"{sys.argv[2]}/{name}.jsonl", "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
PY

echo "| prompts | in flight | speculative | output tok/s | decode tok/s | acceptance | mean accepted length |"
echo "|---|---|---|---|---|---|---|"
for prompts in copy plain; do
  for c in 1 4 16; do
    n=$(( c < 4 ? 8 : 2 * c ))
    for sp in none ngram; do
      "$build/tern" bench offline -m "$model" --prompts "$work/$prompts.jsonl" --requests "$n" --concurrency "$c" \
          --output-len 128 --speculative "$sp" --json "$@" 2>/dev/null |
        python3 -c "
import json, sys
j = json.load(sys.stdin)
acc = j.get('spec_acceptance_rate'); L = j.get('spec_mean_accepted_length')
print('| $prompts | $c | $sp | %.1f | %.1f | %s | %s |' % (j['output_tokens_per_s'], j['decode_tokens_per_s'],
      '-' if acc is None else '%.1f%%' % (100 * acc), '-' if L is None else '%.2f' % L))"
    done
  done
done
