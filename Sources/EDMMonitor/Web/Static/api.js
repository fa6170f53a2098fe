// The JSON API client of the dashboard: same origin, optional bearer token from sessionStorage.

const TOKEN_KEY = 'edm-monitor-token';

/** The token saved for this browser tab ('' when none). */
export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** Saves (or with '' removes) the token for this browser tab. */
export function saveToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A failed request: `status` is the HTTP status (0 when the server could not be reached). */
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** A sentence for the banner, with what to do about it. */
  get advice() {
    if (this.status === 401) return 'The server wants an API token: paste one into the “API token” field above and press Save. (' + this.message + ')';
    if (this.status === 403) return 'Your token is not allowed to do this; ask an admin for a token with a higher role. (' + this.message + ')';
    if (this.status === 0) return 'Cannot reach the EDM Monitor server; is `edm-monitor serve` running? (' + this.message + ')';
    return this.message + ' (' + this.status + ' ' + this.code + ')';
  }
}

/**
 * Calls the API and returns the decoded JSON body (null when empty).
 * `accept` lists non-2xx statuses whose body is still wanted (health answers 503 with a report).
 * Throws APIError with the server's `{"error":{code,message}}` when the request fails.
 */
export async function api(path, { method = 'GET', body, accept = [] } = {}) {
  const headers = { Accept: 'application/json' };
  const token = savedToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (error) {
    throw new APIError(0, 'unreachable', String(error.message || error));
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok && !accept.includes(response.status)) {
    const error = data && data.error;
    throw new APIError(response.status, (error && error.code) || 'http_' + response.status, (error && error.message) || response.statusText || 'request failed');
  }
  return data;
}

/** A query string from an object, leaving out empty values: {a: 1, b: ''} → '?a=1'. */
export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return pairs.length ? '?' + pairs.map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&') : '';
}
