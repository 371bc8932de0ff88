'use strict';
// Only the device that asked can read its triple: every attack of issue 9 as a test with real
// clients. Sealed replies (nobody without the ProductSecret reads or forges a triple) and bound
// delivery (a reply goes to the requesting connection or nowhere).
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

const DEVICE = process.env.BOOTSTRAP_DEVICE;
const LATENCY_MS = 1500;

function audit(env) {
  const f = path.join(env.dir, 'audit.log');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}

async function waitFor(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await h.sleep(25);
  }
}

// A plain-TCP relay between device and broker that keeps every byte in both directions.
async function recordingRelay(brokerPort) {
  const bytes = [];
  const server = net.createServer((down) => {
    const up = net.connect(brokerPort, '127.0.0.1');
    down.on('data', (d) => { bytes.push(Buffer.from(d)); up.write(d); });
    up.on('data', (d) => { bytes.push(Buffer.from(d)); down.write(d); });
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, seen: () => Buffer.concat(bytes), close: () => new Promise((r) => server.close(r)) };
}

function runDevice(port, env, id, out, extra = []) {
  return h.run(DEVICE, ['-h', '127.0.0.1', '-p', String(port), '-k', env.productKey, '-s', env.productSecretFile, '-d', id, '-o', out, ...extra], { timeoutMs: 30000 });
}

function assertStoredTriple(env, out, id) {
  const triple = JSON.parse(fs.readFileSync(out, 'utf8'));
  const device = env.emu.device(env.productKey, id);
  assert.deepStrictEqual(Object.keys(triple), ['ProductKey', 'DeviceName', 'DeviceSecret', 'IotId']);
  assert.strictEqual(triple.DeviceName, id);
  assert.strictEqual(triple.ProductKey, env.productKey);
  assert.strictEqual(triple.IotId, device.IotId);
  h.assertSameSecret(triple.DeviceSecret, device.DeviceSecret, 'stored DeviceSecret');
  assert.strictEqual(fs.statSync(out).mode & 0o777, 0o600);
}

test('plain TCP: a relay recording every byte of a bootstrap by examples/device sees no DeviceSecret; the device stores the right triple', async () => {
  await h.withEnv({}, async (env) => {
    const relay = await recordingRelay(env.port);
    try {
      const out = path.join(env.dir, 'dev-relay-1.triple');
      const r = await runDevice(relay.port, env, 'dev-relay-1', out);
      assert.strictEqual(r.code, 0, r.stderr);
      assertStoredTriple(env, out, 'dev-relay-1');
      const seen = relay.seen();
      assert.ok(seen.includes('"sealed"') && seen.includes('dev-relay-1'), 'the relay did carry the bootstrap');
      const secret = env.emu.device(env.productKey, 'dev-relay-1').DeviceSecret;
      assert.ok(!seen.includes(secret), 'the DeviceSecret crossed the wire in the clear');
      assert.ok(!seen.includes(env.productSecret), 'the ProductSecret crossed the wire');
    } finally {
      await relay.close();
    }
  });
});

// Sealing for the tests that play a forger: the contract, computed here independently.
function sealTriple(key, triple) {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-128-gcm', key, iv);
  const ct = Buffer.concat([c.update(JSON.stringify(triple)), c.final()]);
  return JSON.stringify({ success: true, sealed: { alg: 'A128GCM', iv: iv.toString('base64'), ct: ct.toString('base64'), tag: c.getAuthTag().toString('base64') } });
}

test('examples/device rejects forged success replies (in the clear, wrong key, another device) and keeps waiting for the genuine one', async () => {
  // no plugin: this test plays the bootstrap service and a forger on an open broker
  await h.withEnv({ noPlugin: true }, async (env) => {
    const id = 'dev-forge-1';
    const watcher = h.sub(env.port, { id: 'service', topics: ['bootstrap/register'] });
    await watcher.ready;
    const out = path.join(env.dir, id + '.triple');
    const device = runDevice(env.port, env, id, out);
    const [req] = await watcher.waitFor(1, 10000);
    const request = JSON.parse(req.payload);
    const fake = { ProductKey: env.productKey, DeviceName: id, DeviceSecret: 'f'.repeat(32), IotId: 'forged' };
    const genuine = { ProductKey: env.productKey, DeviceName: id, DeviceSecret: crypto.randomBytes(16).toString('hex'), IotId: 'genuine-iot-id' };
    const key = h.sealKey({ productSecret: env.productSecret, random: request.random, productKey: env.productKey, deviceId: id });
    const forgeries = [
      JSON.stringify({ success: true, data: fake }),
      sealTriple(crypto.randomBytes(16), fake),
      sealTriple(h.sealKey({ productSecret: 'not-the-product-secret', random: request.random, productKey: env.productKey, deviceId: id }), fake),
      sealTriple(key, { ...fake, DeviceName: 'dev-other-1' }),
      sealTriple(key, { ...fake, ProductKey: 'a1OtherProduct' }),
      JSON.stringify({ success: true, sealed: { alg: 'A128GCM', iv: 'AAAA', ct: 'AAAA', tag: 'AAAA' } }),
    ];
    for (const f of forgeries) assert.strictEqual((await h.pub(env.port, { id: 'forger', topic: `bootstrap/reply/${id}`, message: f })).code, 0);
    // not replies at all: ignored too, and none of them ends the wait
    const malformed = ['{}', '{"success":"true","data":{}}', '{"success":false}', 'not json'];
    for (const f of malformed) assert.strictEqual((await h.pub(env.port, { id: 'forger', topic: `bootstrap/reply/${id}`, message: f })).code, 0);
    await h.sleep(300);
    assert.strictEqual((await h.pub(env.port, { id: 'service-reply', topic: `bootstrap/reply/${id}`, message: sealTriple(key, genuine) })).code, 0);
    const r = await device;
    await watcher.messages();
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual((r.stderr.match(/ignored a success reply/g) || []).length, forgeries.length, 'each forgery was noticed');
    assert.strictEqual((r.stderr.match(/ignored a malformed reply/g) || []).length, 3, 'each malformed reply was ignored');
    const stored = JSON.parse(fs.readFileSync(out, 'utf8'));
    assert.deepStrictEqual(stored, genuine);
    env.secrets.push(genuine.DeviceSecret);
  });
});

test('examples/device with only forgeries: it stores nothing and says so', async () => {
  await h.withEnv({ noPlugin: true }, async (env) => {
    const id = 'dev-forge-2';
    const watcher = h.sub(env.port, { id: 'service', topics: ['bootstrap/register'] });
    await watcher.ready;
    const out = path.join(env.dir, id + '.triple');
    const device = runDevice(env.port, env, id, out, ['-w', '3']);
    await watcher.waitFor(1, 10000);
    await h.pub(env.port, { id: 'forger', topic: `bootstrap/reply/${id}`, message: JSON.stringify({ success: true, data: { ProductKey: env.productKey, DeviceName: id, DeviceSecret: 'x'.repeat(32), IotId: 'i' } }) });
    const r = await device;
    await watcher.messages();
    assert.notStrictEqual(r.code, 0);
    assert.match(r.stderr, /ignored a success reply/);
    assert.ok(!fs.existsSync(out), 'a forged triple was stored');
  });
});

test('acl defer beside an allow-all acl_file: forgers flooding the reply topics (below them, retained, as wills) reach nobody; the device stores its genuine triple', async () => {
  const dir = h.makeWorkdir();
  h.giveToBroker(dir);
  try {
    const acl = h.aclFileAllowingAll(dir);
    await h.withEnv({ pluginOptions: { acl: 'defer' }, extraConfig: `acl_file ${acl}` }, async (env) => {
      const id = 'dev-flood-1';
      const fake = JSON.stringify({ success: true, data: { ProductKey: env.productKey, DeviceName: id, DeviceSecret: 'e'.repeat(32), IotId: 'x' } });
      // a retained forgery and a will on the reply topic, set up before the device comes
      const retained = await h.pub(env.port, { id: 'forger-r', topic: `bootstrap/reply/${id}`, message: fake, extra: ['-r', '-V', 'mqttv5'] });
      assert.match(retained.stderr + retained.stdout, /not authorized/i, 'a retained forgery was accepted');
      await h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), '-i', 'forger-w', '-t', 'x/y', '-W', '1',
        '--will-topic', `bootstrap/reply/${id}/w`, '--will-payload', fake]);
      let flooding = true;
      const flood = (async () => {
        let n = 0;
        while (flooding) {
          const topic = [`bootstrap/reply/${id}`, `bootstrap/reply/${id}/resp`, `bootstrap/reply/${id}/a/b`][n++ % 3];
          await h.pub(env.port, { id: 'forger-' + n, topic, message: fake, qos: 0 });
        }
        return n;
      })();
      const out = path.join(env.dir, id + '.triple');
      const r = await runDevice(env.port, env, id, out);
      flooding = false;
      const sent = await flood;
      assert.ok(sent >= 2, 'the forger kept publishing while the device bootstrapped');
      assert.strictEqual(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /ignored a success reply/, 'a forgery reached the device');
      assertStoredTriple(env, out, id);
      // nothing was retained for later subscribers either
      const later = await h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), '-i', id, '-t', `bootstrap/reply/${id}/#`, '-t', `bootstrap/reply/${id}`, '-W', '1', '-v']);
      assert.strictEqual(later.stdout.trim(), '', 'a forged reply was retained');
      assert.match(env.broker.log(), /Denied PUBLISH from forger-/);
      // a will on a reply topic, and one below it, delivered by a dropped connection: nobody gets it
      const watcher = await mqtt.connect(env.port, { clientId: 'dev-flood-2', keepAlive: 0 });
      await watcher.subscribe(['bootstrap/reply/dev-flood-2', 'bootstrap/reply/dev-flood-2/#'].map((t) => [t, 1]));
      for (const topic of ['bootstrap/reply/dev-flood-2', 'bootstrap/reply/dev-flood-2/w']) {
        const forger = await mqtt.connect(env.port, { clientId: 'forger-will', keepAlive: 0, will: { topic, payload: fake, qos: 1, retain: true } });
        forger.destroy();
        await forger.closed;
      }
      await h.sleep(700);
      assert.strictEqual(watcher.messages.length, 0, 'a forged will reached the device');
      await watcher.disconnect();
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// The four takeover variants: who connects with the device's client id while its request waits.
const takeovers = [
  { name: 'MQTT 3.1.1, clean, subscribed', args: (id) => ['-V', 'mqttv311', '-t', `bootstrap/reply/${id}`] },
  { name: 'MQTT 3.1.1, persistent, not subscribed', args: () => ['-V', 'mqttv311', '-c', '-q', '1', '-t', 'nothing/here'] },
  { name: 'MQTT 5, clean, not subscribed', args: () => ['-V', 'mqttv5', '-t', 'nothing/here'] },
  { name: 'MQTT 5, persistent, subscribed', args: (id) => ['-V', 'mqttv5', '-c', '-q', '1', '-x', '600', '-t', `bootstrap/reply/${id}/#`] },
];

test('client-id takeover while the platform answers: no variant receives the triple; audited as connection_closed', async () => {
  await h.withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
    env.emu.setLatency(LATENCY_MS);
    let n = 0;
    for (const v of takeovers) {
      const id = `dev-take-${++n}`;
      const calls = env.emu.stats().requests;
      const victim = env.rr(id, { timeoutS: 5 });
      await waitFor(() => env.emu.stats().requests > calls, 5000, `${id}'s request at the platform`);
      const thief = await h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), '-i', id, '-W', String((LATENCY_MS + 1500) / 1000), '-v', ...v.args(id)], { timeoutMs: 10000 });
      const r = await victim;
      assert.ok(!r.reply || !r.reply.success, `${v.name}: the taken-over device still got a reply`);
      assert.strictEqual(thief.stdout.trim(), '', `${v.name}: the thief received something`);
      await waitFor(() => audit(env).some((e) => e.deviceId === id), 5000, `${id}'s audit line`);
      if (!env.emu.device(env.productKey, id)) console.log(env.broker.log().split('\n').filter((l) => l.includes(id)).join('\n'));
      const secret = env.emu.device(env.productKey, id).DeviceSecret;
      assert.ok(!thief.stdout.includes(secret), `${v.name}: the thief read the DeviceSecret`);
      const lines = audit(env).filter((e) => e.deviceId === id);
      assert.deepStrictEqual(lines.map((e) => e.code), ['connection_closed'], `${v.name}: one audit line, connection_closed`);
    }
    // the genuine device asks again afterwards and gets its triple
    env.emu.setLatency(0);
    const again = await env.rr('dev-take-1');
    assert.strictEqual(again.reply.success, true);
    h.assertSameSecret(again.reply.data.DeviceSecret, env.emu.device(env.productKey, 'dev-take-1').DeviceSecret, 'DeviceSecret');
  });
});

test('persistent-session theft: a device that drops off before its reply; whoever resumes the session gets nothing, and mosquitto.db holds no triple', async () => {
  await h.withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' }, extraConfig: 'persistence true\npersistence_location $DIR/\nautosave_interval 1' }, async (env) => {
    env.emu.setLatency(LATENCY_MS);
    const id = 'dev-persist-1';
    const p = await h.pub(env.port, { id, message: env.request(id), extra: ['-c', '-V', 'mqttv5', '-x', '600'] });
    assert.strictEqual(p.code, 0, p.stderr);
    await waitFor(() => audit(env).some((e) => e.deviceId === id), LATENCY_MS + 5000, 'the answer');
    assert.strictEqual(audit(env).find((e) => e.deviceId === id).code, 'connection_closed');
    const thief = await h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), '-i', id, '-c', '-V', 'mqttv5', '-x', '600', '-q', '1',
      '-t', `bootstrap/reply/${id}`, '-W', '2', '-v']);
    assert.strictEqual(thief.stdout.trim(), '', 'the resumed session received something');
    await h.sleep(1500); // an autosave
    const db = path.join(env.dir, 'mosquitto.db');
    assert.ok(fs.existsSync(db), 'the broker persisted its state');
    const stored = fs.readFileSync(db);
    assert.ok(!stored.includes(env.emu.device(env.productKey, id).DeviceSecret) && !stored.includes('"sealed"'), 'mosquitto.db holds the reply');
  });
});

test('examples/device whose client id is taken over while it waits connects again, asks again and gets its triple', async () => {
  await h.withEnv({}, async (env) => {
    env.emu.setLatency(1500);
    const id = 'dev-retake-1';
    const out = path.join(env.dir, id + '.triple');
    const calls = env.emu.stats().requests;
    const device = runDevice(env.port, env, id, out);
    await waitFor(() => env.emu.stats().requests > calls, 5000, 'the device\'s request at the platform');
    // one takeover, then the thief leaves
    const thief = await h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), '-i', id, '-t', 'nothing/here', '-W', '1']);
    assert.strictEqual(thief.stdout.trim(), '');
    env.emu.setLatency(0);
    const r = await device;
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /connection lost before the answer; asking again/);
    assertStoredTriple(env, out, id);
  });
});
