// Services: each email service's state, quota, pacing, failures and reservation holder.

import { api, query } from './api.js';
import { h, fill, card, badge, stateKind, progressBar, num, time, table, button } from './ui.js';

// The service's sending limits in one cell: connections, rate, messages per connection.
function limits(s) {
  const parts = [`${num(s.max_connections)} conn.`];
  parts.push(s.rate_limit_per_second ? `${num(s.rate_limit_per_second, 2)}/s` : 'no rate limit');
  if (s.max_messages_per_connection) parts.push(`${num(s.max_messages_per_connection)} msg/conn.`);
  return h('span', { title: 'max_connections · rate_limit_per_second · max_messages_per_connection (all instances together)' }, parts.join(' · '));
}

export function servicesPage(root, params, { reportError }) {
  const list = h('div', { id: 'service-list' });
  fill(root, h('h1', {}, 'Email services'), card('Services', list),
    h('p', { class: 'muted' }, 'available: can send now · paced: waiting for its sending interval · quota exhausted: until the next reset · frozen: after consecutive failures · disabled: switched off.'));

  async function act(id, action) {
    try { await api(`/api/email-services/${id}/${action}`, { method: 'POST' }); await refresh(); } catch (error) { reportError(error); }
  }

  async function refresh() {
    const [services, queue] = await Promise.all([api('/api/email-services' + query({ per_page: 500 })), api('/api/monitoring/queue-status')]);
    const holders = new Map(queue.reservations.map((r) => [r.service_id.toLowerCase(), r]));
    const rows = services.data.map((s) => {
      const reservation = holders.get(s.id.toLowerCase());
      const used = s.daily_quota ? (s.used_quota / s.daily_quota) * 100 : 100;
      const actions = [
        s.is_enabled ? button('Disable', () => act(s.id, 'disable')) : button('Enable', () => act(s.id, 'enable')),
        s.is_frozen ? button('Unfreeze', () => act(s.id, 'unfreeze')) : null,
      ];
      const cells = [
        h('b', {}, s.name),
        s.provider,
        badge(s.state.replace('_', ' '), stateKind(s.state), s.frozen_until ? 'frozen until ' + time(s.frozen_until) : undefined),
        progressBar(used, `${num(s.used_quota)} / ${num(s.daily_quota)}`),
        time(s.next_quota_reset),
        s.sending_interval_seconds ? num(s.sending_interval_seconds, 2) + ' s' : 'none',
        limits(s),
        s.consecutive_failures ? h('span', { class: 'bad-text' }, num(s.consecutive_failures)) : '0',
        reservation ? h('span', { title: 'until ' + time(reservation.expires_at) }, reservation.reserved_by) : h('span', { class: 'muted' }, 'free'),
        actions,
      ];
      cells.attrs = { 'data-service-id': s.id };
      return cells;
    });
    fill(list, table(['service', 'provider', 'state', 'quota used', 'next reset', 'interval', 'limits', 'failures in a row', 'reserved by', ''], rows,
      'No email services yet. Add one with POST /api/email-services or `edm-monitor service add`.'));
  }
  return { refresh };
}
