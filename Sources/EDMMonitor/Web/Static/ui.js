// Small DOM and formatting helpers shared by the pages. Text is always set as text, never as
// HTML, so names and messages from the API cannot inject markup.

/** Creates an element: h('a', {href: '#/x', class: 'y'}, 'text', child, …). `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A titled section with a body element. */
export function card(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

/** A table from header names and rows of cells; `empty` is shown when there are no rows. */
export function table(headers, rows, empty = 'Nothing to show.') {
  if (!rows.length) return h('p', { class: 'muted empty' }, empty);
  return h('table', {}, h('thead', {}, h('tr', {}, headers.map((name) => h('th', {}, name)))),
    h('tbody', {}, rows.map((cells) => h('tr', cells.attrs || {}, cells.map((cell) => h('td', {}, cell))))));
}

/** A state badge: `kind` picks its colour (ok, warn, bad, info, muted). */
export function badge(text, kind = 'muted', title) {
  return h('span', { class: 'badge ' + kind, title }, text);
}

/** The badge colour of a health, task, service or alert state. */
export function stateKind(state) {
  return ({
    healthy: 'ok', available: 'ok', completed: 'ok', sending: 'info', queued: 'info', resolved: 'ok', active: 'bad', ok: 'ok',
    degraded: 'warn', paced: 'info', paused: 'warn', quota_exhausted: 'warn', acknowledged: 'warn', suppressed: 'muted', pending: 'warn',
    unhealthy: 'bad', frozen: 'bad', failed: 'bad', disabled: 'muted', cancelled: 'muted', expired: 'muted',
    critical: 'bad', warning: 'warn', info: 'info',
  })[state] || 'muted';
}

/** A progress bar for `percent` (0…100) with a text label. */
export function progressBar(percent, label) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  const fill = h('div', { class: 'bar-fill' });
  fill.style.width = value + '%';
  return h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': value, title: label || value + '%' },
    fill, h('span', { class: 'bar-label' }, label || value.toFixed(1) + '%'));
}

/** 1234.5 → '1,234.5'; null → '—'. */
export function num(value, digits = 0) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return '—';
  return Number(value).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** Seconds as '45 s', '3 min 20 s', '2 h 5 min', '3 d 4 h'; null → '—'. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return '—';
  let s = Math.max(0, Math.round(Number(seconds)));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}

/** An ISO time as local 'YYYY-MM-DD HH:MM:SS'; null → '—'. */
export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** '{a="1", b="2"}' from a tag object ('' when empty). */
export function tags(object) {
  const entries = Object.entries(object || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : '';
}

/** A button that runs `action` (async), disabled while it runs. */
export function button(text, action, attrs = {}) {
  const el = h('button', { type: 'button', ...attrs }, text);
  el.addEventListener('click', async () => {
    el.disabled = true;
    try { await action(); } finally { el.disabled = false; }
  });
  return el;
}
