// The JS client (console/trove.js) against a running cluster
// (tests/integration/test_js_client.sh): node tests/js/test_client.mjs URL KEY.
// KEY is the demo key of source web (events:write, users:read, boards:read).
// Expected values are the demo hunt's, written out by hand: checkin 1,
// visit 2, purchase 5.
import assert from 'node:assert/strict';
import { TroveClient, TroveError } from '../../console/trove.js';

const [url, key] = process.argv.slice(2);
if (!url || !key) {
  console.error('usage: node tests/js/test_client.mjs URL KEY');
  process.exit(2);
}
const trove = new TroveClient({ baseUrl: url, key });
const ts = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const user = 'js/ü 1'; // a '/', a space and UTF-8: one path segment
const ev = (id, type) => ({ source: 'web', id, user, type, ts });

try {
  const r = await trove.submit([ev('js-1', 'checkin'), ev('js-2', 'purchase'), ev('js-3', 'visit')], {
    idempotencyKey: 'js-test-1',
  });
  assert.equal(r.accepted, 3, JSON.stringify(r));
  assert.deepEqual(r.results.map((x) => x.status), ['accepted', 'accepted', 'accepted']);
  // The same request again with its Idempotency-Key: answered, nothing added.
  const again = await trove.submit([ev('js-1', 'checkin'), ev('js-2', 'purchase'), ev('js-3', 'visit')], {
    idempotencyKey: 'js-test-1',
  });
  assert.equal(again.results.length, 3);
  // A bad event is rejected with its reason, the rest goes on.
  const mixed = await trove.submit([ev('js-4', 'checkin'), { source: 'web', id: 'js-5', user }]);
  assert.deepEqual(mixed.results.map((x) => x.status), ['accepted', 'rejected']);

  // Reads are fresh but the tables may trail the commit: wait (bounded).
  const deadline = Date.now() + 10000;
  let b;
  for (;;) {
    b = await trove.balance(user);
    if (b.balance === 9 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(b.user, user);
  assert.equal(b.balance, 1 + 5 + 2 + 1);
  assert.deepEqual(b.hunts, { demo: 9 });
  const c = await trove.coins(user, { limit: 10 });
  assert.equal(c.coins.length, 4);
  const purchase = c.coins.find((x) => x.rule === 'purchase');
  assert.equal(purchase.value, 5);
  const p = await trove.coin(purchase.id);
  assert.deepEqual(p.events.map((e) => e.id), ['js-2']);
  const board = await trove.around('demo', user, { k: 0 });
  assert.equal(board.score, 9);
  const progress = await trove.progress(user);
  assert.ok(Array.isArray(progress.rules));

  // Refusals arrive as TroveError with the API's code.
  await assert.rejects(trove.coin('xyz'), (e) => e instanceof TroveError && e.status === 400 && e.code === 'bad_coin_id');
  await assert.rejects(trove.metricsTargets(), (e) => e instanceof TroveError && e.status === 403 && e.code === 'forbidden');
  const stranger = new TroveClient({ baseUrl: url, key: 'trk_no_such_key_0123456789abcdef' });
  await assert.rejects(stranger.balance(user), (e) => e instanceof TroveError && e.status === 401 && e.code === 'unauthorized');
} catch (err) {
  console.error('FAIL test_client:', err);
  process.exit(1);
}
console.log('test_client: submit, balance, coins, provenance, board and refusals as expected');
