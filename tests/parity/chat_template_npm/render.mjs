// Renders each case of cases.json (argv[2]) with @huggingface/jinja and prints a JSON array of outputs.
// Usage: node render.mjs CASES.json  (run from a folder whose node_modules holds the pinned packages)
import { Template } from "@huggingface/jinja";
import fs from "node:fs";
const cases = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = cases.map((c) => {
  try { return { ok: new Template(c.template).render(c.context) }; }
  catch (e) { return { error: String(e) }; }
});
process.stdout.write(JSON.stringify(out));
