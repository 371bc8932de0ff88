'use strict';
// Multi-broker mode with batching auto (the default): the batch actions' quotas are shared
// too. Three brokers behind HAProxy, one Redis, one emulator enforcing every documented quota
// (BatchQueryDeviceDetail 5/s, BatchCheckDeviceNames 10/s, ...): a crowd of existing devices
// and a crowd of new ones, spread over the three, each broker batching its own share. Every
// device gets its own triple, nothing is throttled, and the batch actions did the work.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');
const { DOCUMENTED_QPS } = require('../emulator/emulator.js');

const BATCH_ACTIONS = ['BatchQueryDeviceDetail', 'BatchCheckDeviceNames', 'QueryBatchRegisterDeviceStatus',
  'BatchRegisterDeviceWithApplyId', 'QueryPageByApplyId'];

test('three brokers batching under shared quotas: existing and new crowds, every triple, zero throttling', async (t) => {
  const service = await h.startService({ emulator: { quota: DOCUMENTED_QPS } });
  const { brokers, haproxy } = service;
  const a = brokers[0];
  try {
    await h.sleep(1500);
    // existing devices first: lookups, 100 names a call, at 5 calls/s for the three together
    const old = 300;
    await a.emu.preRegister(h.PRODUCT_KEY, Array.from({ length: old }, (_, i) => `old-${String(i).padStart(5, '0')}`));
    await a.emu.resetStats();
    const r1 = await h.loadgen(haproxy.port, a, old, { prefix: 'old' });
    const s1 = await a.emu.stats();
    t.diagnostic(`existing: ${JSON.stringify({ ok: r1.ok, seconds: r1.seconds, byAction: s1.byAction, throttled: s1.throttled })}`);
    assert.strictEqual(r1.ok, old, JSON.stringify(r1.codes));
    assert.strictEqual(s1.throttled, 0, JSON.stringify(s1.throttledBy));
    assert.ok((s1.byAction.BatchQueryDeviceDetail || 0) >= 3, 'looked up in batches');

    // then a crowd of new names: more than single calls clear while a batch registration runs
    const fresh = 900;
    await a.emu.resetStats();
    const r2 = await h.loadgen(haproxy.port, a, fresh, { prefix: 'new' });
    const s2 = await a.emu.stats();
    t.diagnostic(`new: ${JSON.stringify({ ok: r2.ok, seconds: r2.seconds, byAction: s2.byAction, throttled: s2.throttled, batch: s2.batch })}`);
    assert.strictEqual(r2.ok, fresh, JSON.stringify(r2.codes));
    assert.strictEqual(s2.throttled, 0, JSON.stringify(s2.throttledBy));
    // registered in batches, and looked up when they came back (no page: no DeviceSecret kept)
    assert.ok((s2.byAction.BatchRegisterDeviceWithApplyId || 0) >= 1 && !s2.byAction.QueryPageByApplyId,
      `registered in batches: ${JSON.stringify(s2.byAction)}`);
    assert.ok((s2.byAction.RegisterDevice || 0) < fresh, 'not one RegisterDevice per device');

    await h.sleep(1200);
    const ms = await service.metrics();
    // the batch actions took their slots from the shared quota: every call had a lease's slot
    const calls = (m, action) => Object.entries(m).filter(([k]) => k.startsWith(`platform/${action}/`) && !k.endsWith('/devices'))
      .reduce((n, [, v]) => n + v, 0);
    for (const m of ms) {
      const batchCalls = BATCH_ACTIONS.reduce((n, act) => n + calls(m, act), 0);
      assert.ok(m['shared/quota_slots'] - (m['shared/quota_slots_unused'] || 0) >= batchCalls, 'every batch call had a shared slot');
    }
    for (const e of brokers) await e.assertLogClean();
  } finally {
    await service.stop();
  }
});
