// metrics.js: what the console's overview computes from /metrics answers
// (Prometheus text exposition 0.0.4, docs/metrics.md), as Prometheus would:
// counters as increase over the time between two scrapes (a reset, a value
// that went down, counts from zero), histogram quantiles as
// histogram_quantile() (linear inside the bucket). No DOM: node tests it
// (tests/js/test_metrics.mjs).

/**
 * Parse a text exposition into samples [{name, labels: {k: v}, value}].
 * Comments, blank and malformed lines are skipped.
 */
export function parseMetrics(text) {
  const out = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;
      let l;
      let end = 0;
      while ((l = re.exec(m[3])) !== null) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
        end = re.lastIndex;
      }
      if (end !== m[3].length) continue;
    }
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') continue;
    out.push({ name: m[1], labels, value });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `match`. */
export function sum(samples, name, match = {}) {
  let total = 0;
  for (const s of samples)
    if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
  return total;
}

/** Whether any sample is named `name`. */
export function has(samples, name) {
  return samples.some((s) => s.name === name);
}

/**
 * Increase of a counter sum between two scrapes (older, newer), as
 * Prometheus' increase(): a lower newer value means a restart, so the
 * increase is the newer value.
 */
export function increase(older, newer, name, match = {}) {
  const a = sum(older, name, match);
  const b = sum(newer, name, match);
  return b >= a ? b - a : b;
}

/** Cumulative buckets of histogram `name` summed over series: [[le, count], ...] sorted by le. */
export function buckets(samples, name, match = {}) {
  const by = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    by.set(le, (by.get(le) || 0) + s.value);
  }
  return [...by.entries()].sort((x, y) => x[0] - y[0]);
}

/**
 * The q-quantile (0..1) of the observations of histogram `name` made
 * between two scrapes, as histogram_quantile(q, increase(...)). NaN when
 * there was none.
 */
export function quantile(older, newer, name, q, match = {}) {
  const a = new Map(buckets(older, name, match));
  const b = buckets(newer, name, match);
  const restarted = b.some(([le, c]) => c < (a.get(le) || 0));
  const inc = b.map(([le, c]) => [le, restarted ? c : c - (a.get(le) || 0)]);
  if (!inc.length || inc[inc.length - 1][0] !== Infinity) return NaN;
  const total = inc[inc.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of inc) {
    if (count >= rank) {
      if (le === Infinity) return prevLe; // the highest finite bound
      if (count === prevCount) return le;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / (count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return NaN;
}

/** A number for a table cell: rates with one decimal, big values grouped. */
export function fmt(n, digits = 1) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  if (!Number.isFinite(n)) return String(n);
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** Seconds as milliseconds for a latency cell. */
export function fmtMs(seconds) {
  if (Number.isNaN(seconds) || seconds === undefined) return '—';
  return `${fmt(seconds * 1000, 2)} ms`;
}
