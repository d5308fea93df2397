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

// Follow the user's awards from now on (resolves once the stream is open).
function follow(options) {
  const got = [];
  let opened;
  const open = new Promise((r) => (opened = r));
  const stop = trove.awards({
    user,
    ...options,
    onOpen: () => opened(),
    onAward: (coin, id) => got.push({ coin, id }),
    onError: (e) => console.error('award stream:', e),
  });
  return { got, open, stop };
}
async function until(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

try {
  const live = follow({});
  await live.open;
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

  // The award stream: the user's four coins, each once, as the ledger has them.
  await until('four awards on the stream', () => live.got.length >= 4);
  live.stop();
  assert.deepEqual(live.got.map((a) => a.coin.id).sort(), c.coins.map((x) => x.id).sort());
  assert.ok(live.got.every((a) => a.coin.user === user && a.coin.revoked === false));
  // Stopped, one more event, then resumed from the last id: exactly the new award.
  const lastId = live.got[live.got.length - 1].id;
  assert.match(lastId, /^\d+:\d+(,\d+:\d+)*$/);
  assert.equal((await trove.submit([ev('js-6', 'purchase')])).accepted, 1);
  const resumed = follow({ lastEventId: lastId });
  await resumed.open;
  // A marker after it: the user's awards come in order (one shard), so once
  // the marker is in, anything repeated or missing would show before it.
  assert.equal((await trove.submit([ev('js-7', 'visit')])).accepted, 1);
  await until('the award made while stopped, then the marker', () => resumed.got.length >= 2);
  resumed.stop();
  assert.deepEqual(resumed.got.map((a) => a.coin.events.map((e) => e.id)), [['js-6'], ['js-7']]);

  // Refusals arrive as TroveError with the API's code.
  await assert.rejects(trove.coin('xyz'), (e) => e instanceof TroveError && e.status === 400 && e.code === 'bad_coin_id');
  await assert.rejects(trove.metricsTargets(), (e) => e instanceof TroveError && e.status === 403 && e.code === 'forbidden');
  const stranger = new TroveClient({ baseUrl: url, key: 'trk_no_such_key_0123456789abcdef' });
  await assert.rejects(stranger.balance(user), (e) => e instanceof TroveError && e.status === 401 && e.code === 'unauthorized');
} catch (err) {
  console.error('FAIL test_client:', err);
  process.exit(1);
}
console.log('test_client: submit, balance, coins, provenance, board, the award stream and refusals as expected');
