// The check list the npm client scripts share: check(name, fn) registers an async check; runChecks() runs them
// in order, prints "ok"/"FAIL" per check, then "ALL OK" (exit 0) or "N FAILED" (exit 1), which the C++ tests read.
const checks = [];
export const check = (name, fn) => checks.push([name, fn]);

export async function runChecks() {
  let failed = 0;
  for (const [name, fn] of checks) {
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e?.stack ?? e}`);
    }
  }
  console.log(failed ? `${failed} FAILED` : 'ALL OK');
  process.exit(failed ? 1 : 0);
}
