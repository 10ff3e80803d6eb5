// uPlot charts as preact components: a time series (seconds since the page opened on x) and a histogram
// (bars over a histogram's buckets). Each keeps one uPlot instance and feeds it new data; the container's
// data-* attributes say what is drawn (the browser test reads them).
import uPlot from 'uplot';
import { useEffect, useRef } from 'preact/hooks';

const HEIGHT = 180;

function usePlot(makeOpts, data, deps) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const el = box.current;
    const u = new uPlot({ ...makeOpts(), width: Math.max(200, el.clientWidth - 12), height: HEIGHT }, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth - 12), height: HEIGHT }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, deps);
  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data]);
  return box;
}

export function formatSeconds(s) {
  if (s == null || !Number.isFinite(s)) return '–';
  if (s === 0) return '0';
  if (s < 1e-3) return (s * 1e6).toFixed(0) + ' µs';
  if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 1 : 0) + ' ms';
  return s.toFixed(2) + ' s';
}

// series: [{label, color}]; data: [xs (s), ys...] (null: a gap); the y axis starts at 0 unless yRange says.
export function TimePlot({ title, series, data, testid, yFmt, yRange }) {
  const key = series.map((s) => s.label).join('|');
  const box = usePlot(
    () => ({
      title,
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: { x: { time: false }, y: yRange ? { range: yRange } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { values: (u, splits) => splits.map((v) => v.toFixed(0) + ' s'), stroke: '#889' },
        { values: (u, splits) => splits.map((v) => (yFmt ? yFmt(v) : String(v))), size: 60, stroke: '#889' },
      ],
      series: [
        { label: 'time' },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          spanGaps: false,
          points: { show: false },
          value: (u, v) => (v == null ? '–' : yFmt ? yFmt(v) : v.toFixed(2)),
        })),
      ],
    }),
    data,
    [key],
  );
  const points = data.slice(1).reduce((n, ys) => n + ys.filter((v) => v != null).length, 0);
  return <div class="plot" ref={box} data-testid={testid} data-points={points} />;
}

// counts: [[le, n]] per bucket (the last le is +Inf).
export function HistogramPlot({ title, counts, testid, color }) {
  const labels = counts.map(([le]) => (Number.isFinite(le) ? '≤' + formatSeconds(le) : '>' + formatSeconds(counts[counts.length - 2][0])));
  const data = [counts.map((_, i) => i), counts.map(([, n]) => n)];
  const box = usePlot(
    () => ({
      title,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false, range: (u) => [-0.5, Math.max(0, u.data[0].length - 0.5)] } },
      axes: [
        {
          splits: (u) => u.data[0].filter((i) => i % 2 === 0),
          values: (u, splits) => splits.map((i) => labels[i] || ''),
          stroke: '#889',
          size: 40,
        },
        { size: 50, stroke: '#889' },
      ],
      series: [
        { label: 'bucket', value: (u, i) => (i == null ? '–' : labels[i]) },
        { label: 'requests', fill: color + '99', stroke: color, paths: uPlot.paths.bars({ size: [0.8, 60] }), points: { show: false } },
      ],
    }),
    data,
    [labels.join('|')],
  );
  const total = counts.reduce((s, [, n]) => s + n, 0);
  return <div class="plot" ref={box} data-testid={testid} data-total={total} />;
}
