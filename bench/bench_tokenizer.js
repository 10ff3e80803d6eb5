// The npm side of bench_tokenizer.sh: encode throughput of Hugging Face's `tokenizers` (node binding of the Rust
// crate) on the same text as bench_tokenizer.cpp. usage: node bench_tokenizer.js TOKENIZER_JSON TEXT [REPS]
// Needs NODE_PATH pointing at a node_modules holding `tokenizers`. One encode() of one string runs on one
// thread in the Rust crate (its parallelism is across batch items), so both sides measure one core.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const [tokPath, textPath, repsArg] = process.argv.slice(2);
  const reps = Number(repsArg || 5);
  const tok = Tokenizer.fromFile(tokPath);
  const text = fs.readFileSync(textPath, 'utf8');
  const bytes = Buffer.byteLength(text, 'utf8');
  let ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds().length;  // warm-up
  let best = Infinity;
  for (let r = 0; r < reps; ++r) {
    const t0 = process.hrtime.bigint();
    ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds().length;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(`npm tokenizers encode: ${(bytes / 1e6).toFixed(2)} MB in ${best.toFixed(3)} s (best of ${reps}) = ` +
              `${(bytes / 1e6 / best).toFixed(2)} MB/s, ${ids} ids`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
