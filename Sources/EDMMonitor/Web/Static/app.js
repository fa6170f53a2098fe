// The dashboard shell: hash routes (#/overview, #/tasks, #/tasks/ID, #/services, #/alerts), the
// token field, the error banner, and polling the current page every few seconds.

import { APIError, savedToken, saveToken } from './api.js';
import { overviewPage } from './overview.js';
import { tasksPage, taskPage } from './tasks.js';
import { servicesPage } from './services.js';
import { alertsPage } from './alerts.js';

const REFRESH_MS = 5000;

/** [pattern, page] — a page is `mount(root, params) → {refresh}`. */
const ROUTES = [
  [/^#\/overview$/, overviewPage, 'overview'],
  [/^#\/tasks$/, tasksPage, 'tasks'],
  [/^#\/tasks\/([0-9a-fA-F-]{36})$/, taskPage, 'tasks'],
  [/^#\/services$/, servicesPage, 'services'],
  [/^#\/alerts$/, alertsPage, 'alerts'],
];

let current = null;      // {refresh, generation}
let generation = 0;      // bumps on every navigation; late answers of old pages are dropped
let timer = null;

function banner(message) {
  const el = document.getElementById('banner');
  el.textContent = message || '';
  el.hidden = !message;
}

/** Shows the failure of `error` in the banner (401/403 get the token advice). */
export function reportError(error) {
  banner(error instanceof APIError ? error.advice : String(error && error.message || error));
}

async function refresh() {
  if (!current) return;
  const mine = current;
  try {
    await mine.refresh();
    if (mine !== current) return;
    banner('');
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    document.body.dataset.loaded = String(mine.generation);
  } catch (error) {
    if (mine === current) reportError(error);
  }
}

function navigate() {
  const hash = location.hash || '#/overview';
  const match = ROUTES.map(([pattern, page, nav]) => [hash.match(pattern), page, nav]).find(([m]) => m);
  if (!match) { location.hash = '#/overview'; return; }
  const [m, page, nav] = match;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.dataset.page === nav);
  const root = document.getElementById('page');
  root.replaceChildren();
  generation += 1;
  delete document.body.dataset.loaded;
  current = { ...page(root, m.slice(1), { refreshNow: () => refresh(), reportError }), generation };
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
  refresh();
}

function setUpToken() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  input.value = savedToken();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    saveToken(input.value.trim());
    refresh();
  });
  document.getElementById('token-clear').addEventListener('click', () => {
    input.value = '';
    saveToken('');
    refresh();
  });
}

setUpToken();
window.addEventListener('hashchange', navigate);
navigate();
