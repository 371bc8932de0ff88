'use strict';
// The device library (device/, docs/device-library.md) end to end: examples/device, built on
// it, bootstraps through a real broker over plain TCP with MQTT 3.1.1, in JSON and in CBOR
// (--cbor), and opens its sealed triple; and with a forger on an open broker, in CBOR, it
// refuses a triple in the clear, one sealed with another key, for another device, for an
// earlier request (replayed) and a truncated genuine one, and stores only the genuine one.
// CBOR is written and read here by a few lines of this file, not by the library.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

const DEVICE = process.env.BOOTSTRAP_DEVICE;

// RFC 8949 for what the contract uses: maps, text, bytes, booleans, small unsigned integers
function cbor(v) {
  const head = (major, n) => (n < 24 ? Buffer.from([major << 5 | n]) : n < 256 ? Buffer.from([major << 5 | 24, n])
    : Buffer.from([major << 5 | 25, n >> 8, n & 255]));
  if (v === true) return Buffer.from([0xf5]);
  if (v === false) return Buffer.from([0xf4]);
  if (typeof v === 'number') return head(0, v);
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, v.length), v]);
  if (typeof v === 'string') return Buffer.concat([head(3, Buffer.byteLength(v)), Buffer.from(v)]);
  const entries = Object.entries(v);
  return Buffer.concat([head(5, entries.length), ...entries.map(([k, x]) => Buffer.concat([cbor(k), cbor(x)]))]);
}

// a map of text strings (the device's request), with one-byte or two-byte lengths
function cborTextMap(b) {
  let at = 0;
  const len = () => {
    const n = b[at++] & 31;
    if (n < 24) return n;
    if (n === 24) return b[at++];
    throw new Error('unexpected length form');
  };
  assert.strictEqual(b[0] >> 5, 5, 'a map');
  const count = len();
  const text = () => {
    assert.strictEqual(b[at] >> 5, 3, 'a text string');
    const n = len();
    const s = b.subarray(at, at + n).toString();
    at += n;
    return s;
  };
  const out = {};
  for (let i = 0; i < count; i++) out[text()] = text();
  assert.strictEqual(at, b.length, 'no trailing bytes');
  return out;
}

function sealCbor(key, triple) {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-128-gcm', key, iv);
  const ct = Buffer.concat([c.update(cbor(triple)), c.final()]);
  return cbor({ success: true, sealed: { alg: 'A128GCM', iv, ct, tag: c.getAuthTag() } });
}

function runDevice(port, env, id, out, extra = []) {
  return h.run(DEVICE, ['-h', '127.0.0.1', '-p', String(port), '-k', env.productKey, '-s', env.productSecretFile, '-d', id,
    '-o', out, ...extra], { timeoutMs: 30000 });
}

test('examples/device on the library bootstraps in JSON and in CBOR (MQTT 3.1.1, plain TCP) and stores the sealed triple', async () => {
  assert.ok(DEVICE && fs.existsSync(DEVICE), 'BOOTSTRAP_DEVICE must name the built example');
  await h.withEnv({}, async (env) => {
    for (const [id, extra] of [['dev-lib-json', []], ['dev-lib-cbor', ['--cbor']]]) {
      const out = path.join(env.dir, id + '.triple');
      const r = await runDevice(env.port, env, id, out, extra);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /ignored/);
      const triple = JSON.parse(fs.readFileSync(out, 'utf8'));
      const record = env.emu.device(env.productKey, id);
      assert.deepStrictEqual(Object.keys(triple), ['ProductKey', 'DeviceName', 'DeviceSecret', 'IotId']);
      assert.strictEqual(triple.DeviceName, id);
      assert.strictEqual(triple.ProductKey, env.productKey);
      assert.strictEqual(triple.IotId, record.IotId);
      h.assertSameSecret(triple.DeviceSecret, record.DeviceSecret, `${id}: DeviceSecret`);
      env.secrets.push(record.DeviceSecret);
    }
    // the broker saw one request of each format, from MQTT 3.1.1 clients
    assert.match(env.broker.log(), /New client connected from .* as dev-lib-cbor \(p2, /);
    assert.match(env.broker.log(), /New client connected from .* as dev-lib-json \(p2, /);
  });
});

test('examples/device --cbor refuses forged, truncated and replayed CBOR replies and keeps waiting for the genuine one', async () => {
  // no plugin: this test plays the bootstrap service and a forger on an open broker
  await h.withEnv({ noPlugin: true }, async (env) => {
    const id = 'dev-lib-forge';
    const watcher = await mqtt.connect(env.port, { clientId: 'service' });
    await watcher.subscribe('bootstrap/register/cbor', 1);
    const out = path.join(env.dir, id + '.triple');
    const device = runDevice(env.port, env, id, out, ['--cbor']);
    const req = cborTextMap((await watcher.waitFor(() => true, 10000)).payload);
    assert.strictEqual(req.deviceId, id);
    assert.strictEqual(req.productKey, env.productKey);
    assert.strictEqual(req.signMethod, 'hmacsha256');
    assert.strictEqual(req.sign, crypto.createHmac('sha256', env.productSecret)
      .update(`deviceName${id}productKey${env.productKey}random${req.random}`).digest('hex'));
    const key = h.sealKey({ productSecret: env.productSecret, random: req.random, productKey: env.productKey, deviceId: id });
    const fake = { ProductKey: env.productKey, DeviceName: id, DeviceSecret: 'f'.repeat(32), IotId: 'forged' };
    const genuine = { ProductKey: env.productKey, DeviceName: id, DeviceSecret: crypto.randomBytes(16).toString('hex'), IotId: 'genuine-iot-id' };
    const earlier = h.sealKey({ productSecret: env.productSecret, random: 'e'.repeat(16), productKey: env.productKey, deviceId: id });
    const forgeries = [
      cbor({ success: true, data: fake }),                                   // in the clear
      sealCbor(crypto.randomBytes(16), fake),                                // another key
      sealCbor(key, { ...fake, DeviceName: 'dev-other-1' }),                 // another device
      sealCbor(key, { ...fake, ProductKey: 'a1OtherProduct' }),              // another product
      sealCbor(earlier, genuine),                                            // replayed: sealed for an earlier random
    ];
    const sealedGenuine = sealCbor(key, genuine);
    const truncated = [sealedGenuine.subarray(0, sealedGenuine.length - 1), sealedGenuine.subarray(0, 20)];
    const forger = await mqtt.connect(env.port, { clientId: 'forger' });
    for (const f of [...forgeries, ...truncated]) await forger.publish(`bootstrap/reply/${id}/cbor`, f, { qos: 1 });
    // a JSON reply on the JSON topic: a CBOR device does not listen there
    await forger.publish(`bootstrap/reply/${id}`, JSON.stringify({ success: true, data: fake }), { qos: 1 });
    await h.sleep(300);
    await forger.publish(`bootstrap/reply/${id}/cbor`, sealedGenuine, { qos: 1 });
    const r = await device;
    await forger.disconnect();
    await watcher.disconnect();
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual((r.stderr.match(/ignored a success reply/g) || []).length, forgeries.length, 'each forgery was noticed');
    assert.strictEqual((r.stderr.match(/ignored a malformed reply/g) || []).length, truncated.length, 'each truncated reply was ignored');
    assert.deepStrictEqual(JSON.parse(fs.readFileSync(out, 'utf8')), genuine);
    env.secrets.push(genuine.DeviceSecret);
  });
});
