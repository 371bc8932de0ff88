'use strict';
// The broker never waits for the platform: with 2 s of platform latency, 50 simultaneous
// bootstraps finish together and a new client still gets its CONNACK at once.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

let env;
// the quota is not what this tests: let the 50 calls go out at once
test.before(async () => { env = await h.startEnv({ pluginOptions: { register_qps: 1000, register_burst: 100 } }); });
test.after(async () => { if (env) { env.assertLogClean(); await env.stop(); } });

test('50 simultaneous bootstraps at 2 s platform latency finish in under 4 s; CONNACK stays under 200 ms', async () => {
  env.emu.setLatency(2000);
  const ids = Array.from({ length: 50 }, (_, i) => `dev-nb-${String(i).padStart(3, '0')}`);
  const t0 = Date.now();
  const all = Promise.all(ids.map((id) => env.rr(id, { timeoutS: 10 })));
  // probe while the 50 requests are waiting on the platform
  await h.sleep(700);
  const probes = [];
  for (let i = 0; i < 5; i++) {
    probes.push(await h.connackMs(env.port));
    await h.sleep(150);
  }
  const results = await all;
  const elapsed = Date.now() - t0;
  const failed = results.filter((r) => !(r.reply && r.reply.success)).map((r) => ({ code: r.code, reply: r.reply, stderr: r.stderr.trim() }));
  assert.deepStrictEqual(failed, [], 'all 50 devices got their triple');
  for (const r of results) assert.strictEqual(r.reply.data.DeviceName, r.reply.data.DeviceName.trim());
  assert.ok(elapsed < 4000, `took ${elapsed} ms`);
  assert.ok(elapsed >= 2000, 'the platform latency was really in effect');
  const worst = Math.max(...probes.map((p) => p.ms));
  assert.ok(probes.every((p) => p.returnCode === 0), 'CONNACK accepted');
  assert.ok(worst < 200, `CONNACK took ${worst.toFixed(1)} ms`);
  assert.strictEqual(env.emu.stats().byAction.RegisterDevice, 50);
});

test('the same deviceId requested twice at once shares one platform flow; the reply is sealed for the latest request', async () => {
  env.emu.setLatency(500);
  const before = env.emu.stats().byAction.RegisterDevice || 0;
  const device = await mqtt.connect(env.port, { clientId: 'dev-twice' });
  await device.subscribe('bootstrap/reply/dev-twice', 1);
  const randoms = ['twice-random-01', 'twice-random-02'];
  for (const random of randoms) await device.publish('bootstrap/register', env.request('dev-twice', { random }), { qos: 1 });
  await device.waitFor(() => true, 3000);
  await h.sleep(700);
  await device.disconnect();
  assert.strictEqual(device.messages.length, 1, 'one reply');
  const reply = JSON.parse(device.messages[0].payload);
  assert.strictEqual(reply.success, true);
  const open = (random) => h.openSealed(reply, { productSecret: env.productSecret, random, productKey: env.productKey, deviceId: 'dev-twice' });
  assert.strictEqual(open(randoms[1]).DeviceName, 'dev-twice');
  assert.throws(() => open(randoms[0]), 'the earlier request\'s key does not open it');
  assert.strictEqual((env.emu.stats().byAction.RegisterDevice || 0) - before, 1, 'one RegisterDevice');
  env.emu.setLatency(0);
});
