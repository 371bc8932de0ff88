'use strict';
// plugin_opt_products_file: several products on one broker, each with its own ProductSecret.
// A request names its product (productKey), the sign made with that product's secret proves
// it, the reply is sealed with that product's key; a sign made with another product's secret,
// or for a product this broker does not serve, is refused alike; the same deviceId in two
// products is two devices; SIGHUP takes products added and secrets rotated; batches never mix
// products; the metrics and the audit trail name the product.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');
const { DOCUMENTED_QPS } = require('../emulator/emulator.js');

const A = 'a1ProdAlpha';
const B = 'a1ProdBeta';
const C = 'a1ProdGamma';

function auditLines(env) {
  const f = path.join(env.dir, 'audit.log');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}

// The device the emulator holds for (productKey, name) is the one in the reply.
async function assertOwnTriple(env, productKey, name, data) {
  const d = await env.emu.device(productKey, name);
  assert.ok(d, `${productKey}/${name} exists on the platform`);
  assert.strictEqual(data.ProductKey, productKey, `${name}: the triple is of ${productKey}`);
  assert.strictEqual(data.DeviceName, name);
  h.assertSameSecret(data.DeviceSecret, d.DeviceSecret, `${productKey}/${name} DeviceSecret`);
  assert.strictEqual(data.IotId, d.IotId);
}

// SIGHUP, then the plugin's line matching pattern (after the log's current end).
async function reload(env, pattern) {
  const before = env.broker.log().length;
  env.broker.proc.kill('SIGHUP');
  for (let i = 0; i < 100; i++) {
    if (pattern.test(env.broker.log().slice(before))) return env.broker.log().slice(before);
    await h.sleep(50);
  }
  assert.fail(`no log line matching ${pattern} after SIGHUP:\n${env.broker.log().slice(before)}`);
}

test('two products with their own secrets: each device gets its own product\'s triple, sealed with its own product\'s key', async () => {
  const dir = h.makeWorkdir();
  const pw = await h.passwordFile(dir, { ops: 'ops-password' });
  const env = await h.startEnv({ products: [A, B], pluginOptions: { audit_file: '$DIR/audit.log', metrics_interval: 1, operator: 'ops' },
    extraConfig: `password_file ${pw}\nallow_anonymous true` });
  try {
    assert.match(env.broker.log(), new RegExp(`mosquitto_bootstrap: products file \\S+: 2 products; requests must name their productKey`));
    assert.strictEqual(await h.waitForSys(env, 'platform/status', (v) => v !== 'pending'), 'ok');
    assert.deepStrictEqual(Object.keys(env.emu.stats().checks.byProduct), [A], 'the start-up check asked about the first product');

    const a = await env.rr('dev-pa-0001', { productKey: A });
    assert.strictEqual(a.reply.success, true, JSON.stringify(a.reply));
    await assertOwnTriple(env, A, 'dev-pa-0001', a.reply.data);
    const b = await env.rr('dev-pb-0001', { productKey: B });
    assert.strictEqual(b.reply.success, true, JSON.stringify(b.reply));
    await assertOwnTriple(env, B, 'dev-pb-0001', b.reply.data);
    assert.strictEqual(await env.emu.device(B, 'dev-pa-0001'), null, 'nothing registered under the other product');

    // the same deviceId in both products: two devices, each reply opens with its own product's key
    const same = 'dev-both-0001';
    const sa = await env.rr(same, { productKey: A });
    const sb = await env.rr(same, { productKey: B });
    assert.ok(sa.reply.success && sb.reply.success);
    await assertOwnTriple(env, A, same, sa.reply.data);
    await assertOwnTriple(env, B, same, sb.reply.data);
    assert.notStrictEqual(sa.reply.data.IotId, sb.reply.data.IotId, 'two devices, not one');
    const sameLines = (await h.waitForAudit(env, (l) => l.deviceId === same, { n: 2 })).map((l) => [l.productKey, l.code, l.device]);
    assert.deepStrictEqual(sameLines, [[A, 'ok', 'new'], [B, 'ok', 'new']], 'audited: a new device in each product');

    // ... and at the same time, from one connection: two flows, two replies, not one joined
    const both = 'dev-both-0002';
    const c = await mqtt.connect(env.port, { clientId: both });
    try {
      await c.subscribe(`bootstrap/reply/${both}`, 1);
      const rA = crypto.randomBytes(8).toString('hex');
      const rB = crypto.randomBytes(8).toString('hex');
      await c.publish('bootstrap/register', env.request(both, { productKey: A, random: rA }), { qos: 1 });
      await c.publish('bootstrap/register', env.request(both, { productKey: B, random: rB }), { qos: 1 });
      for (let i = 0; i < 200 && c.messages.filter((m) => m.topic === `bootstrap/reply/${both}`).length < 2; i++) await h.sleep(50);
      const replies = c.messages.filter((m) => m.topic === `bootstrap/reply/${both}`).map((m) => JSON.parse(m.payload.toString()));
      assert.strictEqual(replies.length, 2, 'one reply per product');
      const opened = {};
      for (const reply of replies) {
        assert.strictEqual(reply.success, true, JSON.stringify(reply));
        // sealed for exactly one of the two requests: its own product's key opens it
        for (const [pk, random] of [[A, rA], [B, rB]]) {
          try {
            opened[pk] = h.openSealed(reply, { productSecret: env.productSecrets[pk], random, productKey: pk, deviceId: both });
          } catch (e) { /* the other product's reply */ }
        }
      }
      assert.deepStrictEqual(Object.keys(opened).sort(), [A, B]);
      await assertOwnTriple(env, A, both, opened[A]);
      await assertOwnTriple(env, B, both, opened[B]);
    } finally {
      await c.disconnect();
    }

    // a sign made with the wrong product's secret: unauthorized, whichever product it names
    const wrongA = await env.rr('dev-pa-0002', { productKey: A, key: env.productSecrets[B] });
    assert.strictEqual(wrongA.reply.code, 'unauthorized');
    assert.strictEqual(wrongA.reply.message, 'the signature does not match');
    // a device of A that claims B (its sign covers productKey A, made with A's secret)
    const claimB = JSON.parse(env.request('dev-pa-0003', { productKey: A }));
    claimB.productKey = B;
    const wrongB = await h.rr(env.port, { id: 'dev-pa-0003', message: JSON.stringify(claimB) });
    assert.strictEqual(wrongB.reply.code, 'unauthorized');
    assert.strictEqual(await env.emu.device(A, 'dev-pa-0002'), null);
    assert.strictEqual(await env.emu.device(B, 'dev-pa-0003'), null);

    // a product this broker does not serve: the very answer a wrong sign gets, so nobody learns
    // which products are served; the operator's log says what it was
    const unknown = await env.rr('dev-px-0001', { productKey: 'a1NotServed', key: env.productSecrets[A] });
    assert.deepStrictEqual(unknown.reply, wrongA.reply);
    assert.match(env.broker.log(), /request for device dev-px-0001 from client 'dev-px-0001' \(127\.0\.0\.1\) refused: unauthorized \(the signature does not match; product a1NotServed, which this broker does not serve\)/);
    // and no default product: a request that names none is told to
    const none = await env.rr('dev-pn-0001', { productKey: A, sendProductKey: false });
    assert.strictEqual(none.reply.code, 'invalid_request');
    assert.match(none.reply.message, /productKey is required/);

    // a random used by a device of A may be used by the device of the same name of B: the
    // replay cache keys on the product too; within one product it is a replay
    const r = crypto.randomBytes(8).toString('hex');
    const replayId = 'dev-rnd-0001';
    const first = await h.rr(env.port, { id: replayId, message: env.request(replayId, { productKey: A, random: r }) });
    assert.strictEqual(first.reply.success, true);
    const other = await h.rr(env.port, { id: replayId, message: env.request(replayId, { productKey: B, random: r }) });
    assert.strictEqual(other.reply.success, true, JSON.stringify(other.reply));
    const again = await h.rr(env.port, { id: replayId, message: env.request(replayId, { productKey: A, random: r }) });
    assert.strictEqual(again.reply.code, 'unauthorized');
    assert.match(again.reply.message, /already used/);

    // the audit trail names the product of every decision
    const lines = auditLines(env);
    const ok = lines.filter((l) => l.code === 'ok');
    assert.deepStrictEqual(ok.map((l) => `${l.productKey}/${l.deviceId}`).sort(), [
      `${A}/dev-both-0001`, `${A}/dev-both-0002`, `${A}/dev-pa-0001`, `${A}/${replayId}`,
      `${B}/dev-both-0001`, `${B}/dev-both-0002`, `${B}/dev-pb-0001`, `${B}/${replayId}`]);
    assert.deepStrictEqual(lines.filter((l) => l.code === 'unauthorized').map((l) => `${l.productKey}/${l.deviceId}`).sort(),
      [`a1NotServed/dev-px-0001`, `${A}/dev-pa-0002`, `${A}/${replayId}`, `${B}/dev-pa-0003`]);
    assert.deepStrictEqual(lines.filter((l) => l.code === 'invalid_request').map((l) => [l.productKey, l.deviceId]), [[null, 'dev-pn-0001']]);

    // the metrics count each product's replies apart (never a product nobody serves)
    await h.sleep(1300);
    const m = await h.readMetrics(env.port, ['-u', 'ops', '-P', 'ops-password']);
    assert.strictEqual(m[`products/${A}/replies/ok`], 4);
    assert.strictEqual(m[`products/${B}/replies/ok`], 4);
    assert.strictEqual(m['replies/ok'], 8);
    assert.strictEqual(m[`products/${A}/replies/unauthorized`], 2);
    assert.strictEqual(m[`products/${B}/replies/unauthorized`], 1);
    assert.strictEqual(m['replies/unauthorized'], 4);
    assert.ok(!Object.keys(m).some((k) => k.includes('a1NotServed')), 'a product nobody serves has no metrics');
    assert.ok(!(`products/${A}/replies/busy` in m), 'codes that never happened are left out');
    await env.assertLogClean();
  } finally {
    await env.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGHUP: a product added and a secret rotated are taken up; a bad products file keeps the current products', async () => {
  const env = await h.startEnv({ products: [A, B], emulator: { products: [C] } });
  try {
    const oldA = env.productSecrets[A];
    assert.strictEqual((await env.rr('dev-re-0001', { productKey: A })).reply.success, true);
    assert.strictEqual((await env.rr('dev-re-0002', { productKey: C, key: oldA })).reply.code, 'unauthorized');

    const newA = 'rotated-' + crypto.randomBytes(12).toString('hex');
    env.writeProducts({ [A]: newA, [B]: env.productSecrets[B], [C]: 'prodsecret-' + crypto.randomBytes(12).toString('hex') });
    await reload(env, /mosquitto_bootstrap: reload: products file \S+: 3 products/);
    // the old secret of A no longer signs, the new one does; C is served
    assert.strictEqual((await env.rr('dev-re-0003', { productKey: A, key: oldA })).reply.code, 'unauthorized');
    const rotated = await env.rr('dev-re-0003', { productKey: A });
    assert.strictEqual(rotated.reply.success, true, JSON.stringify(rotated.reply));
    await assertOwnTriple(env, A, 'dev-re-0003', rotated.reply.data);
    const added = await env.rr('dev-re-0002', { productKey: C });
    assert.strictEqual(added.reply.success, true, JSON.stringify(added.reply));
    await assertOwnTriple(env, C, 'dev-re-0002', added.reply.data);
    assert.strictEqual((await env.rr('dev-re-0004', { productKey: B })).reply.success, true);

    // a bad line: the whole file is refused, the three products stay
    const keep = { ...env.productSecrets };
    env.writeProducts(keep, 'a1ProdDelta relative/path\n');
    const said = await reload(env, /reload: plugin_opt_products_file: .*keeping the current products \(3\)/);
    assert.match(said, /mosquitto_bootstrap: reload: plugin_opt_products_file: \S+ line 5: the secret file must be an absolute path of at most 1024 bytes; keeping the current products \(3\)/);
    assert.strictEqual((await env.rr('dev-re-0005', { productKey: C })).reply.success, true);
    // a secret file others may read: refused too, naming the line and product, never the secret
    env.writeProducts(keep);
    const open = fs.readFileSync(env.productsFile, 'utf8').split('\n').find((l) => l.startsWith(B)).split(' ')[1];
    fs.chmodSync(open, 0o644);
    const said2 = await reload(env, /keeping the current products \(3\)/);
    assert.match(said2, new RegExp(`line 3 \\(${B}\\): ${open.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is accessible by group or others`));
    assert.strictEqual((await env.rr('dev-re-0006', { productKey: B })).reply.success, true);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('a products file with a default product: requests that name no product are for it', async () => {
  await h.withEnv({ products: [A, B], pluginOptions: { product_key: B } }, async (env) => {
    assert.match(env.broker.log(), new RegExp(`products file \\S+: 2 products, default ${B} for requests that name none`));
    const r = await env.rr('dev-df-0001', { productKey: B, sendProductKey: false });
    assert.strictEqual(r.reply.success, true, JSON.stringify(r.reply));
    await assertOwnTriple(env, B, 'dev-df-0001', r.reply.data);
    const a = await env.rr('dev-df-0002', { productKey: A });
    assert.strictEqual(a.reply.success, true);
    await assertOwnTriple(env, A, 'dev-df-0002', a.reply.data);
    // without productKey the sign must be B's: A's secret over A's name is not enough
    assert.strictEqual((await env.rr('dev-df-0003', { productKey: A, sendProductKey: false })).reply.code, 'unauthorized');
  });
});

test('the single product_key configuration takes a request that names its product, and refuses one that names another', async () => {
  await h.withEnv({}, async (env) => {
    const named = await env.rr('dev-sg-0001', { sendProductKey: true });
    assert.strictEqual(named.reply.success, true);
    const other = await env.rr('dev-sg-0002', { productKey: A, key: env.productSecret, sendProductKey: true });
    assert.strictEqual(other.reply.code, 'unauthorized');
    assert.strictEqual(other.reply.message, 'the signature does not match');
  });
});

test('a bad products file stops the broker at start-up, naming the line', async () => {
  const env = await h.startEnv({ products: [A], productsLines: `${B} ${'/nonexistent/secret'}\n`, expectFailure: true });
  try {
    assert.ok(env.failure && env.failure.code !== 0, 'the broker exited');
    assert.match(env.broker.log(), new RegExp(`mosquitto_bootstrap: plugin_opt_products_file: \\S+ line 3 \\(${B}\\): cannot open /nonexistent/secret`));
    env.assertLogClean();
  } finally {
    await env.stop();
  }
  const both = await h.startEnv({ products: [A], pluginOptions: { product_secret_file: '/etc/hostname' }, expectFailure: true });
  try {
    assert.match(both.broker.log(), /mosquitto_bootstrap: plugin_opt_product_secret_file: not with plugin_opt_products_file/);
  } finally {
    await both.stop();
  }
});

// Every device of a crowd mixing two products (existing ones, looked up in batches, and new
// ones, registered in batches) gets its own product's triple: a batch call names one product.
test('a batched crowd mixing both products: every device gets its own product\'s triple', async () => {
  const env = await h.startEnv({ products: [A, B], emulatorProcess: true,
    emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 300, createDurationMs: 300 },
    pluginOptions: { register_qps: 10, audit_file: '$DIR/audit.log' } });
  const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
  const crowd = async (devices) => {
    const results = await Promise.all(devices.map(([pk, id]) => env.device(id, { productKey: pk, timeoutS: 60 })));
    for (let i = 0; i < devices.length; i++) {
      const [pk, id] = devices[i];
      const r = results[i];
      assert.ok(r.reply && r.reply.success, `${pk}/${id}: ${JSON.stringify(r.codes)}`);
      await assertOwnTriple(env, pk, id, r.reply.data);
    }
  };
  // interleaved, so that every batch the worker forms has both products around it
  const mix = (a, b) => a.flatMap((x, i) => [[A, x], [B, b[i]]]);
  try {
    const oldA = names('old-a', 80);
    const oldB = names('old-b', 80);
    await env.emu.preRegister(A, oldA);
    await env.emu.preRegister(B, oldB);
    // the same names exist in the other product too, as other devices: a lookup of the wrong
    // product would find them and hand out their secrets
    await env.emu.preRegister(B, oldA);
    await env.emu.preRegister(A, oldB);
    await crowd(mix(oldA, oldB));
    await crowd(mix(names('new-a', 120), names('new-b', 120)));
    const stats = await env.emu.stats();
    assert.ok(stats.batch.devicesServed.BatchQueryDeviceDetail >= 80, JSON.stringify(stats.batch.devicesServed));
    assert.ok(stats.batch.appliesCreated >= 1 && stats.batch.devicesCreated >= 50, JSON.stringify(stats.batch));
    assert.strictEqual(stats.throttled, 0);
    // the audit trail names each device's product, whichever call served it
    const ok = auditLines(env).filter((l) => l.code === 'ok');
    assert.strictEqual(ok.length, 400);
    for (const l of ok) assert.strictEqual(l.productKey, /-a-/.test(l.deviceId) ? A : B, JSON.stringify(l));
    // batched devices were told to come back (batch_pending) and looked up: no page, no secret kept
    assert.ok(ok.some((l) => l.action === 'BatchQueryDeviceDetail') && !ok.some((l) => l.action === 'QueryPageByApplyId'));
    assert.ok(auditLines(env).some((l) => l.reason === 'batch_pending'));
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});
