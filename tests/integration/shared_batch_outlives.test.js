'use strict';
// Issue 24 in multi-broker mode: a batch registration outlives its requests on one broker,
// and its devices' retries reach another. The name stays the first broker's in Redis while its
// batch may run: the other broker answers busy (audit batch_pending) without a platform call
// and never batches those names again; once the batch has made them, it looks them up.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');
const { DOCUMENTED_QPS } = require('../emulator/emulator.js');

const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

// A device whose first request reaches broker a and every retry broker b (mosquitto_rr each time).
async function hop(a, b, id) {
  const codes = [];
  let env = a;
  for (let tries = 1; ; tries++) {
    const r = await env.rr(id, { timeoutS: 30 });
    const reply = r.reply;
    codes.push(reply ? (reply.success ? 'ok' : reply.code) : 'no_reply');
    if (!reply || reply.success || !reply.retryAfter || tries >= 12) return { reply, tries, codes };
    // a retry before the end, for some: half the time told
    await h.sleep(reply.retryAfter * (tries === 1 && id.endsWith('7') ? 500 : 1000));
    env = b;
  }
}

test('two brokers: retries of a batch on another broker are told busy, never batched twice, then looked up', async () => {
  const service = await h.startService({ brokers: 2,
    emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 5000, createDurationMs: 6000 },
    pluginOptions: { register_qps: 10, request_deadline_ms: 8000, audit_file: '$DIR/audit.log' } });
  const [a, b] = service.brokers;
  try {
    await h.sleep(1500);
    const ids = names('hop', 200);
    const results = await Promise.all(ids.map((id) => hop(a, b, id)));
    for (let i = 0; i < ids.length; i++) {
      const r = results[i];
      assert.ok(r.reply && r.reply.success, `${ids[i]}: ${JSON.stringify(r.codes)}`);
      const d = await a.emu.device(h.PRODUCT_KEY, ids[i]);
      h.assertSameSecret(r.reply.data.DeviceSecret, d.DeviceSecret, `${ids[i]} DeviceSecret`);
    }
    const told = new Set(h.auditLines(a).filter((l) => l.reason === 'batch_pending').map((l) => l.deviceId));
    const toldOnB = h.auditLines(b).filter((l) => l.reason === 'batch_pending');
    const stats = await a.emu.stats();
    const applies = (await a.emu.batchConfig()).applies;
    assert.ok(told.size >= 50, `${told.size} names batched on a`);
    // every apply is a's: the names it took add up to those a told to wait, none twice
    assert.strictEqual(applies.reduce((n, x) => n + x.names, 0), told.size, JSON.stringify(applies));
    assert.strictEqual(stats.byAction.BatchCheckDeviceNames, applies.length);
    assert.strictEqual(stats.byAction.RegisterDevice, ids.length - told.size, 'no RegisterDevice for a batched name');
    assert.ok(!stats.byAction.QueryPageByApplyId);
    assert.strictEqual(stats.throttled, 0);
    // retries that came early reached b while the batch ran: busy there too, no call
    assert.ok(toldOnB.length >= 1, 'b told an early retry to wait');
    for (const l of toldOnB) assert.ok(told.has(l.deviceId) && !l.action, JSON.stringify(l));
    // b served the batched devices with lookups
    const onB = h.auditLines(b).filter((l) => l.code === 'ok');
    assert.ok(onB.length >= told.size - 5, `${onB.length} served on b`);
    assert.ok(onB.every((l) => /QueryDeviceDetail$/.test(l.action)), JSON.stringify(onB.map((l) => l.action)));
  } finally {
    await service.stop();
  }
});
