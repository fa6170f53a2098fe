// Alerts: firing and recent alerts (acknowledge, resolve), rules (enable/disable, test now) and
// silences (create, expire).

import { api, query } from './api.js';
import { h, fill, card, badge, stateKind, num, time, tags, table, button } from './ui.js';

const STATUSES = ['', 'active', 'acknowledged', 'suppressed', 'resolved'];

/** 'avg(metric) > 90 over 5 min for 2 min' from a rule. */
function condition(rule) {
  const matchers = rule.tag_matchers.length ? '{' + rule.tag_matchers.map((m) => `${m.key}${m.op}"${m.value}"`).join(', ') + '}' : '';
  const window = ` over ${rule.time_window_minutes} min` + (rule.for_minutes ? ` for ${rule.for_minutes} min` : '');
  if (rule.condition_type === 'absence') return `no ${rule.metric_name}${matchers}` + window;
  const fn = rule.condition_type === 'rate' ? 'rate' : rule.aggregation;
  return `${fn}(${rule.metric_name}${matchers}) ${rule.comparison_operator} ${rule.threshold_value}` + window;
}

export function alertsPage(root, params, { refreshNow, reportError }) {
  let status = sessionStorage.getItem('edm-monitor-alert-status') || '';
  const testResults = new Map();   // rule id → answer of POST …/test, kept across refreshes
  const alertList = h('div', { id: 'alert-list' });
  const ruleList = h('div', { id: 'rule-list' });
  const silenceList = h('div', { id: 'silence-list' });
  const select = h('select', { id: 'alert-status', 'aria-label': 'status' }, STATUSES.map((s) => h('option', { value: s, selected: s === status }, s || 'all (newest first)')));
  select.addEventListener('change', () => { status = select.value; sessionStorage.setItem('edm-monitor-alert-status', status); refreshNow(); });

  const form = {
    name: h('input', { name: 'name', value: 'alertname', required: true, size: 12, 'aria-label': 'label name' }),
    op: h('select', { name: 'op', 'aria-label': 'operator' }, h('option', { value: '=' }, '='), h('option', { value: '!=' }, '!=')),
    value: h('input', { name: 'value', required: true, size: 20, placeholder: 'value', 'aria-label': 'label value' }),
    hours: h('input', { name: 'hours', type: 'number', min: '0.1', step: '0.1', value: '2', size: 4, 'aria-label': 'hours' }),
    by: h('input', { name: 'by', value: 'dashboard', required: true, size: 12, 'aria-label': 'created by' }),
    comment: h('input', { name: 'comment', size: 24, placeholder: 'why', 'aria-label': 'comment' }),
  };
  const silenceForm = h('form', { id: 'silence-form', class: 'inline-form' },
    'Silence alerts whose ', form.name, ' ', form.op, ' ', form.value, ' for ', form.hours, ' h, by ', form.by, ' ', form.comment, ' ',
    h('button', { type: 'submit' }, 'Create silence'));
  silenceForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const hours = Number(form.hours.value);
    try {
      await api('/api/monitoring/silences', { method: 'POST', body: {
        matchers: [{ name: form.name.value.trim(), op: form.op.value, value: form.value.value }],
        ends_at: new Date(Date.now() + hours * 3600 * 1000).toISOString(), created_by: form.by.value.trim(), comment: form.comment.value,
      } });
      form.value.value = '';
      form.comment.value = '';
      refreshNow();
    } catch (error) { reportError(error); }
  });

  fill(root, h('h1', {}, 'Alerts'),
    card('Alerts', h('p', {}, 'Show ', select), alertList),
    card('Rules', ruleList),
    card('Silences', silenceForm, silenceList));

  async function act(path, body) {
    try { await api(path, { method: 'POST', body }); await refresh(); } catch (error) { reportError(error); }
  }

  async function testRule(rule) {
    try {
      testResults.set(rule.id, await api(`/api/monitoring/alert-rules/${rule.id}/test`, { method: 'POST' }));
      await refresh();
    } catch (error) { reportError(error); }
  }

  async function setActive(rule, active) {
    try { await api(`/api/monitoring/alert-rules/${rule.id}`, { method: 'PATCH', body: { is_active: active } }); await refresh(); } catch (error) { reportError(error); }
  }

  function drawAlerts(page) {
    const rows = page.data.map((a) => {
      const actions = [];
      if (a.status === 'active') actions.push(button('Acknowledge', () => act(`/api/monitoring/alerts/${a.id}/acknowledge`, { by: form.by.value.trim() || 'dashboard' }), { class: 'ack' }));
      if (['active', 'acknowledged', 'suppressed'].includes(a.status)) actions.push(button('Resolve', () => act(`/api/monitoring/alerts/${a.id}/resolve`), { class: 'resolve' }));
      if (a.status !== 'resolved' && a.rule_name) actions.push(button('Silence…', () => { form.name.value = 'alertname'; form.value.value = a.rule_name; form.value.focus(); }));
      const cells = [
        badge(a.status === 'active' ? 'firing' : a.status, stateKind(a.status)),
        badge(a.severity || '?', stateKind(a.severity)),
        a.rule_name || a.rule_id,
        a.message,
        tags(a.tags),
        num(a.last_value ?? a.trigger_value, 3),
        [time(a.triggered_at), a.resolved_at ? h('div', { class: 'muted' }, 'resolved ' + time(a.resolved_at)) : null,
          a.acknowledged_by ? h('div', { class: 'muted' }, 'ack by ' + a.acknowledged_by) : null],
        actions,
      ];
      cells.attrs = { 'data-alert-id': a.id, 'data-status': a.status };
      return cells;
    });
    fill(alertList, table(['status', 'severity', 'rule', 'message', 'series', 'value', 'since', ''], rows, 'No alerts. All quiet.'));
  }

  function drawRules(page) {
    const rows = page.data.map((r) => {
      const cells = [
        h('b', {}, r.name), h('code', {}, condition(r)), badge(r.severity, stateKind(r.severity)),
        r.is_active ? badge('enabled', 'ok') : badge('disabled', 'muted'),
        [r.is_active ? button('Disable', () => setActive(r, false)) : button('Enable', () => setActive(r, true)), ' ',
          button('Test now', () => testRule(r), { class: 'test' })],
      ];
      cells.attrs = { 'data-rule-id': r.id };
      return cells;
    });
    const results = page.data.filter((r) => testResults.has(r.id)).map((r) => {
      const result = testResults.get(r.id);
      return h('div', { class: 'test-result', 'data-rule-id': r.id },
        h('p', {}, h('b', {}, 'Test of ', r.name), ' at ', time(result.evaluated_at), ' (nothing was changed)'),
        table(['series', 'value', 'condition holds', 'state now', 'would'], result.series.map((s) => [
          tags(s.tags) || '(all)', num(s.value, 3), s.condition_holds ? badge('yes', 'bad') : badge('no', 'ok'), s.state_now, s.would,
        ]), 'No data for this rule in its window.'));
    });
    fill(ruleList, table(['rule', 'condition', 'severity', 'state', ''], rows, 'No alert rules.'), results);
  }

  function drawSilences(page) {
    const rows = page.data.map((s) => {
      const cells = [
        badge(s.state, stateKind(s.state)),
        s.matchers.map((m) => `${m.name}${m.op}"${m.value}"`).join(', '),
        time(s.starts_at), time(s.ends_at), s.created_by, s.comment,
        s.state !== 'expired' ? button('Expire', () => act(`/api/monitoring/silences/${s.id}/expire`)) : null,
      ];
      cells.attrs = { 'data-silence-id': s.id };
      return cells;
    });
    fill(silenceList, table(['state', 'matchers', 'starts', 'ends', 'by', 'comment', ''], rows, 'No silences.'));
  }

  async function refresh() {
    const [alerts, rules, silences] = await Promise.all([
      api('/api/monitoring/alerts' + query({ status, per_page: 50 })),
      api('/api/monitoring/alert-rules' + query({ per_page: 500 })),
      api('/api/monitoring/silences' + query({ per_page: 50 })),
    ]);
    drawAlerts(alerts);
    drawRules(rules);
    drawSilences(silences);
  }
  return { refresh };
}
