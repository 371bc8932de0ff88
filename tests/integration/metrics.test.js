'use strict';
// $SYS/broker/bootstrap/ metrics: readable by the operator under acl strict, and the numbers
// move with the traffic.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

const readMetrics = h.readMetrics;

test('the operator reads the counters, others cannot, and the numbers move with traffic', async () => {
  const dir = h.makeWorkdir();
  const pw = await h.passwordFile(dir, { ops: 'ops-password' });
  try {
    // anonymous devices, and the operator with a password
    await h.withEnv({ pluginOptions: { metrics_interval: 1, operator: 'ops' }, extraConfig: `password_file ${pw}\nallow_anonymous true` }, async (env) => {
      const ops = ['-u', 'ops', '-P', 'ops-password'];
      await h.sleep(1200);
      const before = await readMetrics(env.port, ops);
      // idle: the topics there from the start, none of the counters that have not moved (but
      // queue/inflight if an interval ended while the start-up check was on the wire: it moved)
      assert.deepStrictEqual(Object.keys(before).filter((k) => k !== 'queue/inflight').sort(),
        ['platform/credentials', 'platform/signature', 'platform/status', 'requests']);
      assert.strictEqual(before.requests, 0);
      assert.deepStrictEqual(await readMetrics(env.port, []), {}, 'an anonymous client read the metrics');

      for (const id of ['dev-m-001', 'dev-m-002']) assert.strictEqual((await env.rr(id)).reply.success, true);
      assert.strictEqual((await env.rr('dev-m-001')).reply.success, true);
      assert.strictEqual((await h.rr(env.port, { id: 'dev-m-003', message: JSON.stringify({ deviceId: 'dev-m-003' }) })).reply.code, 'unauthorized');
      await h.sleep(1200);
      const after = await readMetrics(env.port, ops);
      assert.strictEqual(after.requests, 4);
      assert.strictEqual(after['replies/ok'], 3);
      assert.strictEqual(after['replies/unauthorized'], 1);
      // and per product: this broker's one
      assert.strictEqual(after[`products/${h.PRODUCT_KEY}/replies/ok`], 3);
      assert.strictEqual(after[`products/${h.PRODUCT_KEY}/replies/unauthorized`], 1);
      assert.strictEqual(after['platform/RegisterDevice/ok'], 2);
      assert.strictEqual(after['platform/RegisterDevice/exists'], 1);
      assert.strictEqual(after['platform/QueryDeviceDetail/ok'], 1);
      assert.strictEqual(after['platform/calls'], 4);
      // a counter appears after its first event; the others still do not
      assert.ok('latency/p50_ms' in after, 'latency published once there was one');
      for (const k of ['replies/platform_auth', 'platform/RegisterDevice/throttled', 'platform/retries', 'dropped/rate_limited']) {
        assert.ok(!(k in after), `${k} has not moved, yet is published`);
      }
      assert.ok(!('queue/outstanding' in after) || after['queue/outstanding'] === 0);
      // once published, a topic stays: the latency of intervals without requests is 0
      await h.sleep(2200);
      const later = await readMetrics(env.port, ops);
      assert.strictEqual(later['latency/p50_ms'], 0);
      assert.strictEqual(later['replies/ok'], 3);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a client refused $SYS/broker/bootstrap/ is logged once per reason, naming what to set', async () => {
  const sysSub = (env, auth, topic) => h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), ...auth, '-t', topic, '-W', '1'], { timeoutMs: 5000 });
  const said = (env, re) => env.broker.log().split('\n').filter((l) => re.test(l));
  // no operator named: refused (strict ACL, the default), said once with the option to set
  await h.withEnv({}, async (env) => {
    await sysSub(env, [], '$SYS/broker/bootstrap/#');
    await sysSub(env, [], '$SYS/broker/bootstrap/#');
    await sysSub(env, [], '$SYS/#');
    await h.waitForLog(env, /refused '\$SYS\//, 5000);
    await h.sleep(300); // a second line, had there been one, would be there too
    const lines = said(env, /refused '\$SYS\//);
    assert.strictEqual(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], /plugin_opt_operator/);
    assert.match(lines[0], /docs\/operating\.md#metrics/);
  });
  // an operator named: another client is told to log in as it; the operator asking for all of
  // $SYS is told to subscribe to its part; each once
  const dir = h.makeWorkdir();
  const pw = await h.passwordFile(dir, { ops: 'ops-password' });
  try {
    await h.withEnv({ pluginOptions: { operator: 'ops' }, extraConfig: `password_file ${pw}\nallow_anonymous true` }, async (env) => {
      for (let i = 0; i < 2; i++) await sysSub(env, ['-i', 'nosy\u00e9client'], '$SYS/broker/bootstrap/#');
      for (let i = 0; i < 2; i++) await sysSub(env, ['-u', 'ops', '-P', 'ops-password'], '$SYS/#');
      await h.waitForLog(env, /refused '\$SYS\/#'/, 5000);
      await h.waitForLog(env, /refused '\$SYS\/broker\/bootstrap\/#'/, 5000);
      await h.sleep(300);
      const other = said(env, /refused '\$SYS\/broker\/bootstrap\/#'/);
      assert.strictEqual(other.length, 1, other.join('\n'));
      assert.match(other[0], /only the user 'ops' \(plugin_opt_operator\).*gave no username/);
      assert.match(other[0], /client 'nosy\\xc3\\xa9client'/, 'the client id escaped');
      const wide = said(env, /refused '\$SYS\/#'/);
      assert.strictEqual(wide.length, 1, wide.join('\n'));
      assert.match(wide[0], /subscribe to '\$SYS\/broker\/bootstrap\/#'/);
      assert.strictEqual(said(env, /\(said once\)/).length, 2);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
