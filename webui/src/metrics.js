// The server's /metrics (Prometheus text format 0.0.4) read in the page, and what the dashboard derives
// from two successive scrapes: rates, and the latency of the requests that finished in between.

// {samples: {name: value}, histograms: {name: {buckets: [[le, cumulative count]], sum, count}}}
export function parsePrometheus(text) {
  const samples = {};
  const histograms = {};
  const hist = (name) => (histograms[name] = histograms[name] || { buckets: [], sum: 0, count: 0 });
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const [, name, , labels, valueText] = m;
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    if (name.endsWith('_bucket') && labels) {
      const le = /le="([^"]*)"/.exec(labels);
      if (le) hist(name.slice(0, -7)).buckets.push([le[1] === '+Inf' ? Infinity : Number(le[1]), value]);
      continue;
    }
    if (name.endsWith('_sum') && histograms[name.slice(0, -4)]) {
      hist(name.slice(0, -4)).sum = value;
      continue;
    }
    if (name.endsWith('_count') && histograms[name.slice(0, -6)]) {
      hist(name.slice(0, -6)).count = value;
      continue;
    }
    if (!labels) samples[name] = value;
  }
  for (const h of Object.values(histograms)) h.buckets.sort((a, b) => a[0] - b[0]);
  return { samples, histograms };
}

// Per-bucket (not cumulative) counts of a histogram, or of the difference of two scrapes of it.
export function bucketCounts(h, prev) {
  const out = [];
  let below = 0;
  for (let i = 0; i < h.buckets.length; i++) {
    const cum = h.buckets[i][1] - (prev && prev.buckets[i] ? prev.buckets[i][1] : 0);
    out.push([h.buckets[i][0], Math.max(0, cum - below)]);
    below = cum;
  }
  return out;
}

// The q-quantile of bucket counts, linear within the bucket (as Prometheus' histogram_quantile).
export function quantile(counts, q) {
  const total = counts.reduce((s, [, n]) => s + n, 0);
  if (!total) return null;
  const rank = q * total;
  let seen = 0;
  let lower = 0;
  for (const [le, n] of counts) {
    if (seen + n >= rank && n > 0) {
      if (!Number.isFinite(le)) return lower; // in the +Inf bucket: the largest finite bound
      return lower + (le - lower) * ((rank - seen) / n);
    }
    seen += n;
    if (Number.isFinite(le)) lower = le;
  }
  return lower;
}

// The mean and p90 of what a histogram gained between two scrapes (null when nothing finished).
export function intervalLatency(h, prev) {
  if (!h) return { mean: null, p90: null, n: 0 };
  const n = h.count - (prev ? prev.count : 0);
  if (n <= 0) return { mean: null, p90: null, n: 0 };
  const sum = h.sum - (prev ? prev.sum : 0);
  return { mean: sum / n, p90: quantile(bucketCounts(h, prev), 0.9), n };
}
