// Unit tests of the console's JS modules without a cluster (node
// tests/js/test_units.mjs): the SSE parser of trove.js on canned streams,
// the award stream reader against a scripted SSE server on 127.0.0.1 (a
// drop, then a resume with Last-Event-ID), and metrics.js on a canned
// /metrics text. Expected values are written out by hand.
import assert from 'node:assert/strict';
import http from 'node:http';
import { SseParser, TroveClient, TroveError } from '../../console/trove.js';
import { parseMetrics, sum, increase, quantile } from '../../console/metrics.js';

let passed = 0;
async function test(name, fn) {
  try {
    await fn();
    passed++;
  } catch (err) {
    console.error(`FAIL ${name}:`, err);
    process.exit(1);
  }
}

// ---- SSE -----------------------------------------------------------------------
const STREAM =
  ': a comment, then an award\r\n' +
  'retry: 500\r\n' +
  'event: award\r\n' +
  'id: 0:3,1:7\r\n' +
  'data: {"id":"c1","user":"u1",\r\n' +
  'data: "value":5}\r\n' +
  '\r\n' +
  'event: heartbeat\n' +
  'data:\n' +
  '\n' +
  'id: 0:4,1:7\n' +
  'event: award\n' +
  'data:{"id":"c2","user":"u2","value":1}\n' +
  '\n' +
  'data: no blank line yet';

const WANT = [
  { event: 'award', data: '{"id":"c1","user":"u1",\n"value":5}', id: '0:3,1:7', retry: 500 },
  { event: 'heartbeat', data: '', id: '0:3,1:7' },
  { event: 'award', data: '{"id":"c2","user":"u2","value":1}', id: '0:4,1:7' },
];

await test('sse: one chunk', () => {
  assert.deepEqual(new SseParser().push(STREAM), WANT);
});

await test('sse: every split of the stream into two chunks', () => {
  for (let i = 0; i <= STREAM.length; i++) {
    const p = new SseParser();
    const got = [...p.push(STREAM.slice(0, i)), ...p.push(STREAM.slice(i))];
    assert.deepEqual(got, WANT, `split at ${i}`);
  }
});

await test('sse: one character at a time; the unterminated event waits', () => {
  const p = new SseParser();
  const got = [];
  for (const c of STREAM) got.push(...p.push(c));
  assert.deepEqual(got, WANT);
  assert.deepEqual(p.push('\n\n'), [{ event: 'message', data: 'no blank line yet', id: '0:4,1:7' }]);
});

// ---- the award stream against a scripted server ------------------------------------
await test('awards: reads, drops, resumes with Last-Event-ID', async () => {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url, auth: req.headers.authorization, last: req.headers['last-event-id'] });
    if (seen.length === 1) {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('retry: 50\n\nevent: award\nid: 0:1\ndata: {"id":"a","value":1}\n\n');
      setTimeout(() => res.end('event: award\nid: 0:2\ndata: {"id":"b","value":2}\n\n'), 20);
    } else if (seen.length === 2) {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.end('event: award\nid: 0:3\ndata: {"id":"c","value":3}\n\n');
    } else {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end('{"error":"unauthorized","detail":"the key matches no source"}');
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const client = new TroveClient({ baseUrl: `http://127.0.0.1:${server.address().port}`, key: 'k1' });
  const awards = [];
  const errors = [];
  const done = new Promise((resolve) => {
    client.awards({
      onAward: (coin, id) => awards.push([coin.id, id]),
      onError: (err) => {
        errors.push(err);
        resolve();
      },
    });
  });
  const timer = setTimeout(() => assert.fail('the stream did not end within 5 s'), 5000);
  await done;
  clearTimeout(timer);
  server.close();
  assert.deepEqual(awards, [['a', '0:1'], ['b', '0:2'], ['c', '0:3']]);
  assert.deepEqual(seen.map((s) => [s.url, s.auth, s.last]), [
    ['/v1/awards/stream', 'Bearer k1', undefined],
    ['/v1/awards/stream', 'Bearer k1', '0:2'],
    ['/v1/awards/stream', 'Bearer k1', '0:3'],
  ]);
  // A 401 ends the stream (no retry loop): the one error is it.
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof TroveError);
  assert.equal(errors[0].status, 401);
  assert.equal(errors[0].code, 'unauthorized');
});

// ---- metrics ----------------------------------------------------------------------
const M1 = `# HELP trove_ingestor_events_total Events answered
# TYPE trove_ingestor_events_total counter
trove_ingestor_events_total{source="web",result="accepted"} 100
trove_ingestor_events_total{source="web",result="rejected"} 4
trove_ingestor_events_total{source="a \\"quoted\\", name",result="accepted"} 1
lat_bucket{le="0.001"} 0
lat_bucket{le="0.01"} 10
lat_bucket{le="0.1"} 10
lat_bucket{le="+Inf"} 10
malformed line here
gauge_x 7.5
`;
const M2 = `trove_ingestor_events_total{source="web",result="accepted"} 160
trove_ingestor_events_total{source="web",result="rejected"} 4
trove_ingestor_events_total{source="a \\"quoted\\", name",result="accepted"} 1
lat_bucket{le="0.001"} 0
lat_bucket{le="0.01"} 30
lat_bucket{le="0.1"} 110
lat_bucket{le="+Inf"} 110
gauge_x 2
`;

await test('metrics: parse, labels unescaped, bad lines skipped', () => {
  const s = parseMetrics(M1);
  assert.equal(s.length, 8);
  assert.deepEqual(s[2].labels, { source: 'a "quoted", name', result: 'accepted' });
  assert.equal(sum(s, 'trove_ingestor_events_total'), 105);
  assert.equal(sum(s, 'trove_ingestor_events_total', { result: 'accepted' }), 101);
  assert.equal(sum(s, 'gauge_x'), 7.5);
});

await test('metrics: increase, and a reset counts from zero', () => {
  const a = parseMetrics(M1);
  const b = parseMetrics(M2);
  assert.equal(increase(a, b, 'trove_ingestor_events_total'), 60);
  assert.equal(increase(b, a, 'trove_ingestor_events_total'), 105); // went down: a restart
});

await test('metrics: quantile of the observations between two scrapes', () => {
  const a = parseMetrics(M1);
  const b = parseMetrics(M2);
  // 100 new observations: 20 in (0.001, 0.01], 80 in (0.01, 0.1].
  // p50: rank 50, 30 into the second bucket of 80: 0.01 + 0.09 * 30/80.
  assert.ok(Math.abs(quantile(a, b, 'lat', 0.5) - (0.01 + (0.09 * 30) / 80)) < 1e-12);
  // p10: rank 10, in the first nonempty bucket: 0.001 + 0.009 * 10/20.
  assert.ok(Math.abs(quantile(a, b, 'lat', 0.1) - 0.0055) < 1e-12);
  assert.ok(Number.isNaN(quantile(b, b, 'lat', 0.5))); // nothing observed
});

console.log(`test_units: ${passed} passed`);
