'use strict';
// examples/device: a real device program bootstraps through the broker, keeps its triple in a
// 0600 file, and prints the IoT Platform connection parameters derived from it.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

const DEVICE = process.env.BOOTSTRAP_DEVICE;

test('bootstrap_device gets its triple, stores it 0600 and prints how to connect', async () => {
  assert.ok(DEVICE && fs.existsSync(DEVICE), 'BOOTSTRAP_DEVICE must name the built example');
  await h.withEnv({}, async (env) => {
    const out = path.join(env.dir, 'dev-ex-01.triple');
    const r = await h.run(DEVICE, ['-h', '127.0.0.1', '-p', String(env.port), '-k', h.PRODUCT_KEY, '-s', env.productSecretFile,
      '-d', 'dev-ex-01', '-o', out]);
    assert.strictEqual(r.code, 0, r.stderr);
    const triple = JSON.parse(fs.readFileSync(out, 'utf8'));
    const device = env.emu.device(h.PRODUCT_KEY, 'dev-ex-01');
    h.assertSameSecret(triple.DeviceSecret, device.DeviceSecret, 'stored DeviceSecret');
    assert.strictEqual(fs.statSync(out).mode & 0o777, 0o600);

    const field = (name) => (new RegExp(`^\\s+${name}\\s+(.*)$`, 'm').exec(r.stdout) || [])[1];
    assert.strictEqual(field('host'), `${h.PRODUCT_KEY}.iot-as-mqtt.cn-shanghai.aliyuncs.com`);
    assert.strictEqual(field('username'), `dev-ex-01&${h.PRODUCT_KEY}`);
    const cid = field('clientId');
    const t = /timestamp=(\d+)\|$/.exec(cid)[1];
    assert.strictEqual(cid, `dev-ex-01|securemode=3,signmethod=hmacsha1,timestamp=${t}|`);
    // recomputed here from the platform's secret, by the device rules
    const expected = crypto.createHmac('sha1', device.DeviceSecret)
      .update(`clientIddev-ex-01deviceNamedev-ex-01productKey${h.PRODUCT_KEY}timestamp${t}`).digest('hex').toUpperCase();
    assert.ok(field('password') === expected, 'the printed password is the one the platform expects');
  });
});

test('bootstrap_device of either product on a broker that serves two', async () => {
  const products = ['a1DevExAlpha', 'a1DevExBeta'];
  await h.withEnv({ products }, async (env) => {
    for (const pk of products) {
      const secretFile = path.join(env.dir, `device-secret-${pk}`);
      fs.writeFileSync(secretFile, env.productSecrets[pk] + '\n', { mode: 0o600 });
      const out = path.join(env.dir, `${pk}.triple`);
      const r = await h.run(DEVICE, ['-h', '127.0.0.1', '-p', String(env.port), '-k', pk, '-s', secretFile, '-d', 'dev-ex-02', '-o', out]);
      assert.strictEqual(r.code, 0, r.stderr);
      const triple = JSON.parse(fs.readFileSync(out, 'utf8'));
      assert.strictEqual(triple.ProductKey, pk);
      h.assertSameSecret(triple.DeviceSecret, env.emu.device(pk, 'dev-ex-02').DeviceSecret, `${pk} DeviceSecret`);
    }
  });
});
