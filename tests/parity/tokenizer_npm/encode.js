// Reference encoder for tern's tokenizer parity test, using Hugging Face's own library (npm `tokenizers`,
// the Rust tokenizers crate's node binding).
// usage: node encode.js TOKENIZER_JSON CORPUS_JSON OUT_JSON
//   CORPUS_JSON: a JSON array of strings. OUT_JSON gets {"plain": [[ids]...], "special": [[ids]...]}:
//   ids without and with add_special_tokens, one array per corpus string.
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
  for (const text of corpus) {
    plain.push(Array.from((await tok.encode(text, null, { addSpecialTokens: false })).getIds()));
    special.push(Array.from((await tok.encode(text, null, { addSpecialTokens: true })).getIds()));
  }
  fs.writeFileSync(outPath, JSON.stringify({ plain, special }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
