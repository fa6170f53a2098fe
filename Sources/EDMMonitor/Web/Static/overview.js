// Overview: component health, host and database charts over a chosen range, queue status,
// sending throughput and active alerts by severity.

import { api, query } from './api.js';
import { lineChart, formatValue } from './charts.js';
import { h, fill, card, badge, stateKind, num, duration, time, tags, table } from './ui.js';

/** Range choices: seconds back from now and the bucket step the API should use. */
const RANGES = { '1h': [3600, 60], '6h': [6 * 3600, 300], '24h': [86400, 900], '7d': [7 * 86400, 3600] };
const RANGE_KEY = 'edm-monitor-range';

/** The charts: one or more metrics each, with the unit of their values. */
const CHARTS = [
  { id: 'cpu', title: 'CPU usage', unit: 'percent', metrics: [['edm_system_cpu_usage_percent', 'cpu']] },
  { id: 'memory', title: 'Memory usage', unit: 'percent', metrics: [['edm_system_memory_usage_percent', 'memory']] },
  { id: 'load', title: 'Load average', unit: '', metrics: [['edm_system_load1', '1 min'], ['edm_system_load5', '5 min'], ['edm_system_load15', '15 min']] },
  { id: 'db-latency', title: 'Database query latency', unit: 'seconds', metrics: [['edm_db_query_latency_seconds', 'latency']] },
  { id: 'throughput', title: 'Sending throughput', unit: 'emails_per_hour', metrics: [['edm_queue_throughput_per_hour', 'all services']] },
];

/** Runs `tasks` (functions returning promises) together; returns their values, rethrowing the first failure after all settle. */
async function settle(sections) {
  const results = await Promise.allSettled(sections.map((s) => s()));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => r.value);
}

/** The series of `name` in the chosen range, each labelled by its tags (or `label`). */
export async function metricSeries(name, label, range) {
  const [back, step] = RANGES[range];
  const to = Math.floor(Date.now() / 1000);
  const answer = await api('/api/monitoring/performance-metrics' + query({ name, from: to - back, to, step }));
  return answer.series.map((s) => ({ name: Object.keys(s.tags).length ? label + ' (' + tags(s.tags) + ')' : label, points: s.points }));
}

export function overviewPage(root) {
  let range = sessionStorage.getItem(RANGE_KEY) || '1h';
  if (!RANGES[range]) range = '1h';
  const health = h('div', { id: 'health' });
  const alerts = h('div', { id: 'alert-counts' });
  const queue = h('div', { id: 'queue' });
  const charts = Object.fromEntries(CHARTS.map((c) => [c.id, h('div', { id: 'chart-' + c.id, class: 'chart-slot' })]));
  const picker = h('div', { class: 'picker', role: 'group', 'aria-label': 'time range' },
    Object.keys(RANGES).map((key) => h('button', {
      type: 'button', 'data-range': key, class: key === range ? 'on' : '',
      onclick: (event) => {
        range = key;
        sessionStorage.setItem(RANGE_KEY, key);
        for (const b of picker.querySelectorAll('button')) b.classList.toggle('on', b === event.currentTarget);
        drawCharts().catch(() => {});
      },
    }, key)));

  fill(root,
    h('h1', {}, 'Overview'),
    h('div', { class: 'grid two' }, card('Health', health), card('Active alerts', alerts)),
    card('Queue', queue),
    h('div', { class: 'range' }, h('span', { class: 'muted' }, 'Range: '), picker),
    h('div', { class: 'grid charts' }, CHARTS.map((c) => charts[c.id])));

  async function drawCharts() {
    const [back] = RANGES[range];
    const to = Math.floor(Date.now() / 1000);
    const drawn = await Promise.all(CHARTS.map(async (c) => {
      const series = (await Promise.all(c.metrics.map(([name, label]) => metricSeries(name, label, range)))).flat();
      return [c, series];
    }));
    for (const [c, series] of drawn) {
      fill(charts[c.id], lineChart(series, { width: charts[c.id].clientWidth - 26, unit: c.unit, from: to - back, to, title: c.title + ' — last ' + range, empty: 'No ' + c.title.toLowerCase() + ' data in the last ' + range + ' yet.' }));
    }
  }

  async function drawHealth() {
    const [report, system] = await Promise.all([
      api('/api/monitoring/health', { accept: [503] }),
      api('/api/monitoring/system-health', { accept: [503] }),
    ]);
    const rows = Object.entries(report.checks).sort().map(([name, check]) => [
      name, badge(check.status, stateKind(check.status)),
      check.latency_ms !== undefined && check.latency_ms !== null ? num(check.latency_ms, 1) + ' ms' : '', check.error || '',
    ]);
    if (system && system.collected_at) {
      const failures = system.failures || {};
      for (const collector of ['host', 'process', 'database']) {
        const failed = failures[collector];
        rows.push(['collector: ' + collector, badge(failed ? 'failing' : 'healthy', failed ? 'bad' : 'ok'), num(system[collector].length) + ' figures', failed || '']);
      }
      for (const [collector, error] of Object.entries(failures)) {
        if (!['host', 'process', 'database'].includes(collector)) rows.push(['collector: ' + collector, badge('failing', 'bad'), '', error]);
      }
    } else {
      rows.push(['collectors', badge('waiting', 'warn'), '', 'no collection has run yet']);
    }
    // The figure of `name`; of memory, the container's (cgroup) one when there is one.
    const figure = (name) => {
      const all = (system && system.host || []).concat(system && system.database || []).filter((p) => p.name === name);
      return all.find((p) => !(p.tags && p.tags.scope === 'host')) || all[0];
    };
    const figures = [['CPU', 'edm_system_cpu_usage_percent'], ['memory', 'edm_system_memory_usage_percent'], ['load 1 min', 'edm_system_load1'], ['DB latency', 'edm_db_query_latency_seconds'], ['disk used', 'edm_system_disk_usage_percent']]
      .map(([label, name]) => [label, figure(name)]).filter(([, p]) => p)
      .map(([label, p]) => h('span', { class: 'figure' }, h('b', {}, formatValue(p.value, p.unit)), ' ', label));
    fill(health,
      h('p', {}, 'Overall ', badge(report.status, stateKind(report.status), 'version ' + report.version), ' · version ', report.version, ' · up ', duration(report.uptime_seconds)),
      table(['component', 'state', 'detail', 'problem'], rows),
      figures.length ? h('p', { class: 'figures' }, figures, h('span', { class: 'muted' }, ' at ', time(system.collected_at))) : null);
  }

  async function drawAlerts() {
    const [firing, acknowledged] = await Promise.all([
      api('/api/monitoring/alerts' + query({ status: 'active', per_page: 500 })),
      api('/api/monitoring/alerts' + query({ status: 'acknowledged', per_page: 500 })),
    ]);
    const count = (list, severity) => list.data.filter((a) => a.severity === severity).length;
    fill(alerts,
      h('div', { class: 'counts' }, ['critical', 'warning', 'info'].map((severity) =>
        h('a', { href: '#/alerts', class: 'count ' + stateKind(severity), 'data-severity': severity },
          h('b', {}, String(count(firing, severity))), h('span', {}, severity)))),
      h('p', { class: 'muted' }, num(firing.pagination.total), ' firing, ', num(acknowledged.pagination.total), ' acknowledged. ', h('a', { href: '#/alerts' }, 'All alerts →')));
  }

  async function drawQueue() {
    const q = await api('/api/monitoring/queue-status');
    const sub = q.subtasks;
    fill(queue,
      h('div', { class: 'stats' },
        [['pending', sub.pending], ['sending', sub.sending], ['sent', sub.sent], ['failed', sub.failed], ['active tasks', q.active_tasks], ['stuck tasks', q.stuck_tasks],
          ['sent, 5 min', q.sent_last_5_minutes], ['sent, 60 min', q.sent_last_60_minutes], ['per hour (5 min)', q.throughput_per_hour_5m]]
          .map(([label, value]) => h('div', { class: 'stat' + (label === 'stuck tasks' && value > 0 ? ' bad' : '') }, h('b', {}, num(value)), h('span', {}, label)))),
      h('p', {}, 'Services: ', Object.entries(q.services_by_state).map(([state, n]) => [badge(state + ' ' + n, n ? stateKind(state) : 'muted'), ' ']), h('a', { href: '#/services' }, 'details →')));
  }

  return { refresh: () => settle([drawHealth, drawAlerts, drawQueue, drawCharts]) };
}
