// trove.js: a small client for Trove's HTTP API (docs/queries.md), with no
// dependencies. An ES module for browsers and Node 18 or later (it uses the
// global fetch, or the one given). Served by every ingestor with an `http`
// address at /console/trove.js; documented in docs/console.md.
//
//   import { TroveClient } from './trove.js';
//   const trove = new TroveClient({ baseUrl: 'http://127.0.0.1:7650', key });
//   await trove.submit([{ source: 'web', id: 'e-1', user: 'u42', type: 'checkin', ts: new Date().toISOString() }]);
//   const { balance } = await trove.balance('u42');
//   const stop = trove.awards({ onAward: (coin, id) => console.log(coin, id) });
//
// Every method returns a promise of the answer's JSON, or rejects with a
// TroveError (status, code, detail, retryAfter) for an answer that is not
// 2xx. A failure to connect rejects with fetch's own error.

/** An answer that is not 2xx: {"error": code, "detail": sentence}. */
export class TroveError extends Error {
  constructor(status, code, detail, retryAfter) {
    super(`HTTP ${status} ${code}${detail ? `: ${detail}` : ''}`);
    this.name = 'TroveError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter; // seconds, or undefined
  }
}

// One path segment, percent-encoded: a user "a/b" is one segment "a%2Fb".
const seg = (s) => encodeURIComponent(String(s));

export class TroveClient {
  /**
   * @param {object} options
   * @param {string} [options.baseUrl] the ingestor's HTTP address ('' in a page it serves)
   * @param {string} [options.key] a source key, sent as "Authorization: Bearer KEY"
   * @param {Function} [options.fetch] a fetch implementation (default: globalThis.fetch)
   */
  constructor({ baseUrl = '', key = '', fetch: fetchFn } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.key = key;
    this.fetch = fetchFn || globalThis.fetch.bind(globalThis);
  }

  url(path, query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {}))
      if (v !== undefined && v !== null && v !== '') params.append(k, String(v));
    const q = params.toString();
    return `${this.baseUrl}${path}${q ? `?${q}` : ''}`;
  }

  headers(extra) {
    const h = { ...(extra || {}) };
    if (this.key) h.Authorization = `Bearer ${this.key}`;
    return h;
  }

  /**
   * One request. Resolves to the parsed JSON (or the text when `text` is
   * set); rejects with a TroveError for a status that is not 2xx.
   */
  async request(method, path, { query, body, contentType, headers, text = false, signal } = {}) {
    const init = { method, headers: this.headers(headers), signal };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['Content-Type'] = contentType || 'application/json';
    }
    const resp = await this.fetch(this.url(path, query), init);
    const raw = await resp.text();
    if (!resp.ok) {
      let code = 'http_' + resp.status;
      let detail = raw;
      try {
        const j = JSON.parse(raw);
        code = j.error || code;
        detail = j.detail || '';
      } catch {
        /* not JSON: keep the text */
      }
      const after = resp.headers.get('Retry-After');
      throw new TroveError(resp.status, code, detail, after ? Number(after) : undefined);
    }
    return text ? raw : JSON.parse(raw);
  }

  // ---- events (scope events:write) ----------------------------------------

  /**
   * Submit events: POST /v1/events. Resolves to {"results": [{index, id,
   * status[, reason, detail]}], accepted, duplicate, rejected, retry}.
   * With idempotencyKey, resending the same events after a lost answer is
   * answered as the first time. Events answered `retry` must be sent again.
   */
  submit(events, { idempotencyKey, signal } = {}) {
    const headers = idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : undefined;
    return this.request('POST', '/v1/events', { body: events, headers, signal });
  }

  // ---- users (scope users:read) -------------------------------------------

  /** {user, balance, hunts: {hunt: n}, cost}; asOf: RFC 3339 or epoch ms. */
  balance(user, { asOf } = {}) {
    return this.request('GET', `/v1/users/${seg(user)}/balance`, { query: { as_of: asOf } });
  }

  /** A page of coins, newest first: {user, coins, next_cursor, cost}. */
  coins(user, { limit, cursor, asOf } = {}) {
    return this.request('GET', `/v1/users/${seg(user)}/coins`, { query: { limit, cursor, as_of: asOf } });
  }

  /** {user, rules: [{hunt, rule, kind, have, need, done[, period, left]}], cost}. */
  progress(user) {
    return this.request('GET', `/v1/users/${seg(user)}/progress`);
  }

  /** A coin and the events that earned it: {coin, events, cost}. */
  coin(id) {
    return this.request('GET', `/v1/coins/${seg(id)}`);
  }

  // ---- leaderboards (scope boards:read) -----------------------------------

  /** {entries: [{rank, user, score}], cost, more}; period 'all', 'day:YYYY-MM-DD', 'week:...'. */
  leaderboard(hunt, { period, limit, after } = {}) {
    return this.request('GET', `/v1/leaderboards/${seg(hunt)}`, { query: { period, limit, after } });
  }

  /** The k entries on each side of user: the board shape plus {user, score}. */
  around(hunt, user, { period, k } = {}) {
    return this.request('GET', `/v1/leaderboards/${seg(hunt)}/around/${seg(user)}`, { query: { period, k } });
  }

  /** The hunt's boards, newest first: {entries: [{period, users}], cost, more}. */
  periods(hunt, { limit } = {}) {
    return this.request('GET', `/v1/leaderboards/${seg(hunt)}/periods`, { query: { limit } });
  }

  // ---- operator routes (scope admin) --------------------------------------

  /** The processes whose /metrics the ingestor reads: {targets: [{role, name[, shard]}]}. */
  metricsTargets() {
    return this.request('GET', '/v1/metrics');
  }

  /** One process's /metrics, as text exposition. */
  metrics(role, name) {
    return this.request('GET', `/v1/metrics/${seg(role)}/${seg(name)}`, { text: true });
  }

  /** What a hunt file would mint and revoke (file: its name, NAME.yaml). */
  previewRules(text, { file, user } = {}) {
    return this.request('POST', '/v1/rules/preview', {
      query: { file, user },
      body: text,
      contentType: 'application/yaml',
    });
  }

  /** Each shard's reconciler's last report: {shards: [{shard, report | error}]}. */
  reconcilerReports() {
    return this.request('GET', '/v1/reconciler/reports');
  }

  // ---- the award stream ---------------------------------------------------

  /**
   * Follow GET /v1/awards/stream (Server-Sent Events: `event: award`, `data:`
   * a coin's JSON, `id:` the stream position). Calls onAward(coin, id) for
   * each award; reconnects after a drop (after the server's `retry:` or
   * 1 s) sending Last-Event-ID, so no award is missed or repeated. The
   * browser's EventSource cannot send an Authorization header, so this reads
   * the stream with fetch in both browsers and Node. Filters user, hunt,
   * rule (the route's parameters). Returns stop().
   */
  awards({ lastEventId = '', user, hunt, rule, onAward, onError, onOpen } = {}) {
    const ctl = new AbortController();
    let last = lastEventId;
    let retryMs = 1000;
    let stopped = false;
    const run = async () => {
      while (!stopped) {
        try {
          const headers = this.headers({ Accept: 'text/event-stream' });
          if (last) headers['Last-Event-ID'] = last;
          const resp = await this.fetch(this.url('/v1/awards/stream', { user, hunt, rule }), {
            headers,
            signal: ctl.signal,
          });
          if (!resp.ok) {
            let code = 'http_' + resp.status;
            let detail = '';
            try {
              const j = JSON.parse(await resp.text());
              code = j.error || code;
              detail = j.detail || '';
            } catch {
              /* not JSON */
            }
            throw new TroveError(resp.status, code, detail);
          }
          if (onOpen) onOpen();
          const parser = new SseParser();
          const decoder = new TextDecoder();
          const reader = resp.body.getReader();
          for (;;) {
            const { value, done } = await reader.read();
            const events = parser.push(done ? decoder.decode() : decoder.decode(value, { stream: true }));
            for (const e of events) {
              if (e.retry !== undefined) retryMs = e.retry;
              if (e.id !== undefined) last = e.id;
              if (e.event === 'award' && onAward) onAward(JSON.parse(e.data), e.id);
            }
            if (done) break;
          }
        } catch (err) {
          if (stopped) return;
          if (onError) onError(err);
          // A refusal (401, 403, 404) will not heal by retrying.
          if (err instanceof TroveError && err.status < 500 && err.status !== 429) return;
        }
        if (!stopped) await new Promise((r) => setTimeout(r, retryMs));
      }
    };
    run();
    return () => {
      stopped = true;
      ctl.abort();
    };
  }
}

/**
 * An incremental parser of text/event-stream (the WHATWG HTML rules):
 * push() text as it arrives, get the complete events dispatched so far:
 * {event ('message' unless named), data (lines joined by "\n"), id (the
 * last event id, when set), retry (ms, when a retry field came)}. Comments
 * (":...") are ignored; an event without data is not dispatched.
 */
export class SseParser {
  constructor() {
    this.buf = '';
    this.reset();
    this.lastId = undefined;
  }

  reset() {
    this.data = [];
    this.event = '';
    this.retry = undefined;
  }

  push(text) {
    this.buf += text;
    const out = [];
    let nl;
    while ((nl = this.buf.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the end may be half of \r\n: wait for more.
      if (this.buf[nl] === '\r' && nl === this.buf.length - 1) break;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + (this.buf.startsWith('\r\n', nl) ? 2 : 1));
      this.line(line, out);
    }
    return out;
  }

  line(line, out) {
    if (line === '') {
      if (this.data.length) {
        const e = { event: this.event || 'message', data: this.data.join('\n') };
        if (this.lastId !== undefined) e.id = this.lastId;
        if (this.retry !== undefined) e.retry = this.retry;
        out.push(e);
      } else if (this.retry !== undefined) {
        out.push({ event: '', data: '', retry: this.retry });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}
