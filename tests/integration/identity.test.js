'use strict';
// request_auth identity, attacked as an outsider would (issue 18, item 1): mosquitto.conf.example
// as its comments describe it for client certificates: the anonymous plain listener, the TLS
// listener with require_certificate and use_identity_as_username (per_listener_settings false,
// the default, so allow_anonymous true holds everywhere), and the anonymous loopback wakeup
// listener. A client that merely claims a device's username must get nothing; only the device
// with a certificate the broker verified for that very deviceId gets its triple.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const { createEmulator } = require('../emulator/emulator.js');

const ROOT = path.join(__dirname, '../..');
const EXAMPLE = fs.readFileSync(path.join(ROOT, 'mosquitto.conf.example'), 'utf8');

test('identity: a claimed username on the plain or wakeup listener gets nothing; only the verified certificate\'s device gets its triple', async () => {
  const dir = h.makeWorkdir();
  const pk = /^plugin_opt_product_key (\S+)$/m.exec(EXAMPLE)[1];
  const accessKeyId = 'LTAI' + crypto.randomBytes(8).toString('hex');
  const accessKeySecret = 'aksecret-' + crypto.randomBytes(12).toString('hex');
  const emu = createEmulator({ accessKeys: { [accessKeyId]: { secret: accessKeySecret } }, products: [pk] });
  let broker = null;
  try {
    const emuPort = await emu.listen(0);
    const [port, wakeupPort, tlsPort] = [await h.freePort(), await h.freePort(), await h.freePort()];
    h.giveToBroker(dir);
    const pki = h.makePki(dir);
    const server = pki.leaf('server', { cn: 'bootstrap broker', ip: ['127.0.0.1'] });
    const genuine = pki.leaf('dev-0002', { cn: 'dev-0002', client: true });
    const other = pki.leaf('dev-0003', { cn: 'dev-0003', client: true });
    const so = path.join(dir, 'mosquitto_bootstrap.so'); // editExample copies the plugin there
    const audit = path.join(dir, 'audit.log');

    // what scripts/demo changes, the TLS listener's lines uncommented with this test's PKI, and
    // what the example's comments say to change for identity
    const edits = [
      [/^listener 1883$/m, `listener ${port} 127.0.0.1`],
      [/^listener 1884 127\.0\.0\.1$/m, `listener ${wakeupPort} 127.0.0.1`],
      [/^plugin_opt_wakeup_port .*$/m, `plugin_opt_wakeup_port ${wakeupPort}`],
      [/^plugin \/usr\/lib\/.*mosquitto_bootstrap\.so$/m, `plugin ${so}`],
      [/^#plugin_opt_endpoint .*$/m, `plugin_opt_endpoint http://127.0.0.1:${emuPort}/`],
      [/^#listener 8883$/m, `listener ${tlsPort} 127.0.0.1`],
      [/^#certfile \S+$/m, `certfile ${server.cert}`],
      [/^#keyfile \S+$/m, `keyfile ${server.key}`],
      [/^#cafile \S+$/m, `cafile ${pki.ca}`],
      [/^#require_certificate true$/m, 'require_certificate true'],
      [/^#use_identity_as_username true$/m, 'use_identity_as_username true'],
      [/^plugin_opt_request_auth sign$/m, 'plugin_opt_request_auth identity'],
      [/^plugin_opt_product_secret_file .*\n/m, ''],
      [/^plugin_opt_reply_encryption on$/m, 'plugin_opt_reply_encryption off'],
      [/^#plugin_opt_audit_file .*$/m, `plugin_opt_audit_file ${audit}`],
    ];
    const { confPath, conf } = h.editExample(dir, EXAMPLE, edits);
    assert.doesNotMatch(conf, /^per_listener_settings/m, 'per_listener_settings is left at its default, false');

    broker = await h.startConfigured(dir, port, confPath, { ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: accessKeySecret });
    assert.match(broker.log(), /mosquitto_bootstrap: request_auth identity, /);

    const registered = () => emu.stats().byAction.RegisterDevice || 0;
    const triple = (r) => !!(r.reply && r.reply.success);
    const codes = [];

    // the outsider's exact command: the device's client id and username, no password, no certificate
    for (const [where, p] of [['plain listener', port], ['wakeup listener', wakeupPort]]) {
      const r = await h.rr(p, { id: 'dev-0002', message: 'dev-0002', extra: ['-u', 'dev-0002'] });
      codes.push(`${where}: ${r.reply ? (r.reply.success ? 'TRIPLE' : r.reply.code) : 'no reply'}`);
      assert.ok(!triple(r), `a claimed username on the ${where} got the triple`);
      assert.strictEqual(r.reply && r.reply.code, 'unauthorized', `${where}: ${r.stdout}${r.stderr}`);
      assert.match(r.reply.message, /no client certificate/);
    }
    // with a password too: there is no password_file, so the broker takes any
    const withPassword = await h.rr(port, { id: 'dev-0002', message: JSON.stringify({ deviceId: 'dev-0002' }), extra: ['-u', 'dev-0002', '-P', 'guess'] });
    assert.ok(!triple(withPassword), 'a username and any password got the triple');
    assert.strictEqual(withPassword.reply && withPassword.reply.code, 'unauthorized');
    assert.strictEqual(registered(), 0, 'no platform call for a claimed username');
    assert.strictEqual(emu.device(pk, 'dev-0002'), null, 'the device was not even registered');

    // a device with a valid certificate for another name asks for dev-0002 (under its client id)
    const tlsArgs = (c) => ['--cafile', pki.ca, '--cert', c.cert, '--key', c.key];
    const theft = await h.rr(tlsPort, { id: 'dev-0002', message: 'dev-0002', extra: tlsArgs(other) });
    codes.push(`certificate for dev-0003: ${theft.reply ? (theft.reply.success ? 'TRIPLE' : theft.reply.code) : 'no reply'}`);
    assert.ok(!triple(theft), 'a certificate for dev-0003 got dev-0002\'s triple');
    assert.strictEqual(theft.reply && theft.reply.code, 'unauthorized');
    assert.match(theft.reply.message, /the deviceId must be the client certificate's CN/);
    assert.strictEqual(registered(), 0);

    // the genuine device, with its certificate, on the TLS listener
    const ok = await h.rr(tlsPort, { id: 'dev-0002', message: 'dev-0002', extra: tlsArgs(genuine) });
    codes.push(`genuine certificate: ${ok.reply ? (ok.reply.success ? 'ok' : ok.reply.code) : 'no reply'}`);
    assert.ok(triple(ok), `the genuine device got its triple: ${ok.stdout}${ok.stderr}`);
    assert.strictEqual(ok.reply.data.DeviceName, 'dev-0002');
    h.assertSameSecret(ok.reply.data.DeviceSecret, emu.device(pk, 'dev-0002').DeviceSecret, 'DeviceSecret');
    assert.strictEqual(registered(), 1);
    console.log('outcomes: ' + codes.join('; '));

    // the plugin cannot see listeners: it says at start-up what it trusts, and what that asks of them
    assert.match(broker.log(), /mosquitto_bootstrap: request_auth identity: a request is served only over a connection whose client certificate the broker verified .* for the deviceId in its CN; .*Every CA in the cafile\/capath/);
    // the audit trail: the three claims and the theft refused, the genuine request alone ok
    const lines = fs.readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.deviceId === 'dev-0002');
    assert.deepStrictEqual(lines.map((l) => l.code), ['unauthorized', 'unauthorized', 'unauthorized', 'unauthorized', 'ok']);
    // and which cause each was: the four unauthorized lines are told apart by their reason
    assert.deepStrictEqual(lines.map((l) => l.reason),
      ['no_client_certificate', 'no_client_certificate', 'no_client_certificate', 'certificate_name_mismatch', 'registered']);
    // the operator's log says why, and the refusals count like any other
    assert.strictEqual((broker.log().match(/request for device dev-0002 from client 'dev-0002' \(127\.0\.0\.1\) refused: unauthorized \(no client certificate/g) || []).length, 3);
    assert.strictEqual((broker.log().match(/mosquitto_bootstrap: request_auth identity: a request came with a username and no client certificate/g) || []).length, 1,
      'one warning for usernames without certificates');

    await broker.stop();
    const log = broker.log();
    broker = null;
    const secrets = [accessKeySecret, ...emu.allDeviceSecrets()];
    assert.strictEqual(secrets.filter((s) => log.includes(s)).length, 0, 'a secret is in the broker log');
  } finally {
    if (broker) await broker.stop().catch(() => {});
    await emu.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
