'use strict';
// The bootstrap topic's storms (batching.test.js) as Link SDK dynreg devices (issue 22): hundreds
// of devices CONNECT at once over TLS with batching on (the default) under every documented
// quota; each waits its 5 s, is closed when the platform cannot answer in time, and tries again
// with a new random as the SDK demo run in a loop would. Each must end with the platform's own
// DeviceSecret, with zero throttling and the batch actions doing the bulk of the work.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');
const { dynregEnv } = require('./lib/dynreg_env');
const { DOCUMENTED_QPS } = require('../emulator/emulator.js');

const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

async function storm(env, ids) {
  const started = Date.now();
  const results = await Promise.all(ids.map((id) => env.dynregDevice(id, {}, { maxTries: 30, retryMs: 1000 })));
  const tries = results.map((r) => r.tries);
  console.log(`${ids.length} dynreg devices in ${((Date.now() - started) / 1000).toFixed(1)} s; tries: max ${Math.max(...tries)}, ` +
    `served at the first ${tries.filter((t) => t === 1).length}`);
  for (let i = 0; i < ids.length; i++) {
    const { result: r, outcomes } = results[i];
    assert.ok(r.deviceSecret, `${ids[i]}: ${outcomes.join(',')}`);
    assert.strictEqual(r.payload.deviceName, ids[i]);
    assert.strictEqual(r.payload.productKey, h.PRODUCT_KEY);
    assert.ok(r.qos === 0 || r.qos === 1);
    // every attempt that got no secret was closed by the broker inside the window, never refused
    assert.ok(outcomes.every((o) => o === 'secret' || o === 'closed-by-broker'), `${ids[i]}: ${outcomes.join(',')}`);
    const d = await env.emu.device(h.PRODUCT_KEY, ids[i]);
    h.assertSameSecret(r.deviceSecret, d.DeviceSecret, `${ids[i]} DeviceSecret`);
  }
  return results;
}

test('dynreg storm: 300 existing devices at once under every quota, batching on: BatchQueryDeviceDetail serves them', async () => {
  const env = await dynregEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS } });
  try {
    const ids = names('dq-old', 300);
    await env.emu.preRegister(h.PRODUCT_KEY, ids);
    await storm(env, ids);
    const stats = await env.emu.stats();
    assert.deepStrictEqual([stats.signatureFailures, stats.strict], [0, {}]);
    assert.strictEqual(stats.throttled, 0);
    assert.ok(stats.batch.devicesServed.BatchQueryDeviceDetail >= 200, JSON.stringify(stats.batch.devicesServed));
    const singles = (stats.byAction.QueryDeviceDetail || 0) + (stats.byAction.RegisterDevice || 0);
    assert.ok(singles <= 100, `${singles} single calls for 300 devices`);
    assert.strictEqual((await env.emu.allDeviceSecrets()).length, 300, 'a device was created');
    const ok = env.audit().filter((l) => l.code === 'ok');
    assert.ok(ok.length >= 300, `${ok.length} audit lines ok`);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg storm: 400 new devices at once: one batch registration, zero throttling, each its own secret', async () => {
  const env = await dynregEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 400, createDurationMs: 400 } });
  try {
    const ids = names('dr-new', 400);
    await storm(env, ids);
    const stats = await env.emu.stats();
    assert.deepStrictEqual([stats.signatureFailures, stats.strict], [0, {}]);
    assert.strictEqual(stats.throttled, 0);
    assert.ok(stats.batch.devicesCreated >= 200, `${stats.batch.devicesCreated} devices created by batch`);
    assert.ok((stats.byAction.RegisterDevice || 0) <= 200, `${stats.byAction.RegisterDevice} RegisterDevice calls`);
    assert.strictEqual(stats.batch.registerRefused, 0);
    // each device registered once: as many devices on the platform as names
    assert.strictEqual((await env.emu.allDeviceSecrets()).length, 400);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});
