// Checks a converted GGUF against a Hugging Face reference.json (as in shared/models/docs-llama-28m):
// prompt token ids, 32 greedy tokens, and (with --ppl FILE) perplexity under tern's default protocol
// (BOS once, non-overlapping 512-token windows, first 40, every token but each window's first scored).
// usage: node validate.mjs MODEL.gguf REFERENCE.json [--ppl TEXT_FILE] [--threads N]
import fs from "node:fs";
import {llama, loadModel, describeLlama, parseArgs} from "./common.mjs";

const args = parseArgs(process.argv.slice(2), {ppl: null, threads: 2});
const [modelPath, refPath] = args._;
if (!modelPath || !refPath) {
    console.error("usage: node validate.mjs MODEL.gguf REFERENCE.json [--ppl TEXT_FILE] [--threads N]");
    process.exit(2);
}
const ref = JSON.parse(fs.readFileSync(refPath, "utf8"));
const info = await describeLlama();
const model = await loadModel(modelPath);
const threads = Number(args.threads);
const context = await model.createContext({contextSize: 1024, batchSize: 512, threads, sequences: 1});
const seq = context.getSequence();

let allOk = true;
for (const p of ref.prompts) {
    const ids = Array.from(model.tokenize(p.text, false, "trimLeadingSpace"));
    const withBos = [model.tokens.bos, ...ids];
    const idsOk = JSON.stringify(withBos) === JSON.stringify(p.ids);
    await seq.clearHistory();
    const out = [];
    for await (const t of seq.evaluate(withBos, {temperature: 0})) {
        out.push(t);
        if (out.length === p.greedy32.length) break;
    }
    const text = model.detokenize(out);
    let same = 0;
    while (same < out.length && out[same] === p.greedy32[same]) same++;
    const ok = idsOk && same === p.greedy32.length;
    allOk &&= ok;
    console.log(JSON.stringify({prompt: p.text, ids_match: idsOk, greedy_tokens_matching_prefix: `${same}/${p.greedy32.length}`,
        text_match: text === p.greedy32_text, text}));
    if (!idsOk) console.log("  ids ours:", JSON.stringify(withBos), "ref:", JSON.stringify(p.ids));
}

if (args.ppl) {
    const text = fs.readFileSync(args.ppl, "utf8");
    const toks = [model.tokens.bos, ...model.tokenize(text, false, "trimLeadingSpace")];
    const win = 512, nWin = Math.min(40, Math.floor(toks.length / win));
    let nll = 0, count = 0;
    for (let w = 0; w < nWin; w++) {
        const chunk = toks.slice(w * win, (w + 1) * win);
        await seq.clearHistory();
        // Raw logits at every position (one batch), then log-softmax here.
        const res = await seq.controlledEvaluate(chunk.map((t, i) => i < win - 1 ? [t, {generateNext: {logits: true}}] : t));
        for (let i = 0; i < win - 1; i++) {
            const logits = res[i].next.logits; // Map<token, logit>
            let mx = -Infinity;
            for (const v of logits.values()) if (v > mx) mx = v;
            let se = 0;
            for (const v of logits.values()) se += Math.exp(v - mx);
            nll -= logits.get(chunk[i + 1]) - mx - Math.log(se);
            count++;
        }
    }
    const ppl = Math.exp(nll / count);
    console.log(JSON.stringify({ppl_val_ctx512_40win: ppl, tokens_scored: count, reference: ref.ppl_val_ctx512_40win,
        reference_tokens_scored: ref.ppl_val_ctx512_40win_tokens_scored, tokens_in_file: toks.length, reference_tokens_in_file: ref.docs_val_tokens}));
}
console.log(JSON.stringify({llama_cpp: info, all_greedy_match: allOk}));
await context.dispose();
await model.dispose();
process.exit(allOk ? 0 : 1);
