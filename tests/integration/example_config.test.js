'use strict';
// mosquitto.conf.example as users get it: a real broker runs it (changed only where the demo
// changes it: ports, paths, the emulator's endpoint), with its TLS listener switched on; the
// wakeup listener connects, and devices bootstrap over plain MQTT and over TLS. The
// documentation's emulator commands and the demo use the example's product key.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const { createEmulator } = require('../emulator/emulator.js');

const ROOT = path.join(__dirname, '../..');
const EXAMPLE = fs.readFileSync(path.join(ROOT, 'mosquitto.conf.example'), 'utf8');

function productKeyOf(conf) {
  const m = /^plugin_opt_product_key (\S+)$/m.exec(conf);
  assert.ok(m, 'the example sets plugin_opt_product_key');
  return m[1];
}

test('the documentation\'s emulator commands and the demo serve the product the example configures', () => {
  const pk = productKeyOf(EXAMPLE);
  const pages = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];
  const commands = [];
  for (const page of pages) {
    for (const l of fs.readFileSync(path.join(ROOT, page), 'utf8').split('\n')) {
      if (/node tests\/emulator\/emulator\.js/.test(l)) commands.push([page, l]);
    }
  }
  assert.ok(commands.some(([page]) => page === 'README.md'), 'the README shows how to run the emulator');
  for (const [page, c] of commands) assert.match(c, new RegExp(`--products ${pk}\\b`), `${page}: ${c.trim()}`);
  const demo = fs.readFileSync(path.join(ROOT, 'scripts/demo'), 'utf8');
  assert.match(demo, /^PRODUCT=\$\(sed -n 's\/\^plugin_opt_product_key \/\/p' mosquitto\.conf\.example\)$/m, 'the demo takes its product from the example');
  assert.match(demo, /--products "\$PRODUCT"/);
});

test('the example configuration runs: wakeup listener, plain and TLS listeners, sealed triples', async () => {
  const dir = h.makeWorkdir();
  const pk = productKeyOf(EXAMPLE);
  const accessKeyId = 'LTAI' + crypto.randomBytes(8).toString('hex');
  const accessKeySecret = 'aksecret-' + crypto.randomBytes(12).toString('hex');
  const productSecret = 'prodsecret-' + crypto.randomBytes(12).toString('hex');
  const emu = createEmulator({ accessKeys: { [accessKeyId]: { secret: accessKeySecret } }, products: [pk] });
  let broker = null;
  try {
    const emuPort = await emu.listen(0);
    const [port, wakeupPort, tlsPort] = [await h.freePort(), await h.freePort(), await h.freePort()];
    const pki = h.makePki(dir);
    const server = pki.leaf('server', { cn: 'bootstrap broker', ip: ['127.0.0.1'] });
    const so = path.join(dir, 'mosquitto_bootstrap.so'); // editExample copies the plugin there
    const secretFile = path.join(dir, 'product-secret');
    fs.writeFileSync(secretFile, productSecret + '\n', { mode: 0o600 });
    h.giveToBroker(secretFile);

    // what scripts/demo changes, and the TLS listener's lines uncommented with this test's PKI
    const edits = [
      [/^listener 1883$/m, `listener ${port} 127.0.0.1`],
      [/^listener 1884 127\.0\.0\.1$/m, `listener ${wakeupPort} 127.0.0.1`],
      [/^plugin_opt_wakeup_port .*$/m, `plugin_opt_wakeup_port ${wakeupPort}`],
      [/^plugin \/usr\/lib\/.*mosquitto_bootstrap\.so$/m, `plugin ${so}`],
      [/^#plugin_opt_endpoint .*$/m, `plugin_opt_endpoint http://127.0.0.1:${emuPort}/`],
      [/^plugin_opt_product_secret_file .*$/m, `plugin_opt_product_secret_file ${secretFile}`],
      [/^#listener 8883$/m, `listener ${tlsPort} 127.0.0.1`],
      [/^#certfile \S+$/m, `certfile ${server.cert}`],
      [/^#keyfile \S+$/m, `keyfile ${server.key}`],
    ];
    const { confPath } = h.editExample(dir, EXAMPLE, edits);

    broker = await h.startConfigured(dir, port, confPath, { ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: accessKeySecret });
    assert.match(broker.log(), new RegExp(`mosquitto_bootstrap: platform check: the platform accepts these credentials, product ${pk}`),
      'the emulator knows the example\'s product');
    assert.match(broker.log(), new RegExp(`Opening ipv4 listen socket on port ${tlsPort}`));

    for (const [deviceId, p, extra] of [['dev-example-01', port, []], ['dev-example-02', tlsPort, ['--cafile', pki.ca]]]) {
      const random = crypto.randomBytes(12).toString('hex');
      const message = JSON.stringify(h.signRequest(deviceId, pk, productSecret, { random }));
      const r = await h.rr(p, { id: deviceId, message, extra });
      assert.ok(r.reply && r.reply.success, `${deviceId} bootstrapped on port ${p === port ? 'plain' : 'TLS'}: ${r.stdout}${r.stderr}`);
      const triple = h.openSealed(r.reply, { productSecret, random, productKey: pk, deviceId });
      h.assertSameSecret(triple.DeviceSecret, emu.device(pk, deviceId).DeviceSecret, 'DeviceSecret');
    }

    // the worker connects to the wakeup listener with the first replies, and pokes the broker there
    for (let i = 0; i < 100 && !/as mosquitto_bootstrap-wakeup/.test(broker.log()); i++) await h.sleep(50);
    const wakeup = /New client connected from 127\.0\.0\.1:(\d+) as mosquitto_bootstrap-wakeup/.exec(broker.log());
    assert.ok(wakeup, 'the plugin connected for its wakeups');
    assert.match(broker.log(), new RegExp(`New connection from 127\\.0\\.0\\.1:${wakeup[1]} on port ${wakeupPort}\\.`),
      'on the example\'s wakeup listener');
    assert.doesNotMatch(broker.log(), /refused the wakeup connection/);

    await broker.stop();
    const log = broker.log();
    broker = null;
    const secrets = [accessKeySecret, productSecret, ...emu.allDeviceSecrets()];
    assert.strictEqual(secrets.filter((s) => log.includes(s)).length, 0, 'a secret is in the broker log');
  } finally {
    if (broker) await broker.stop().catch(() => {});
    await emu.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
