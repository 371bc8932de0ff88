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
      assert.strictEqual(before.requests, 0);
      assert.ok('replies/ok' in before && 'platform/RegisterDevice/ok' in before && 'queue/inflight' in before && 'latency/p99_ms' in before);
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
      assert.strictEqual(after['queue/outstanding'], 0);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
