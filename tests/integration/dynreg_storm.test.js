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

// Waits (up to tries x everyMs) for an apply whose Status passes want; resolves with it, or null.
async function applyIn(env, want, tries = 200, everyMs = 50) {
  for (let i = 0; i < tries; i++) {
    const found = (await env.emu.batchConfig()).applies.find((a) => want(a.Status));
    if (found) return found;
    await h.sleep(everyMs);
  }
  return null;
}

test('dynreg storm: names that exist fail the check, names registered during creation fail it: each device its own secret', async () => {
  const env = await dynregEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 300, createDurationMs: 1500 },
    pluginOptions: { strategy: 'register_first', register_qps: 10 } });
  try {
    const ids = names('dmix', 200);
    await env.emu.preRegister(h.PRODUCT_KEY, ids.filter((_, i) => i % 10 === 3));
    const running = storm(env, ids);
    let raced = [];
    const creating = await applyIn(env, (s) => s === 'CREATE');
    if (creating) {
      raced = (await env.emu.batchApply(creating.ApplyId)).DeviceNames.slice(-5);
      await env.emu.preRegister(h.PRODUCT_KEY, raced);
    }
    assert.strictEqual(raced.length, 5, 'a batch reached creation');
    await running; // every secret checked against the platform's, the raced ones too
    const stats = await env.emu.stats();
    assert.ok(stats.batch.stagesEnded.CHECK_FAILED >= 1, JSON.stringify(stats.batch.stagesEnded));
    assert.ok(stats.batch.stagesEnded.CREATE_FAILED >= 1, JSON.stringify(stats.batch.stagesEnded));
    assert.strictEqual(stats.throttled, 0);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg storm: 300 devices (100 existing) under a 30/50 QPS quota, batching off, max_queue 100: zero throttling, all served', async () => {
  const env = await dynregEnv({ emulatorProcess: true, emulator: { quota: { RegisterDevice: 30, QueryDeviceDetail: 50 } },
    pluginOptions: { max_queue: 100, batching: 'off' } });
  try {
    const existing = names('dq-old', 100);
    await env.emu.preRegister(h.PRODUCT_KEY, existing);
    const all = [...names('dq-new', 200), ...existing];
    const results = await storm(env, all);
    const stats = await env.emu.stats();
    assert.strictEqual(stats.throttled, 0, `the platform throttled ${stats.throttled} calls`);
    // the queue's overflow and the window's expiry were told busy and closed: their retries served
    const closed = results.filter((r) => r.tries > 1).length;
    assert.ok(closed > 0, 'max_queue 100 and a 10 s backlog closed no device');
    assert.strictEqual((await env.emu.allDeviceSecrets()).length, 300, 'a device registered twice');
    const reg = stats.byAction.RegisterDevice || 0;
    assert.ok(reg >= 200 && reg <= 400, `${reg} RegisterDevice calls`);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});
