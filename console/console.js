// console.js: the operator console (docs/console.md). Plain DOM, no
// framework; every call goes through trove.js with the operator key the
// page keeps in sessionStorage (gone when the tab closes).
import { TroveClient, TroveError } from './trove.js';
import { parseMetrics, sum, increase, quantile, fmt, fmtMs } from './metrics.js';

const KEY_ITEM = 'trove.operatorKey';
const POLL_MS = 2000;
const WINDOW_MS = 10000;

const $ = (id) => document.getElementById(id);
const client = new TroveClient({ baseUrl: '', key: sessionStorage.getItem(KEY_ITEM) || '' });

// ---- small DOM helpers ------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c === undefined ? '' : String(c)));
  return e;
}

function row(cells, attrs = {}) {
  return el('tr', attrs, ...cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : el('td', {}, c))));
}

function setRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// Show an error where it happened; a refused key also goes to the banner.
function showError(target, err) {
  const text =
    err instanceof TroveError
      ? `${err.status} ${err.code}${err.detail ? `: ${err.detail}` : ''}`
      : `cannot reach the ingestor: ${err.message || err}`;
  target.textContent = text;
  target.dataset.state = 'error';
  if (err instanceof TroveError && (err.status === 401 || err.status === 403)) authRefused(err);
}

function showOk(target, text) {
  target.textContent = text;
  target.dataset.state = 'ok';
}

// ---- the key ----------------------------------------------------------------

function authRefused(err) {
  const auth = $('auth');
  auth.dataset.state = err.status === 401 ? 'unauthorized' : 'forbidden';
  auth.textContent =
    err.status === 401
      ? `Refused (401 ${err.code}): ${err.detail || 'the key matches no source'}. Enter a valid operator key.`
      : `Refused (403 ${err.code}): ${err.detail || 'the key lacks the admin scope'}. The console needs a key with the admin scope.`;
}

async function checkKey() {
  const auth = $('auth');
  if (!client.key) {
    auth.dataset.state = 'none';
    auth.textContent = 'No key: enter an operator key (admin scope).';
    return false;
  }
  try {
    const t = await client.metricsTargets();
    auth.dataset.state = 'ok';
    auth.textContent = `Key accepted (admin). ${t.targets.length} processes with /metrics.`;
    return true;
  } catch (err) {
    if (err instanceof TroveError && (err.status === 401 || err.status === 403)) authRefused(err);
    else showError(auth, err);
    return false;
  }
}

$('key-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = $('key').value.trim();
  $('key').value = '';
  client.key = key;
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
  resetOverview();
  if (await checkKey()) refreshView();
});

$('key-forget').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_ITEM);
  client.key = '';
  resetOverview();
  checkKey();
});

// ---- views ------------------------------------------------------------------

let current = 'overview';

function show(view) {
  current = view;
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b.dataset.view === view);
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== `view-${view}`;
  refreshView();
}

for (const b of document.querySelectorAll('nav button')) b.addEventListener('click', () => show(b.dataset.view));

function refreshView() {
  if (!client.key) return;
  if (current === 'overview') pollOverview();
  else if (current === 'boards') loadPeriods();
  else if (current === 'reconciler') loadReports();
}

// ---- overview -----------------------------------------------------------------

// Per process: its scrapes of the last WINDOW_MS (and one older), oldest first.
let history = new Map();
let targets = null;
let samplesTaken = 0;

function resetOverview() {
  history = new Map();
  targets = null;
  samplesTaken = 0;
  $('view-overview').dataset.samples = '0';
}

async function scrapeAll() {
  if (!targets) targets = (await client.metricsTargets()).targets;
  const now = performance.now();
  const results = await Promise.all(
    targets.map(async (t) => {
      try {
        return { t, samples: parseMetrics(await client.metrics(t.role, t.name)) };
      } catch (err) {
        if (err instanceof TroveError && (err.status === 401 || err.status === 403)) throw err;
        return { t, error: err };
      }
    }),
  );
  for (const r of results) {
    const id = `${r.t.role}/${r.t.name}`;
    const h = history.get(id) || [];
    if (r.samples) h.push({ at: now, samples: r.samples });
    // Keep the newest scrape older than the window: rates span the window.
    while (h.length > 2 && now - h[1].at >= WINDOW_MS) h.shift();
    history.set(id, h);
    r.t.error = r.error ? (r.error.detail || r.error.message || String(r.error)) : '';
  }
}

// The two scrapes a rate spans: the oldest kept and the newest.
function span(id) {
  const h = history.get(id) || [];
  if (h.length < 2) return null;
  return { older: h[0].samples, newer: h[h.length - 1].samples, dt: (h[h.length - 1].at - h[0].at) / 1000 };
}

function latest(id) {
  const h = history.get(id) || [];
  return h.length ? h[h.length - 1].samples : null;
}

function renderOverview() {
  const ingestors = targets.filter((t) => t.role === 'ingestor');
  const scorers = targets.filter((t) => t.role === 'scorer');
  // Events answered per second, all ingestors; by result.
  let events = 0;
  let haveRate = false;
  const byResult = {};
  let latOlder = [];
  let latNewer = [];
  for (const t of ingestors) {
    const s = span(`ingestor/${t.name}`);
    if (!s) continue;
    haveRate = true;
    events += increase(s.older, s.newer, 'trove_ingestor_events_total') / s.dt;
    for (const r of ['accepted', 'duplicate', 'rejected', 'retry'])
      byResult[r] = (byResult[r] || 0) + increase(s.older, s.newer, 'trove_ingestor_events_total', { result: r }) / s.dt;
    latOlder = latOlder.concat(s.older);
    latNewer = latNewer.concat(s.newer);
  }
  let minted = 0;
  let revoked = 0;
  let haveAwards = false;
  for (const t of scorers) {
    const s = span(`scorer/${t.name}`);
    if (!s) continue;
    haveAwards = true;
    minted += increase(s.older, s.newer, 'trove_scorer_coins_minted_total') / s.dt;
    revoked += increase(s.older, s.newer, 'trove_scorer_coins_revoked_total') / s.dt;
  }
  const rate = $('rate-events');
  rate.textContent = haveRate ? fmt(events) : '…';
  rate.dataset.value = haveRate ? String(events) : '';
  $('rate-events-detail').textContent = haveRate
    ? Object.entries(byResult).map(([k, v]) => `${k} ${fmt(v)}`).join(' · ')
    : 'waiting for a second sample';
  const awards = $('rate-awards');
  awards.textContent = haveAwards ? fmt(minted) : '…';
  awards.dataset.value = haveAwards ? String(minted) : '';
  $('rate-revoked').textContent = haveAwards ? `revoked ${fmt(revoked)}/s` : '';
  const p50 = quantile(latOlder, latNewer, 'trove_ingestor_answer_seconds', 0.5);
  const p99 = quantile(latOlder, latNewer, 'trove_ingestor_answer_seconds', 0.99);
  $('answer-latency').textContent = haveRate ? `${fmtMs(p50)} / ${fmtMs(p99)}` : '…';

  // Per shard: the scorer's own numbers, and what the ingestors hold for it.
  const rows = scorers.map((t) => {
    const s = span(`scorer/${t.name}`);
    const now = latest(`scorer/${t.name}`);
    let inflight = 0;
    let queued = 0;
    let resends = 0;
    for (const i of ingestors) {
      const m = latest(`ingestor/${i.name}`);
      if (!m) continue;
      inflight += sum(m, 'trove_ingestor_shard_inflight_events', { shard: t.name });
      queued += sum(m, 'trove_ingestor_shard_queued_batches', { shard: t.name });
      resends += sum(m, 'trove_ingestor_resends_total', { shard: t.name });
    }
    const ev = s ? increase(s.older, s.newer, 'trove_scorer_events_total', { result: 'accepted' }) / s.dt : NaN;
    const coins = s ? increase(s.older, s.newer, 'trove_scorer_coins_minted_total') / s.dt : NaN;
    const c50 = s ? quantile(s.older, s.newer, 'trove_scorer_receive_to_commit_seconds', 0.5) : NaN;
    const c99 = s ? quantile(s.older, s.newer, 'trove_scorer_receive_to_commit_seconds', 0.99) : NaN;
    const up = !t.error && now;
    return row(
      [
        t.name,
        up ? 'up' : `down${t.error ? `: ${t.error}` : ''}`,
        fmt(ev),
        fmt(coins),
        fmtMs(c50),
        fmtMs(c99),
        now ? fmt(sum(now, 'trove_scorer_apply_backlog_events'), 0) : '—',
        fmt(inflight, 0),
        fmt(queued, 0),
        fmt(resends, 0),
        now ? fmt(sum(now, 'trove_scorer_last_aseq'), 0) : '—',
      ],
      { dataset: { shard: t.name, up: up ? '1' : '0' } },
    );
  });
  setRows($('shards').tBodies[0], rows);
  setRows(
    $('processes').tBodies[0],
    targets.map((t) => {
      const now = latest(`${t.role}/${t.name}`);
      const started = now ? sum(now, 'process_start_time_seconds') : 0;
      return row([
        t.name,
        t.role,
        t.error ? `not answering: ${t.error}` : 'up',
        started ? new Date(started * 1000).toISOString().replace('.000Z', 'Z') : '—',
      ]);
    }),
  );
}

let polling = false;

async function pollOverview() {
  if (polling || !client.key) return;
  polling = true;
  try {
    await scrapeAll();
    samplesTaken++;
    $('view-overview').dataset.samples = String(samplesTaken);
    renderOverview();
    showOk($('overview-status'), `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    showError($('overview-status'), err);
  } finally {
    polling = false;
  }
}

setInterval(() => {
  if (current === 'overview') pollOverview();
  else if (current === 'boards' && $('board-live').checked) loadBoard();
}, POLL_MS);

// ---- leaderboards -------------------------------------------------------------

async function loadPeriods() {
  const hunt = $('board-hunt').value.trim();
  if (!hunt) return;
  const select = $('board-period');
  const keep = select.value;
  try {
    const p = await client.periods(hunt);
    const options = [el('option', { value: 'all' }, 'all')];
    for (const e of p.entries)
      if (e.period !== 'all') options.push(el('option', { value: e.period }, `${e.period} (${e.users} users)`));
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  } catch (err) {
    showError($('board-status'), err);
  }
}

async function loadBoard() {
  const hunt = $('board-hunt').value.trim();
  const user = $('board-user').value.trim();
  const period = $('board-period').value || 'all';
  const status = $('board-status');
  try {
    const b = user
      ? await client.around(hunt, user, { period, k: $('board-k').value })
      : await client.leaderboard(hunt, { period, limit: $('board-limit').value });
    const rows = b.entries.map((e) => {
      const link = el('a', { href: '#', class: 'user-link', onclick: (ev) => (ev.preventDefault(), openPlayer(e.user)) }, e.user);
      return row([e.rank, el('td', {}, link), e.score], {
        class: user && e.user === user ? 'me' : '',
        dataset: { user: e.user, rank: String(e.rank), score: String(e.score) },
      });
    });
    setRows($('board').tBodies[0], rows);
    showOk(
      status,
      user
        ? `${user}: score ${b.score}${b.score ? '' : ' (not on this board)'}; ${b.entries.length} entries around`
        : `${hunt} ${period}: ${b.entries.length} entries${b.more ? ', more after these' : ''}`,
    );
  } catch (err) {
    setRows($('board').tBodies[0], []);
    showError(status, err);
  }
}

$('board-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  loadBoard();
});
$('board-hunt').addEventListener('change', loadPeriods);

// ---- player ---------------------------------------------------------------------

let coinCursor = '';

function openPlayer(user) {
  $('player-user').value = user;
  show('player');
  loadPlayer();
}

function coinRow(c) {
  const tr = row(
    [
      el('td', { class: 'mono' }, c.id),
      c.hunt,
      c.rule,
      c.value,
      c.minted,
      c.revoked ? `${c.reason} (revoked)` : c.reason,
      el('td', {}, el('button', { class: 'coin-events', onclick: () => toggleEvents(tr, c.id) }, 'events')),
    ],
    { class: c.revoked ? 'revoked' : '', dataset: { coin: c.id } },
  );
  return tr;
}

async function toggleEvents(tr, id) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains('provenance')) {
    next.remove();
    return;
  }
  const cell = el('td', { colspan: '7' }, 'loading…');
  const detail = el('tr', { class: 'provenance', dataset: { coin: id } }, cell);
  tr.after(detail);
  try {
    const p = await client.coin(id);
    const table = el(
      'table',
      { class: 'events' },
      el('thead', {}, row(['source', 'event id', 'user', 'type', 'ts', 'attrs'].map((h) => el('th', {}, h)))),
      el(
        'tbody',
        {},
        ...p.events.map((e) =>
          row([e.source, e.id, e.user, e.type, e.ts, e.attrs ? JSON.stringify(e.attrs) : ''], {
            dataset: { event: e.id || '' },
          }),
        ),
      ),
    );
    cell.replaceChildren(
      el('div', { class: 'small' }, `coin ${id}: ${p.events.length} event(s) earned it (rule ${p.coin.hunt}/${p.coin.rule} v${p.coin.rule_version})`),
      table,
    );
  } catch (err) {
    showError(cell, err);
  }
}

async function loadCoins(user, append) {
  const c = await client.coins(user, { limit: 50, cursor: append ? coinCursor : undefined });
  const tbody = $('player-coins').tBodies[0];
  const rows = c.coins.map(coinRow);
  if (append) tbody.append(...rows);
  else setRows(tbody, rows);
  coinCursor = c.next_cursor;
  $('player-more').hidden = !coinCursor;
}

async function loadPlayer() {
  const user = $('player-user').value.trim();
  const status = $('player-status');
  if (!user) return;
  try {
    const [b, p] = await Promise.all([client.balance(user), client.progress(user)]);
    $('player-balance').textContent = String(b.balance);
    $('player-balance').dataset.value = String(b.balance);
    $('player-hunts').textContent = Object.keys(b.hunts).length
      ? `(${Object.entries(b.hunts).map(([h, n]) => `${h}: ${n}`).join(', ')})`
      : '';
    setRows(
      $('player-progress').tBodies[0],
      p.rules.map((r) =>
        row([r.hunt, r.rule, r.kind, r.have, r.need, r.done, r.period ? `${r.period} (${r.left} left)` : '']),
      ),
    );
    await loadCoins(user, false);
    $('player-body').hidden = false;
    showOk(status, `${user}`);
  } catch (err) {
    $('player-body').hidden = true;
    showError(status, err);
  }
}

$('player-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  loadPlayer();
});
$('player-more').addEventListener('click', () => loadCoins($('player-user').value.trim(), true).catch((err) => showError($('player-status'), err)));

// ---- rule preview -------------------------------------------------------------

$('preview-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = $('preview-status');
  const file = $('preview-file').files[0];
  if (!file) {
    status.textContent = 'Choose a hunt file (NAME.yaml) first.';
    status.dataset.state = 'error';
    return;
  }
  status.textContent = `previewing ${file.name}…`;
  status.dataset.state = 'busy';
  try {
    const r = await client.previewRules(await file.text(), { file: file.name, user: $('preview-user').value.trim() });
    $('preview-summary').textContent =
      `${r.users} user(s), ${r.events} event(s) replayed: would mint ${r.mint} and revoke ${r.revoke} coin(s), ` +
      `balance change ${r.coins_delta >= 0 ? '+' : ''}${r.coins_delta}${r.truncated ? ' (changes truncated: 200 per shard)' : ''}`;
    setRows($('preview-rules').tBodies[0], r.rules.map((x) => row([x.hunt, x.rule, x.mint, x.revoke, x.coins_delta])));
    setRows(
      $('preview-changes').tBodies[0],
      r.changes.map((x) => row([x.user, x.action, x.hunt, x.rule, el('td', { class: 'mono' }, x.id), x.value])),
    );
    $('preview-body').hidden = false;
    showOk(status, `preview of ${file.name}`);
  } catch (err) {
    $('preview-body').hidden = true;
    showError(status, err);
  }
});

// ---- reconciler -------------------------------------------------------------------

async function loadReports() {
  const status = $('reports-status');
  try {
    const r = await client.reconcilerReports();
    setRows(
      $('reports').tBodies[0],
      r.shards.map((s) => {
        const x = s.report;
        if (!x) return row([s.shard, '—', '', '', '', '', '', '', '', '', s.error], { dataset: { shard: s.shard } });
        const i = x.integrity || {};
        const problems = (i.sequence_gaps || 0) + (i.provenance_missing || 0) + (i.balance_not_sum || 0);
        return row(
          [
            s.shard,
            x.run,
            x.started,
            x.events_scanned,
            x.users_checked,
            x.mismatched_users,
            x.repairs_applied,
            x.unrepaired,
            problems,
            `${fmt(x.duration_s, 2)} s`,
            x.user ? `user ${x.user} only` : '',
          ],
          { class: x.unrepaired > 0 || problems > 0 ? 'bad' : '', dataset: { shard: s.shard } },
        );
      }),
    );
    showOk(status, `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    showError(status, err);
  }
}

$('reports-refresh').addEventListener('click', loadReports);

// ---- start ------------------------------------------------------------------------

resetOverview();
checkKey().then((ok) => ok && refreshView());
