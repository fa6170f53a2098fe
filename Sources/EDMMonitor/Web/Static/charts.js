// Line charts as SVG: axes with units, one line and dots per series, a <title> tooltip on every
// dot, a legend when there are several series, and a text in place of an empty chart.
// The only chart code of the dashboard.

const SVG = 'http://www.w3.org/2000/svg';
const M = { left: 58, right: 12, top: 14, bottom: 26 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Formats `value` of `unit` (the API's unit names) for axes and tooltips. */
export function formatValue(value, unit, scale = Math.abs(value)) {
  if (!Number.isFinite(value)) return '—';
  const fixed = (v) => (Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  switch (unit) {
    case 'percent': return fixed(value) + '%';
    case 'seconds': return scale < 1 ? fixed(value * 1000) + ' ms' : fixed(value) + ' s';
    case 'bytes': {
      const units = ['B', 'KB', 'MB', 'GB', 'TB'];
      let i = 0;
      while (scale >= 1024 && i < units.length - 1) { value /= 1024; scale /= 1024; i++; }
      return fixed(value) + ' ' + units[i];
    }
    case 'emails_per_hour': return fixed(value) + '/h';
    case 'emails': return fixed(value);
    default: return fixed(value);
  }
}

/** The axis caption of a unit. */
function unitCaption(unit, max) {
  return ({ percent: 'percent', seconds: max < 1 ? 'milliseconds' : 'seconds', bytes: 'bytes', emails_per_hour: 'emails per hour', emails: 'emails' })[unit] || unit || '';
}

/** About `count` round tick values covering [min, max]. */
function ticks(min, max, count = 4) {
  const raw = (max - min) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

/** 'HH:MM:SS' within ten minutes, 'HH:MM' within a day, 'MM-DD HH:MM' up to three days, else 'MM-DD'. */
function timeLabel(seconds, span) {
  const d = new Date(seconds * 1000);
  const p = (n) => String(n).padStart(2, '0');
  const hm = p(d.getHours()) + ':' + p(d.getMinutes());
  if (span <= 600) return hm + ':' + p(d.getSeconds());
  if (span <= 86400) return hm;
  return p(d.getMonth() + 1) + '-' + p(d.getDate()) + (span <= 3 * 86400 ? ' ' + hm : '');
}

/**
 * A line chart of `series` ([{name, points: [[unixSeconds, value], …]}]) between `from` and `to`
 * (Unix seconds; default: the data's extent), values in `unit`. Returns a <figure>.
 * `width` should be the pixel width it will get (so that text keeps its size); it scales anyway.
 */
export function lineChart(series, { unit = '', from, to, title = '', empty = 'No data in this range yet.', width = 560, height = 200 } = {}) {
  const W = Math.max(320, Math.round(width)), H = height;
  const figure = document.createElement('figure');
  figure.className = 'chart';
  if (title) {
    const caption = document.createElement('figcaption');
    caption.textContent = title;
    figure.append(caption);
  }
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  if (!all.length) {
    const p = document.createElement('p');
    p.className = 'chart-empty';
    p.textContent = empty;
    figure.append(p);
    return figure;
  }
  const x0 = from ?? Math.min(...all.map((p) => p[0]));
  let x1 = to ?? Math.max(...all.map((p) => p[0]));
  if (x1 <= x0) x1 = x0 + 60;
  const values = all.map((p) => p[1]);
  let y0 = Math.min(0, ...values), y1 = Math.max(...values);
  if (unit === 'percent') y1 = Math.max(y1, 10);
  if (y1 <= y0) y1 = y0 + 1;
  const yTicks = ticks(y0, y1);
  y0 = Math.min(y0, yTicks[0]);
  y1 = Math.max(y1, yTicks[yTicks.length - 1]);
  const scaleMax = Math.max(Math.abs(y0), Math.abs(y1));
  const px = (t) => M.left + ((t - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (v) => H - M.bottom - ((v - y0) / (y1 - y0)) * (H - M.top - M.bottom);

  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title || 'chart', class: 'chart-svg' });
  const axes = svg('g', { class: 'axes' });
  for (const v of yTicks) {
    axes.append(svg('line', { x1: M.left, x2: W - M.right, y1: py(v), y2: py(v), class: 'grid' }));
    axes.append(svg('text', { x: M.left - 6, y: py(v) + 4, 'text-anchor': 'end' }, formatValue(v, unit, scaleMax)));
  }
  const span = x1 - x0;
  for (let i = 0; i <= 4; i++) {
    const t = x0 + (span * i) / 4;
    axes.append(svg('line', { x1: px(t), x2: px(t), y1: H - M.bottom, y2: H - M.bottom + 4, class: 'tick' }));
    axes.append(svg('text', { x: px(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }, timeLabel(t, span)));
  }
  axes.append(svg('line', { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: 'axis' }));
  axes.append(svg('line', { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: 'axis' }));
  axes.append(svg('text', { x: 4, y: 10, class: 'unit' }, unitCaption(unit, scaleMax)));
  root.append(axes);

  series.forEach((s, index) => {
    const points = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]);
    const g = svg('g', { class: 'series s' + (index % 6), 'data-series': s.name });
    if (points.length > 1) g.append(svg('polyline', { points: points.map((p) => px(p[0]).toFixed(1) + ',' + py(p[1]).toFixed(1)).join(' ') }));
    for (const [t, v] of points) {
      const dot = svg('circle', { cx: px(t).toFixed(1), cy: py(v).toFixed(1), r: points.length > 120 ? 1.5 : 2.5, class: 'pt' });
      dot.append(svg('title', {}, `${s.name}: ${formatValue(v, unit)} at ${new Date(t * 1000).toLocaleString()}`));
      g.append(dot);
    }
    root.append(g);
  });
  figure.append(root);

  if (series.length > 1) {
    const legend = document.createElement('div');
    legend.className = 'legend';
    series.forEach((s, index) => {
      const item = document.createElement('span');
      item.className = 'key s' + (index % 6);
      item.textContent = s.name;
      legend.append(item);
    });
    figure.append(legend);
  }
  return figure;
}
