'use strict';
// The refusal limiter fails closed (issue 18, items 2 and 3), attacked as an outsider would:
// keys that collided in the limiter's public hash fill the flooder's probe window, and a client
// id as long as any reply can go to. A refusal is never answered uncounted.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');
const collide = require('./lib/fnv_collide');

const INVALID = '{"deviceId":1}'; // refused: invalid_request, counted against address and client id

function auditLines(env) {
  const f = path.join(env.dir, 'audit.log');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}

// Waits until n messages arrived or ms passed.
async function settle(client, n, ms) {
  const until = Date.now() + ms;
  while (client.received < n && Date.now() < until) await h.sleep(50);
}

test('40 filler connections on colliding client ids and addresses do not let one flooder get more than 10 of 400 refusals answered', async () => {
  const FLOODER_ID = 'flood-1', FLOODER_ADDR = '127.200.0.1', FILLERS = 40, SENT = 400;
  const t0 = Date.now();
  const ids = collide.clientIds(FLOODER_ID, FILLERS);
  const addrs = collide.addresses(FLOODER_ADDR, FILLERS);
  console.log(`# ${FILLERS} colliding client ids and addresses found in ${Date.now() - t0} ms`);
  await h.withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' }, logTypes: ['error', 'warning', 'notice'] }, async (env) => {
    // every filler: one refusal, from its own address under its own id: a live entry in each table
    for (let i = 0; i < FILLERS; i++) {
      const c = await mqtt.connect(env.port, { clientId: ids[i], localAddress: addrs[i], keepAlive: 0 });
      await c.subscribe(`bootstrap/reply/${ids[i]}`, 0);
      await c.publish('bootstrap/register', INVALID, { qos: 1 });
      await settle(c, 1, 2000);
      assert.strictEqual(c.received, 1, `filler ${i} answered`);
      await c.disconnect();
    }
    const flooder = await mqtt.connect(env.port, { clientId: FLOODER_ID, localAddress: FLOODER_ADDR, keepAlive: 0 });
    await flooder.subscribe(`bootstrap/reply/${FLOODER_ID}`, 0);
    await flooder.publishMany('bootstrap/register', Array.from({ length: SENT }, () => INVALID), { qos: 1 });
    await settle(flooder, SENT, 3000);
    const codes = flooder.messages.map((m) => JSON.parse(m.payload).code);
    console.log(`# the flooder got ${flooder.received} answers to ${SENT} refused requests`);
    assert.ok(flooder.received <= 10, `${flooder.received} of ${SENT} refusals answered`);
    assert.deepStrictEqual(codes, [...Array(9).fill('invalid_request'), 'rate_limited']);
    await flooder.disconnect();
    // the audit trail and the log grow by what was answered, not by what was sent
    await h.sleep(200);
    const mine = auditLines(env).filter((l) => l.client === FLOODER_ID);
    assert.ok(mine.length <= 10, `${mine.length} audit lines for the flooder`);
    const logged = env.broker.log().split('\n').filter((l) => l.includes(`from client '${FLOODER_ID}'`)).length;
    assert.ok(logged <= 10, `${logged} log lines for the flooder`);
    // a device beside it is served
    assert.strictEqual((await env.rr('dev-beside-limits')).reply.success, true);
  });
});

test('a client id of 64 characters (the longest a reply goes to) is limited like any other: 10 of 50 refusals answered', async () => {
  await h.withEnv({ logTypes: ['error', 'warning', 'notice'] }, async (env) => {
    const id = 'c'.repeat(64);
    const c = await mqtt.connect(env.port, { clientId: id, keepAlive: 0 });
    await c.subscribe(`bootstrap/reply/${id}`, 0);
    await c.publishMany('bootstrap/register', Array.from({ length: 50 }, () => INVALID), { qos: 1 });
    await settle(c, 50, 3000);
    const codes = c.messages.map((m) => JSON.parse(m.payload).code);
    console.log(`# ${c.received} of 50 answered`);
    assert.deepStrictEqual(codes, [...Array(9).fill('invalid_request'), 'rate_limited']);
    await c.disconnect();
  });
});
