// Reference encoder for tern's tokenizer parity test, using Hugging Face's own library (npm `tokenizers`,
// the Rust tokenizers crate's node binding).
// usage: node encode.js TOKENIZER_JSON CORPUS_JSON OUT_JSON
//   CORPUS_JSON: a JSON array of strings. OUT_JSON gets {"plain": [[ids]...], "special": [[ids]...],
//   "decoded": [text...], "decoded_skip": [text...]}: ids without and with add_special_tokens, one array per corpus
//   string; decode(plain ids) and decode(special ids, skip_special_tokens).
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const [tokPath, corpusPath, outPath] = process.argv.slice(2);
  if (!outPath) {
    console.error('usage: node encode.js TOKENIZER_JSON CORPUS_JSON OUT_JSON');
    process.exit(2);
  }
  const tok = Tokenizer.fromFile(tokPath);
  const corpus = JSON.parse(fs.readFileSync(corpusPath, 'utf8'));
  const plain = [];
  const special = [];
  const decoded = [];
  const decodedSkip = [];
  for (const text of corpus) {
    const p = Array.from((await tok.encode(text, null, { addSpecialTokens: false })).getIds());
    const s = Array.from((await tok.encode(text, null, { addSpecialTokens: true })).getIds());
    plain.push(p);
    special.push(s);
    decoded.push(await tok.decode(p, false));
    decodedSkip.push(await tok.decode(s, true));
  }
  fs.writeFileSync(outPath, JSON.stringify({ plain, special, decoded, decoded_skip: decodedSkip }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
