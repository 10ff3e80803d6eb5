// llama.cpp side of the tern peer benchmark, same protocol as tern's `bench_generate MODEL`:
//   prefill: one 512-token prompt evaluated as a single batch, tokens/s = 512 / time
//   decode:  after a 128-token prompt, 128 greedy tokens one at a time (batch 1), tokens/s = 128 / time
// Prompts are pseudo-random token ids (fixed seed, ids below the tokenizer's first special token when it
// can be found, else below vocab size), so the numbers do not depend on a tokenizer or on text.
// Each measurement: one untimed warm-up run, then --reps timed runs; the median is reported.
// usage: node bench.mjs MODEL.gguf [--threads 1,2] [--reps 3] [--prefill 512] [--prompt 128] [--decode 128]
//                                  [--flash-attn auto|on|off] [--json OUT.json]
import fs from "node:fs";
import {loadModel, describeLlama, parseArgs} from "./common.mjs";

const args = parseArgs(process.argv.slice(2), {threads: "1,2", reps: 3, prefill: 512, prompt: 128, decode: 128,
    "flash-attn": "off", json: null});
const modelPath = args._[0];
if (!modelPath) {
    console.error("usage: node bench.mjs MODEL.gguf [--threads 1,2] [--reps 3] [--json OUT.json]");
    process.exit(2);
}
const threadList = String(args.threads).split(",").map(Number);
const reps = Number(args.reps), nPrefill = Number(args.prefill), nPrompt = Number(args.prompt), nDecode = Number(args.decode);
const fa = {auto: "auto", on: true, off: false}[args["flash-attn"]];

function randomIds(n, hi, seed) {
    let s = seed >>> 0; // xorshift32
    const out = [];
    for (let i = 0; i < n; i++) {
        s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
        out.push(s % hi);
    }
    return out;
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const now = () => Number(process.hrtime.bigint()) / 1e9;

const tLoad0 = now();
const model = await loadModel(modelPath);
const loadS = now() - tLoad0;
const info = await describeLlama(); // after the load: the backend-loader log line names the CPU variant
const vocab = Number(model.fileInfo.metadata.llama?.vocab_size ?? model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length);
// Plain (non-special) token ids: those below the first CONTROL token if it is near the end (Llama 3: 128000).
const types = model.fileInfo.metadata.tokenizer?.ggml?.token_type;
let idHi = vocab;
if (types) { const firstCtl = types.findIndex((t) => t === 3); if (firstCtl > vocab / 2) idHi = firstCtl; }
const prefillIds = randomIds(nPrefill, idHi, 1234);
const promptIds = randomIds(nPrompt, idHi, 5678);

const results = [];
for (const threads of threadList) {
    const ctxSize = Math.max(nPrefill, nPrompt + nDecode) + 64;
    const context = await model.createContext({contextSize: ctxSize, batchSize: Math.max(nPrefill, nPrompt), threads,
        sequences: 1, flashAttention: fa});
    const seq = context.getSequence();

    async function prefillOnce() {
        await seq.clearHistory();
        const t0 = now();
        await seq.evaluateWithoutGeneratingNewTokens(prefillIds);
        return now() - t0;
    }
    async function decodeOnce() {
        await seq.clearHistory();
        // The first nPrompt-1 prompt tokens untimed; then nDecode single-token steps, the first one
        // consuming the last prompt token, each producing one greedy token.
        await seq.evaluateWithoutGeneratingNewTokens(promptIds.slice(0, -1));
        let n = 0;
        const t0 = now();
        for await (const _ of seq.evaluate(promptIds.slice(-1), {temperature: 0})) {
            if (++n === nDecode) break;
        }
        return now() - t0;
    }
    const log = (what, s) => process.stderr.write(`threads=${threads} ${what}: ${s.toFixed(2)} s\n`);
    log("prefill warm-up", await prefillOnce());
    const pf = [];
    for (let r = 0; r < reps; r++) { pf.push(await prefillOnce()); log(`prefill ${nPrefill} run ${r + 1}`, pf[r]); }
    log("decode warm-up", await decodeOnce());
    const dc = [];
    for (let r = 0; r < reps; r++) { dc.push(await decodeOnce()); log(`decode ${nDecode} run ${r + 1}`, dc[r]); }
    const row = {
        threads,
        prefill_tokens: nPrefill, prefill_tok_s: nPrefill / median(pf), prefill_runs_s: pf,
        prompt_tokens: nPrompt, decode_tokens: nDecode, decode_tok_s: nDecode / median(dc), decode_runs_s: dc,
        context_threads: context.currentThreads,
    };
    results.push(row);
    await context.dispose();
}

const out = {
    engine: "llama.cpp",
    llama_cpp: info,
    node_llama_cpp: JSON.parse(fs.readFileSync(new URL("./node_modules/node-llama-cpp/package.json", import.meta.url))).version,
    model: modelPath,
    model_size_bytes: fs.statSync(modelPath).size,
    load_s: loadS,
    protocol: {prefill: nPrefill, prompt: nPrompt, decode: nDecode, reps, warmup: 1, statistic: "median",
        sampling: "greedy", batch: 1, flash_attention: args["flash-attn"], kv_cache: "f16", prompt_ids: "xorshift32 random ids"},
    results,
};
if (args.json) fs.writeFileSync(args.json, JSON.stringify(out, null, 2) + "\n");
console.log(JSON.stringify(out));
console.log();
console.log(`llama.cpp ${info.release} (prebuilt node-llama-cpp ${out.node_llama_cpp}, ggml-cpu variant: ${info.cpu_variant_loaded})`);
console.log(`model: ${modelPath} (${(out.model_size_bytes / 1e6).toFixed(1)} MB)`);
console.log("| threads | prefill 512 tok/s | decode 128 tok/s (after 128-token prompt) |");
console.log("|--------:|------------------:|------------------------------------------:|");
for (const r of results) console.log(`| ${r.threads} | ${r.prefill_tok_s.toFixed(1)} | ${r.decode_tok_s.toFixed(1)} |`);
await model.dispose();
