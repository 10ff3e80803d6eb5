// Checks webui/src/metrics.js (the dashboard's reading of /metrics) in node, without a browser:
//   node metrics_check.mjs METRICS_FILE
// METRICS_FILE: a scrape of a `tern serve` that answered at least one generation request. Prints "ALL OK".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { bucketCounts, intervalLatency, parsePrometheus, quantile } from '../src/metrics.js';

// The server's own text: every series the dashboard draws is there.
const scrape = parsePrometheus(fs.readFileSync(process.argv[2], 'utf8'));
for (const name of ['tern_requests_running', 'tern_requests_waiting', 'tern_requests_preempted_total',
  'tern_kv_blocks_used', 'tern_kv_blocks_total', 'tern_prefix_cache_hit_rate', 'tern_generation_tokens_per_second',
  'tern_prompt_tokens_per_second', 'tern_generation_tokens_total', 'tern_http_requests_completed_total']) {
  assert.ok(Number.isFinite(scrape.samples[name]), name + ' is read');
}
for (const name of ['tern_time_to_first_token_seconds', 'tern_inter_token_latency_seconds']) {
  const h = scrape.histograms[name];
  assert.ok(h && h.buckets.length >= 2, name + ' has buckets');
  assert.equal(h.buckets[h.buckets.length - 1][0], Infinity, name + ' ends with +Inf');
  assert.equal(h.buckets[h.buckets.length - 1][1], h.count, name + ': +Inf holds every observation');
  assert.ok(h.count >= 1 && h.sum > 0, name + ' counted the request');
  assert.equal(bucketCounts(h).reduce((s, [, n]) => s + n, 0), h.count, name + ': per-bucket counts add up');
}
assert.ok(!('tern_time_to_first_token_seconds_count' in scrape.samples), 'histogram parts are not samples');

// Quantiles interpolate within a bucket, as Prometheus' histogram_quantile.
const counts = [[0.1, 0], [0.2, 10], [0.4, 10], [Infinity, 0]];
assert.equal(quantile(counts, 0.5), 0.2);
assert.ok(Math.abs(quantile(counts, 0.25) - 0.15) < 1e-12);
assert.ok(Math.abs(quantile(counts, 0.75) - 0.3) < 1e-12);
assert.equal(quantile([[1, 0], [Infinity, 4]], 0.5), 1, 'in the +Inf bucket: the largest finite bound');
assert.equal(quantile([[1, 0], [Infinity, 0]], 0.5), null, 'no observations: no quantile');

// Between two scrapes: the latency of what finished in between.
const text = (sum, count, b1) => `# TYPE x histogram\nx_bucket{le="0.5"} ${b1}\nx_bucket{le="1"} ${count}\n` +
  `x_bucket{le="+Inf"} ${count}\nx_sum ${sum}\nx_count ${count}\nup 1\n`;
const a = parsePrometheus(text(1.0, 4, 2)).histograms.x;
const b = parsePrometheus(text(3.0, 8, 2)).histograms.x;
const d = intervalLatency(b, a);
assert.equal(d.n, 4);
assert.equal(d.mean, 0.5);
assert.ok(d.p90 > 0.5 && d.p90 <= 1, 'the 4 new observations all fell in (0.5, 1]');
assert.deepEqual(intervalLatency(b, b), { mean: null, p90: null, n: 0 }, 'nothing finished: no point');
assert.equal(parsePrometheus(text(1, 1, 1)).samples.up, 1);
console.log('ALL OK');
