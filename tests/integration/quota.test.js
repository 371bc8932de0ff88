'use strict';
// The account's quota: RegisterDevice 30/s, QueryDeviceDetail 50/s, enforced by the emulator.
// A crowd of devices arrives at once; the plugin must never be throttled, must tell the ones it
// cannot queue when to come back, and every device that comes back as told must finish.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const h = require('./lib/harness');

test('300 devices at once (100 already registered) under a 30/50 QPS quota: zero Throttling.User, all finish', async () => {
  // the emulator runs in its own process: this one stalls while it spawns 300 clients
  const env = await h.startEnv({
    emulatorProcess: true,
    emulator: { quota: { RegisterDevice: 30, QueryDeviceDetail: 50 } },
    // single calls only: batching has its own test (batching.test.js)
    pluginOptions: { max_queue: 100, batching: 'off' },
  });
  try {
    // 100 devices exist already (registered earlier, never connected)
    const existing = Array.from({ length: 100 }, (_, i) => `dev-q-old-${String(i).padStart(3, '0')}`);
    await env.emu.preRegister(h.PRODUCT_KEY, existing);

    const fresh = Array.from({ length: 200 }, (_, i) => `dev-q-new-${String(i).padStart(3, '0')}`);
    const all = [...fresh, ...existing].sort(() => crypto.randomInt(3) - 1);
    const t0 = Date.now();
    const results = await Promise.all(all.map((id) => env.device(id)));
    const elapsed = (Date.now() - t0) / 1000;
    const stats = await env.emu.stats();

    assert.strictEqual(stats.throttled, 0, `the platform throttled ${stats.throttled} calls`);
    const finished = results.filter((r) => r.reply && r.reply.success).length;
    assert.strictEqual(finished, 300, `${finished} of 300 finished`);
    for (let i = 0; i < all.length; i += 37) {
      const d = await env.emu.device(h.PRODUCT_KEY, all[i]);
      assert.strictEqual(results[i].reply.data.DeviceName, all[i]);
      h.assertSameSecret(results[i].reply.data.DeviceSecret, d.DeviceSecret, `${all[i]} DeviceSecret`);
    }
    // the ones that could not be queued were told so, truthfully: busy with a retryAfter
    const told = results.filter((r) => r.codes.includes('busy'));
    assert.ok(told.length > 0, 'max_queue 100 made some devices wait');
    for (const r of told) assert.deepStrictEqual(r.codes.filter((c) => c !== 'busy'), ['ok']);
    assert.strictEqual(results.filter((r) => r.codes.some((c) => c !== 'busy' && c !== 'ok')).length, 0, 'no other error code');
    // every new device was registered and every existing one queried (strategy auto may start
    // either way), and no faster than the quota allows
    const reg = stats.byAction.RegisterDevice, qry = stats.byAction.QueryDeviceDetail || 0;
    assert.ok(reg >= 200 && reg <= 300, `${reg} RegisterDevice calls`);
    assert.ok(qry >= 100 && reg + qry <= 400 + 100, `${qry} QueryDeviceDetail calls`);
    assert.ok(elapsed >= (reg - 1) / 30 && elapsed >= (qry - 1) / 50, `${elapsed} s is faster than the quota allows`);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('strategy auto: a fleet of existing devices soon goes query-first (one call each instead of two)', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: { RegisterDevice: 30, QueryDeviceDetail: 50 } },
    pluginOptions: { batching: 'off' } });
  try {
    const existing = Array.from({ length: 120 }, (_, i) => `dev-s-old-${String(i).padStart(3, '0')}`);
    await env.emu.preRegister(h.PRODUCT_KEY, existing);
    const results = await Promise.all(existing.map((id) => env.device(id)));
    assert.strictEqual(results.filter((r) => r.reply && r.reply.success).length, 120);
    const stats = await env.emu.stats();
    assert.strictEqual(stats.throttled, 0);
    assert.strictEqual(stats.byAction.QueryDeviceDetail, 120, 'every device queried once');
    assert.ok(stats.byAction.RegisterDevice <= 20, `${stats.byAction.RegisterDevice} RegisterDevice calls before switching`);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});
