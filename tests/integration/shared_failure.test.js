'use strict';
// Multi-broker mode when Redis fails: three brokers behind HAProxy, one Redis, one emulator
// enforcing the quota. Mid-run Redis is killed (SIGKILL: everything it held is gone) and started
// again on the same port, and later it stops answering for two seconds (SIGSTOP: slow, not
// gone). No broker crashes, every device gets its triple, each broker logs one line when Redis
// goes and one when it is back, per outage, and serves alone meanwhile on its share of the quota.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');

const QUOTA = { RegisterDevice: 30, QueryDeviceDetail: 50 };
const N = 600;

test('Redis killed and restarted, then frozen, mid-run: no crash, every device answered, one log line per state change', async (t) => {
  const service = await h.startService({ emulator: { quota: QUOTA }, pluginOptions: { batching: 'off' } });
  const { redis, brokers, haproxy } = service;
  const a = brokers[0];
  try {
    await h.sleep(1500);
    await a.emu.resetStats();
    const run = h.loadgen(haproxy.port, a, N, { prefix: 'outage', extra: ['--max-tries', '50'] });
    const events = (async () => {
      await h.sleep(4000);
      await redis.kill('SIGKILL');
      await h.sleep(4000);
      await redis.start();
      await h.sleep(5000);
      redis.kill('SIGSTOP');
      await h.sleep(2000);
      redis.kill('SIGCONT');
    })();
    const [r] = await Promise.all([run, events]);
    const st = await a.emu.stats();
    t.diagnostic(`${JSON.stringify({ ok: r.ok, codes: r.codes, seconds: r.seconds, register: st.byAction.RegisterDevice, throttled: st.throttled, rate: (st.byAction.RegisterDevice / r.seconds).toFixed(1) })}`);
    assert.strictEqual(r.ok, N, `every device got its triple: ${JSON.stringify(r.codes)}`);
    // alone, each broker paces its share (a third, less 5%) unsynchronised with the others;
    // measured: zero throttling (a throttled call would be retried: the bound is loose)
    assert.ok(st.throttled <= N / 100, `${st.throttled} calls throttled`);
    for (const e of brokers) assert.strictEqual(e.broker.proc.exitCode, null, 'the broker runs');

    // wait for the brokers to be back (their reconnect backs off up to 2 s)
    for (let i = 0; i < 100 && !brokers.every((e) => (e.broker.log().match(/shared state: Redis back/g) || []).length >= 2); i++) await h.sleep(100);
    await h.sleep(1200);
    for (const e of brokers) {
      const log = e.broker.log();
      const down = log.match(/mosquitto_bootstrap: shared state: Redis unreachable \([^\n]*\); this broker goes on alone[^\n]*/g) || [];
      const back = log.match(/mosquitto_bootstrap: shared state: Redis back[^\n]*/g) || [];
      assert.strictEqual(down.length, 2, `one line per outage:\n${down.join('\n')}`);
      assert.strictEqual(back.length, 2, `one line per return:\n${back.join('\n')}`);
      // the share of the quota while alone: a third, the brokers last seen alive being three,
      // less the 5% margin (30 / 3 x 0.95, paced at 97%)
      assert.match(down[0], /32% of each quota \(RegisterDevice 9\.2\/s/);
      const m = await h.readMetrics(e.port, ['-u', 'ops', '-P', 'ops-password']);
      assert.strictEqual(m['shared/outages'], 2);
      assert.strictEqual(m['shared/fallback'], 0, 'sharing again');
      assert.strictEqual(m['shared/brokers'], 3);
      t.diagnostic(`${down.map((l) => l.replace(/^.*Redis unreachable/, 'unreachable').slice(0, 120)).join(' | ')}`);
    }
    // what Redis lost with its restart is rebuilt: the brokers are listed again
    assert.strictEqual(Number(await redis.cli('ZCARD', 'mosquitto-bootstrap:brokers')), 3);
    for (const e of brokers) await e.assertLogClean();
  } finally {
    redis.kill('SIGCONT');
    await service.stop();
  }
});
