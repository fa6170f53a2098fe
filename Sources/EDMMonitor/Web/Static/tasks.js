// Tasks: the list with progress, figures and stuck badges, and one task's page with its timeline.

import { api, query } from './api.js';
import { lineChart } from './charts.js';
import { h, fill, card, badge, stateKind, progressBar, num, duration, time, table, button } from './ui.js';

const STATUSES = ['', 'queued', 'sending', 'paused', 'completed', 'failed', 'cancelled'];
/** Per-task monitoring details are fetched for this many tasks of the list (one request each). */
const DETAIL_LIMIT = 25;

/** A stuck badge with its reason, or null. */
function stuckBadge(detail) {
  if (!detail || !detail.stuck.is_stuck) return null;
  const reset = detail.stuck.next_reset ? ', quota resets ' + time(detail.stuck.next_reset) : '';
  return badge('stuck: ' + detail.stuck.reason.replaceAll('_', ' '), 'bad', 'no progress for ' + duration(detail.stuck.idle_seconds) + reset);
}

/** 'in 3 min 20 s', 'done', or the reason it is unknown. */
function etaText(detail) {
  if (!detail) return '—';
  if (detail.eta.seconds === 0) return 'done';
  if (detail.eta.seconds !== null && detail.eta.seconds !== undefined) return 'in ' + duration(detail.eta.seconds);
  return h('span', { class: 'muted', title: detail.eta.reason || '' }, 'unknown');
}

function progressOf(task) {
  return progressBar(task.progress_percent, `${num(task.sent + task.failed)} / ${num(task.total)} (${num(task.progress_percent, 1)}%)`);
}

export function tasksPage(root, params, { refreshNow }) {
  let status = sessionStorage.getItem('edm-monitor-task-status') || '';
  const list = h('div', { id: 'task-list' });
  const select = h('select', { id: 'task-status', 'aria-label': 'status' }, STATUSES.map((s) => h('option', { value: s, selected: s === status }, s || 'all statuses')));
  fill(root, h('h1', {}, 'Tasks'), h('p', {}, 'Show ', select), card('Recent tasks', list));
  select.addEventListener('change', () => {
    status = select.value;
    sessionStorage.setItem('edm-monitor-task-status', status);
    refreshNow();
  });

  async function refresh() {
    const page = await api('/api/tasks' + query({ status, per_page: 100 }));
    const details = await Promise.all(page.data.map((task, i) => (i < DETAIL_LIMIT
      ? api('/api/monitoring/task-metrics/' + task.id).catch(() => null) : Promise.resolve(null))));
    const rows = page.data.map((task, i) => {
      const d = details[i];
      const cells = [
        h('a', { href: '#/tasks/' + task.id }, task.name),
        [badge(task.status, stateKind(task.status), task.status_reason || undefined), ' ', stuckBadge(d)],
        progressOf(task),
        `${num(task.sent)} / ${num(task.failed)} / ${num(task.total)}`,
        duration(d && d.wait_time_seconds),
        d ? num(d.throughput.current_per_hour) + '/h' : '—',
        etaText(d),
        time(task.created_at),
      ];
      cells.attrs = { 'data-task-id': task.id, class: d && d.stuck.is_stuck ? 'stuck' : '' };
      return cells;
    });
    fill(list,
      table(['task', 'status', 'progress', 'sent / failed / total', 'wait time', 'throughput', 'ETA', 'created'], rows, 'No tasks yet. Create one with POST /api/tasks or `edm-monitor task create`.'),
      page.pagination.total > page.data.length ? h('p', { class: 'muted' }, `Showing the newest ${page.data.length} of ${num(page.pagination.total)}.`) : null);
  }
  return { refresh };
}

export function taskPage(root, [id], { reportError }) {
  const head = h('div', { id: 'task-head' });
  const chart = h('div', { id: 'chart-timeline', class: 'chart-slot wide' });
  const events = h('div', { id: 'task-events' });
  fill(root, h('p', {}, h('a', { href: '#/tasks' }, '← all tasks')), head, card('Timeline', chart), card('Events', events));

  async function control(action) {
    try { await api(`/api/tasks/${id}/${action}`, { method: 'POST' }); await refresh(); } catch (error) { reportError(error); }
  }

  async function refresh() {
    const [task, d] = await Promise.all([api('/api/tasks/' + id), api('/api/monitoring/task-metrics/' + id)]);
    const actions = [];
    if (task.status === 'queued' || task.status === 'sending') actions.push(button('Pause', () => control('pause')));
    if (task.status === 'paused') actions.push(button('Resume', () => control('resume')));
    if (!['completed', 'failed', 'cancelled'].includes(task.status)) actions.push(button('Cancel', () => control('cancel'), { class: 'danger' }));
    fill(head,
      h('h1', {}, task.name, ' ', badge(task.status, stateKind(task.status), task.status_reason || undefined), ' ', stuckBadge(d)),
      h('div', { class: 'task-progress' }, progressOf(task)),
      h('div', { class: 'stats' }, [
        ['sent', num(task.sent)], ['failed', num(task.failed)], ['pending', num(d.progress.pending)], ['total', num(task.total)],
        ['wait time', duration(d.wait_time_seconds)], ['now', num(d.throughput.current_per_hour) + '/h'],
        ['average', d.throughput.average_per_hour === null ? '—' : num(d.throughput.average_per_hour) + '/h'], ['ETA', etaText(d)],
      ].map(([label, value]) => h('div', { class: 'stat' }, h('b', {}, value), h('span', {}, label)))),
      d.stuck.is_stuck ? h('p', { class: 'bad-text' }, `Stuck for ${duration(d.stuck.idle_seconds)}: ${d.stuck.reason.replaceAll('_', ' ')}`, d.stuck.next_reset ? ` (next quota reset ${time(d.stuck.next_reset)})` : '') : null,
      h('p', { class: 'muted' }, 'Subject: ', task.subject, ' · created ', time(task.created_at), ' · started ', time(task.started_at), ' · finished ', time(task.completed_at)),
      actions.length ? h('p', { class: 'actions' }, actions) : null);
    const points = d.timeline.map((m) => [Date.parse(m.timestamp) / 1000, m.subtasks_sent]);
    const from = Date.parse(task.created_at) / 1000;
    const now = Date.now() / 1000;
    const to = task.completed_at ? Math.max(Date.parse(task.completed_at) / 1000, from + 60) : Math.max(now, from + 60);
    fill(chart, lineChart([{ name: 'sent', points }, { name: 'total', points: [[from, task.total], [to, task.total]] }],
      { width: chart.clientWidth - 26, height: 240, unit: 'emails', from, to, title: 'Emails sent over time', empty: 'No events recorded for this task yet.' }));
    fill(events, table(['time', 'event', 'sent / total', 'wait time', 'throughput'], d.timeline.slice().reverse().map((m) => [
      time(m.timestamp), m.metric_type.replaceAll('_', ' '), `${num(m.subtasks_sent)} / ${num(m.total_subtasks)}`,
      duration(m.wait_time_seconds), m.throughput_per_hour === null ? '—' : num(m.throughput_per_hour) + '/h',
    ]), 'No events recorded yet.'));
  }
  return { refresh };
}
