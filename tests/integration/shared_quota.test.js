'use strict';
// Multi-broker mode, the account's quota as one budget: three brokers behind a real HAProxy on
// loopback (examples/multi-broker/haproxy.cfg), one Redis, one emulator enforcing the quota.
// Every broker keeps the account's whole quota (register_qps 30, the default): 500 new
// devices sent all to one broker, then 500 spread over the three, each time every device gets
// its triple, nothing is throttled, and the brokers together use at least 90% of the
// RegisterDevice quota. batching off: each device is then one RegisterDevice, and the rate of
// those is the measure (batching with shared quotas: shared_batching.test.js).
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');

const QUOTA = { RegisterDevice: 30, QueryDeviceDetail: 50 };
const N = 500; // 17 s at the quota each time

test('three brokers, one Redis, one quota: all to one broker, then spread over three, ≥ 90% of the quota, zero throttling', async (t) => {
  // the log at the example's level (startService): 1 000 bootstraps at log_type all would be the test's cost
  const service = await h.startService({ emulator: { quota: QUOTA }, pluginOptions: { batching: 'off', max_queue: 5000 } });
  const { brokers, haproxy, metrics } = service;
  const a = brokers[0];
  const sum = (ms, k) => ms.reduce((n, m) => n + (m[k] || 0), 0);
  try {
    await h.sleep(1500);
    for (const e of brokers) assert.strictEqual(await h.waitForSys(e, 'shared/state', (v) => v === 'connected', { timeoutMs: 5000 }), 'connected');

    const run = async (port, prefix) => {
      await a.emu.resetStats();
      const before = await metrics();
      const r = await h.loadgen(port, a, N, { prefix });
      await h.sleep(1200); // the metrics' next interval
      const after = await metrics();
      const st = await a.emu.stats();
      return {
        ok: r.ok, codes: r.codes, seconds: r.seconds, throttled: st.throttled, register: st.byAction.RegisterDevice || 0,
        rate: (st.byAction.RegisterDevice || 0) / r.seconds,
        served: after.map((m, i) => (m['replies/ok'] || 0) - (before[i]['replies/ok'] || 0)), // published once it moved
        roundTrips: sum(after, 'shared/round_trips') - sum(before, 'shared/round_trips'),
        commands: sum(after, 'shared/commands') - sum(before, 'shared/commands'),
        leases: sum(after, 'shared/quota_leases') - sum(before, 'shared/quota_leases'),
      };
    };

    const one = await run(a.port, 'one');
    t.diagnostic(`all to one broker: ${JSON.stringify(one)}`);
    const spread = await run(haproxy.port, 'spread');
    t.diagnostic(`spread over three: ${JSON.stringify(spread)}`);
    for (const [what, r] of [['all to one broker', one], ['spread over three', spread]]) {
      assert.strictEqual(r.ok, N, `${what}: every device got its triple: ${JSON.stringify(r.codes)}`);
      assert.strictEqual(r.throttled, 0, `${what}: nothing throttled`);
      assert.strictEqual(r.register, N, `${what}: one RegisterDevice per device`);
      assert.ok(r.rate >= 0.9 * QUOTA.RegisterDevice, `${what}: ${r.rate.toFixed(1)} RegisterDevice/s, under 90% of the quota`);
      assert.ok(r.rate <= QUOTA.RegisterDevice, `${what}: ${r.rate.toFixed(1)} RegisterDevice/s, over the quota`);
      t.diagnostic(`${what}: ${(r.roundTrips / N).toFixed(2)} Redis round trips and ${(r.commands / N).toFixed(2)} commands per bootstrap, ${r.leases} quota leases`);
    }
    assert.deepStrictEqual(one.served, [N, 0, 0], 'all to broker A');
    assert.ok(spread.served.every((n) => n >= N / 6), `each broker served a share: ${spread.served}`);
    const m = await metrics();
    for (const x of m) {
      assert.strictEqual(x['shared/brokers'], 3);
      // counters that never moved are not published
      assert.strictEqual(x['shared/outages'], undefined);
      assert.strictEqual(x['shared/admitted_locally'], undefined);
    }
    for (const e of brokers) await e.assertLogClean();
  } finally {
    await service.stop();
  }
});
