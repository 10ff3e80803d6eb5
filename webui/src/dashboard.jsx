// The dashboard: /metrics scraped once a second; counters as cards, their history (the last 5 minutes)
// and the latency histograms as uPlot charts. Latency over time is what the requests that finished in
// each interval saw (mean and p90 from the histogram's growth).
import { useEffect, useRef, useState } from 'preact/hooks';
import { AuthError, fetchMetrics } from './api.js';
import { bucketCounts, intervalLatency, parsePrometheus, quantile } from './metrics.js';
import { formatSeconds, HistogramPlot, TimePlot } from './plots.jsx';

const PERIOD_MS = 1000;
const KEEP = 300; // samples (5 minutes)
const TTFT = 'tern_time_to_first_token_seconds';
const ITL = 'tern_inter_token_latency_seconds';

const SERIES = ['running', 'waiting', 'preempted', 'kvUsed', 'hitRate', 'genTps', 'promptTps',
  'ttftMean', 'ttftP90', 'itlMean', 'itlP90'];

function emptyHistory() {
  const h = { t: [] };
  for (const s of SERIES) h[s] = [];
  return h;
}

// One scrape's point of every series; prev: the previous scrape (for the interval's latency).
function point(cur, prev) {
  const v = (n) => (n in cur.samples ? cur.samples[n] : null);
  const ttft = intervalLatency(cur.histograms[TTFT], prev && prev.histograms[TTFT]);
  const itl = intervalLatency(cur.histograms[ITL], prev && prev.histograms[ITL]);
  return {
    running: v('tern_requests_running'),
    waiting: v('tern_requests_waiting'),
    preempted: v('tern_requests_preempted_total'),
    kvUsed: v('tern_kv_blocks_used'),
    hitRate: v('tern_prefix_cache_hit_rate'),
    genTps: v('tern_generation_tokens_per_second'),
    promptTps: v('tern_prompt_tokens_per_second'),
    ttftMean: ttft.mean,
    ttftP90: ttft.p90,
    itlMean: itl.mean,
    itlP90: itl.p90,
  };
}

function Card({ label, value, testid, sub }) {
  return (
    <div class="card">
      <div class="card-label">{label}</div>
      <div class="card-value" data-testid={testid}>
        {value}
      </div>
      {sub ? <div class="card-sub muted">{sub}</div> : null}
    </div>
  );
}

const num = (v, digits = 0) => (v == null || !Number.isFinite(v) ? '–' : v.toFixed(digits));

export function DashboardView({ onAuthError, visible }) {
  const [latest, setLatest] = useState(null);
  const [history, setHistory] = useState(emptyHistory);
  const [error, setError] = useState('');
  const prev = useRef(null);
  const t0 = useRef(performance.now());

  useEffect(() => {
    let stopped = false;
    let timer = null;
    const controller = new AbortController();
    async function scrape() {
      try {
        const cur = parsePrometheus(await fetchMetrics(controller.signal));
        const p = point(cur, prev.current);
        prev.current = cur;
        const t = (performance.now() - t0.current) / 1000;
        setHistory((h) => {
          const next = { t: [...h.t, t].slice(-KEEP) };
          for (const s of SERIES) next[s] = [...h[s], p[s]].slice(-KEEP);
          return next;
        });
        setLatest(cur);
        setError('');
      } catch (e) {
        if (stopped) return;
        if (e instanceof AuthError) onAuthError(e.message);
        setError(e.message);
      }
      if (!stopped) timer = setTimeout(scrape, PERIOD_MS);
    }
    scrape();
    return () => {
      stopped = true;
      clearTimeout(timer);
      controller.abort();
    };
  }, []);

  const s = latest ? latest.samples : {};
  const hist = (name) => (latest && latest.histograms[name]) || { buckets: [], sum: 0, count: 0 };
  const ttftCounts = bucketCounts(hist(TTFT));
  const itlCounts = bucketCounts(hist(ITL));
  const kvPct = s.tern_kv_blocks_total ? (100 * s.tern_kv_blocks_used) / s.tern_kv_blocks_total : null;
  const t = history.t;
  return (
    <div class="dashboard" data-testid="dashboard" data-scrapes={t.length}>
      {error ? <div class="error">metrics: {error}</div> : null}
      <div class="cards">
        <Card label="running" testid="stat-running" value={num(s.tern_requests_running)} />
        <Card label="waiting" testid="stat-waiting" value={num(s.tern_requests_waiting)} />
        <Card label="preempted (total)" testid="stat-preempted" value={num(s.tern_requests_preempted_total)} />
        <Card label="KV blocks used" testid="stat-kv" value={num(s.tern_kv_blocks_used)}
          sub={kvPct == null ? '' : `of ${num(s.tern_kv_blocks_total)} (${kvPct.toFixed(1)}%)`} />
        <Card label="prefix-cache hit rate" testid="stat-hit-rate"
          value={s.tern_prefix_cache_hit_rate == null ? '–' : (100 * s.tern_prefix_cache_hit_rate).toFixed(1) + '%'} />
        <Card label="generation tok/s" testid="stat-gen-tps" value={num(s.tern_generation_tokens_per_second, 1)}
          sub={`prompt ${num(s.tern_prompt_tokens_per_second, 1)} tok/s`} />
        <Card label="tokens generated" testid="stat-gen-total" value={num(s.tern_generation_tokens_total)} />
        <Card label="requests completed" testid="stat-completed" value={num(s.tern_http_requests_completed_total)} />
        <Card label="TTFT p50" testid="stat-ttft-p50" value={formatSeconds(quantile(ttftCounts, 0.5))}
          sub={`${num(hist(TTFT).count)} requests`} />
        <Card label="inter-token p50" testid="stat-itl-p50" value={formatSeconds(quantile(itlCounts, 0.5))} />
      </div>
      {visible ? (
        <div class="plots">
          <TimePlot title="Requests" testid="plot-requests" data={[t, history.running, history.waiting, history.preempted]}
            series={[{ label: 'running', color: '#4c8bf5' }, { label: 'waiting', color: '#f5a623' },
              { label: 'preempted (total)', color: '#d6336c' }]} />
          <TimePlot title="KV cache blocks used" testid="plot-kv" data={[t, history.kvUsed]}
            series={[{ label: 'used', color: '#7b61ff' }]} />
          <TimePlot title="Throughput (tokens/s)" testid="plot-tps" data={[t, history.genTps, history.promptTps]}
            series={[{ label: 'generation', color: '#2bb673' }, { label: 'prompt', color: '#4c8bf5' }]} />
          <TimePlot title="Prefix-cache hit rate" testid="plot-hit-rate" data={[t, history.hitRate]}
            yRange={[0, 1]} yFmt={(v) => (100 * v).toFixed(0) + '%'} series={[{ label: 'hit rate', color: '#e8590c' }]} />
          <TimePlot title="Time to first token" testid="plot-ttft" yFmt={formatSeconds}
            data={[t, history.ttftMean, history.ttftP90]}
            series={[{ label: 'mean', color: '#4c8bf5' }, { label: 'p90', color: '#d6336c' }]} />
          <TimePlot title="Inter-token latency" testid="plot-itl" yFmt={formatSeconds}
            data={[t, history.itlMean, history.itlP90]}
            series={[{ label: 'mean', color: '#2bb673' }, { label: 'p90', color: '#d6336c' }]} />
          <HistogramPlot title="Time to first token (all requests)" testid="hist-ttft" counts={ttftCounts} color="#4c8bf5" />
          <HistogramPlot title="Inter-token latency (all tokens)" testid="hist-itl" counts={itlCounts} color="#2bb673" />
        </div>
      ) : null}
    </div>
  );
}
