'use strict';
// examples/multi-broker/run-local, as docs/multi-broker.md tells users to run it: Redis from the example's
// redis.conf (its ACL user, its append-only file), three brokers from mosquitto.conf.example with
// the Redis lines switched on, HAProxy from the example's haproxy.cfg. What it shows must be
// what it says: a replay refused by the other brokers, one RegisterDevice for a device asked on
// two brokers at once, 300 devices through HAProxy, the brokers alone while Redis is down and
// back by themselves, and a random kept across Redis's restart.
const test = require('node:test');
const assert = require('assert');
const path = require('path');
const h = require('./lib/harness');
const docs = require('./lib/docs');

test('examples/multi-broker/run-local runs and shows what docs/multi-broker.md says', async () => {
  // the command docs/multi-broker.md gives (BOOTSTRAP_PLUGIN, which it mentions, comes from ctest)
  const block = docs.runBy('integration_shared_example', 'run-local');
  assert.match(block.text, /^examples\/multi-broker\/run-local\s/);
  const script = path.join(__dirname, '../../examples/multi-broker/run-local');
  const r = await h.run(script, [], { timeoutMs: 240000 });
  const out = r.stdout + r.stderr;
  assert.strictEqual(r.code, 0, out);
  h.assertNoSanitizerReport(out);
  assert.strictEqual((out.match(/shared state: connected to redis 7\.[0-9.]+ at redis:\/\/127\.0\.0\.1:\d+\/0/g) || []).length, 3, out);
  for (const d of ['dev-0101', 'dev-0102', 'dev-0103']) assert.match(out, new RegExp(`${d}: success`));
  assert.match(out, /broker1: success[^\n]*\n\s*broker2: unauthorized\n\s*broker3: unauthorized/);
  const before = JSON.parse(/platform calls before: (\{[^}]*\})/.exec(out)[1]);
  const after = JSON.parse(/platform calls after: +(\{[^}]*\})/.exec(out)[1]);
  assert.strictEqual((after.RegisterDevice || 0) - (before.RegisterDevice || 0), 1, 'one RegisterDevice for the device asked twice');
  assert.strictEqual((after.QueryDeviceDetail || 0) - (before.QueryDeviceDetail || 0), 1);
  assert.match(out, /300 of 300 got their triple/);
  assert.match(out, /throttled 0\n\n== dev-0202/, 'the 300 stayed within the quota');
  assert.match(out, /dev-0401 through HAProxy: success/);
  assert.strictEqual((out.match(/shared state: Redis unreachable/g) || []).length, 3);
  assert.strictEqual((out.match(/shared state: Redis back/g) || []).length, 3);
  assert.match(out, /dev-0202 replayed to broker3: unauthorized/, 'the random survived Redis\'s restart');
  assert.match(out, /\d+ mosquitto-bootstrap:replay:<ProductKey>:<deviceId>:<random>/);
});
