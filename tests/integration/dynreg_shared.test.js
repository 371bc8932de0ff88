'use strict';
// Link SDK dynamic registration (issue 22) in the multi-broker mode: two brokers, one Redis, one
// account. A random spent on one broker, by a dynreg CONNECT or by a bootstrap-topic request, is
// refused on the other at CONNACK with no platform call; devices spread over both brokers each
// get the platform's own DeviceSecret, one registration per device.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const dr = require('./lib/dynreg_client');
const { dynregEnv } = require('./lib/dynreg_env');

const EXAMPLE_ACL = /^user bootstrap on >\S+ (.*)$/m.exec(fs.readFileSync(path.join(__dirname, '../../examples/multi-broker/redis.conf'), 'utf8'))[1];

// Refused at CONNACK, or (the random spent on another broker is found in Redis after the
// CONNACK, docs/link-sdk.md) told unauthorized on /ext/register and closed inside the window.
function assertReplayRefused(r, what) {
  console.log(`${what}: CONNACK ${r.connack}${r.connack === 0 ? `, then ${JSON.stringify(r.errorPayload && r.errorPayload.code)} and closed by the ${r.closedBy} after ${r.elapsedMs} ms` : ''}`);
  assert.strictEqual(r.deviceSecret, null, `${what}: served`);
  if (r.connack === 0) {
    assert.strictEqual(r.errorPayload && r.errorPayload.code, 'unauthorized', `${what}: ${JSON.stringify(r.errorPayload)}`);
    assert.strictEqual(r.closedBy, 'broker');
    assert.ok(r.elapsedMs < 5000);
  } else {
    assert.strictEqual(r.connack, 5);
  }
}

test('dynreg across two brokers sharing Redis: replays refused everywhere, one registration per device', async (t) => {
  const prefix = 'fleet-dynreg';
  const password = 'redis-' + crypto.randomBytes(12).toString('hex');
  const redis = await h.startRedis({ user: 'bootstrap', password, aclRules: EXAMPLE_ACL.replace(/~mosquitto-bootstrap:\*/, `~${prefix}:*`) });
  const dir = h.makeWorkdir();
  const pwFile = path.join(dir, 'redis-password');
  fs.writeFileSync(pwFile, `username = bootstrap\npassword = ${password}\n`, { mode: 0o600 });
  h.giveToBroker(pwFile);
  const common = { redis_url: redis.unixUrl, redis_password_file: pwFile, redis_prefix: prefix };
  const a = await dynregEnv({ pluginOptions: common });
  const b = await dynregEnv({ shareWith: a, pluginOptions: common });
  t.after(async () => {
    await b.stop();
    await a.stop();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (const env of [a, b]) {
    env.secrets.push(password);
    for (let i = 0; i < 100 && !/shared state: connected to redis/.test(env.broker.log()); i++) await h.sleep(50);
    assert.match(env.broker.log(), /mosquitto_bootstrap: shared state: connected to redis/);
  }
  const calls = () => { const s = a.emu.stats().byAction; return (s.RegisterDevice || 0) + (s.QueryDeviceDetail || 0); };

  // a dynreg CONNECT served on A, replayed on B
  const cred = dr.credentials({ productKey: a.productKey, deviceName: 'dev-shared-01', productSecret: a.productSecret });
  const first = await dr.register(a.tlsPort, { ca: a.ca, servername: 'localhost', ...cred });
  assert.strictEqual(first.connack, 0);
  assert.ok(first.deviceSecret, 'served on A');
  h.assertSameSecret(first.deviceSecret, a.emu.device(a.productKey, 'dev-shared-01').DeviceSecret, 'DeviceSecret');
  const n = calls();
  const replay = await dr.register(b.tlsPort, { ca: b.ca, servername: 'localhost', ...cred });
  assertReplayRefused(replay, 'the replay on B');
  assert.strictEqual(calls(), n, 'a platform call for a replay');

  // a random spent on the bootstrap topic on A is spent for dynreg on B too
  const random = String(crypto.randomBytes(4).readUInt32BE(0));
  const r = await h.rr(a.port, { id: 'dev-shared-02', message: a.request('dev-shared-02', { random }) });
  assert.ok(r.reply && r.reply.success, `the bootstrap request on A: ${r.stdout}`);
  const m = calls();
  const cross = await b.register('dev-shared-02', { random });
  assertReplayRefused(cross, 'a random spent on the bootstrap topic, for dynreg on B');
  assert.strictEqual(calls(), m);

  // 40 new devices, each connecting to A and to B at once (two attempts, two randoms): one
  // registration per device, every secret the platform's
  const ids = Array.from({ length: 40 }, (_, i) => `dev-both-${String(i).padStart(3, '0')}`);
  const before = a.emu.stats().byAction.RegisterDevice || 0;
  const results = await Promise.all(ids.flatMap((id) => [a.register(id), b.register(id)]));
  for (let i = 0; i < ids.length; i++) {
    const got = [results[2 * i], results[2 * i + 1]].filter((x) => x.deviceSecret);
    assert.ok(got.length >= 1, `${ids[i]}: served by neither broker (${results[2 * i].connack}/${results[2 * i + 1].connack})`);
    for (const x of got) h.assertSameSecret(x.deviceSecret, a.emu.device(a.productKey, ids[i]).DeviceSecret, `${ids[i]} DeviceSecret`);
  }
  const registered = (a.emu.stats().byAction.RegisterDevice || 0) - before;
  console.log(`40 devices on two brokers at once: ${results.filter((x) => x.deviceSecret).length} of 80 connections served, ${registered} RegisterDevice calls`);
  assert.ok(registered <= ids.length + 5, `${registered} RegisterDevice calls for ${ids.length} devices`);
  await a.assertLogClean();
  await b.assertLogClean();
});
