'use strict';
// Link SDK 4.x MQTT dynamic registration (issue 22), driven by an independent client written from
// the protocol description (lib/dynreg_client.js), not from the plugin: every sign the C SDK and
// Python LinkKit write, both random forms, instanceId, the existing/new device paths; what must
// be refused at CONNACK (regnwl, a bad sign, a replayed random, a takeover, the plain listener);
// the 5 s window under a quota backlog. No secret is printed: they are compared, never shown.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const h = require('./lib/harness');
const dr = require('./lib/dynreg_client');
const { dynregEnv } = require('./lib/dynreg_env');

const WINDOW_MS = 5000; // DYNREGMQ_DEFAULT_TIMEOUT_MS in the SDK

// Python LinkKit's random: 15 characters
function random15() { return crypto.randomBytes(12).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, 15); }

function assertServed(env, r, deviceName, what, productKey = env.productKey) {
  assert.strictEqual(r.connack, 0, `${what}: CONNACK ${r.connack} (${r.error || ''})`);
  assert.ok(r.deviceSecret, `${what}: no DeviceSecret on /ext/register within ${WINDOW_MS} ms (closed by ${r.closedBy} after ${r.elapsedMs} ms)`);
  assert.strictEqual(r.topic, '/ext/register');
  assert.ok(r.qos === 0 || r.qos === 1, `${what}: QoS ${r.qos}: the SDK treats QoS 2 as malformed`);
  assert.strictEqual(r.payload.productKey, productKey, `${what}: productKey`);
  assert.strictEqual(r.payload.deviceName, deviceName, `${what}: deviceName`);
  assert.ok(r.elapsedMs < WINDOW_MS, `${what}: answered after ${r.elapsedMs} ms`);
  // the device never subscribed: nothing but its answer reaches it
  assert.deepStrictEqual(r.messages.map((m) => m.topic), ['/ext/register'], `${what}: other deliveries`);
  const d = env.emu.device(productKey, deviceName);
  assert.ok(d, `${what}: the platform has no such device`);
  h.assertSameSecret(r.deviceSecret, d.DeviceSecret, `${what} DeviceSecret`);
}

function assertRefused(env, r, deviceName, what, productKey = env.productKey) {
  assert.ok(r.connack !== null && r.connack !== 0, `${what}: CONNACK ${r.connack}, closed by ${r.closedBy} (${r.error || ''})`);
  assert.strictEqual(r.deviceSecret, null, `${what}: a DeviceSecret was delivered`);
  assert.strictEqual(r.closedBy, 'broker', `${what}: the broker did not close the refused connection`);
  assert.strictEqual(env.emu.device(productKey, deviceName), null, `${what}: the device was registered`);
}

const calls = (env, action) => env.emu.stats().byAction[action] || 0;

// The audit lines of a device: by deviceId, or by client id where the CONNECT was refused before
// the device was named (regnwl)
const auditOf = (env, name) => env.audit().filter((l) => l.deviceId === name || (!l.deviceId && typeof l.client === 'string' && l.client.startsWith(name + '.')));

test('dynreg: every sign method in upper and lower case, 1- to 15-character randoms, new and existing devices', async () => {
  const env = await dynregEnv();
  try {
    const cases = [];
    for (const method of ['hmacsha256', 'hmacsha1', 'hmacmd5']) {
      for (const upper of [true, false]) cases.push({ name: `sign-${method}-${upper ? 'upper' : 'lower'}`, method, upper });
    }
    cases.push({ name: 'rand-1digit', random: '7' });
    cases.push({ name: 'rand-10digit', random: '4294967295' });
    cases.push({ name: 'rand-python15', random: random15(), upper: false });
    cases.push({ name: 'rand-csdk', random: dr.sdkRandom() });
    const outcomes = [];
    for (const c of cases) {
      const { name, ...opts } = c;
      const before = calls(env, 'RegisterDevice');
      const r = await env.register(name, opts);
      outcomes.push(`${name}: ${r.deviceSecret ? 'secret' : 'connack ' + r.connack} in ${r.elapsedMs} ms`);
      assertServed(env, r, name, name);
      assert.strictEqual(calls(env, 'RegisterDevice'), before + 1, `${name}: one RegisterDevice`);
    }
    // community firmware (LuatOS, MicroPython ports) writes the client id as <DeviceName>|...|
    // with the parameters in another order, and a time as the random
    {
      const name = 'luat-style-01';
      const random = String(Math.floor(Date.now() / 1000));
      const password = dr.sign({ productKey: env.productKey, deviceName: name, productSecret: env.productSecret, random, method: 'hmacmd5', upper: false });
      const r = await dr.register(env.tlsPort, { ca: env.ca, servername: 'localhost', random, password,
        clientId: `${name}|securemode=2,authType=register,random=${random},signmethod=hmacmd5|`, username: `${name}&${env.productKey}` });
      outcomes.push(`${name}: ${r.deviceSecret ? 'secret' : 'connack ' + r.connack} in ${r.elapsedMs} ms`);
      assertServed(env, r, name, name);
    }
    console.log(outcomes.join('\n'));

    // an existing device (registered in the console beforehand): its own secret, from a lookup
    env.emu.preRegister(env.productKey, 'dev-existing-01');
    const reg = calls(env, 'RegisterDevice');
    const qry = calls(env, 'QueryDeviceDetail');
    const r = await env.register('dev-existing-01');
    assertServed(env, r, 'dev-existing-01', 'existing device');
    assert.ok(calls(env, 'QueryDeviceDetail') > qry, 'the existing device was not looked up');
    assert.strictEqual(calls(env, 'RegisterDevice') - reg <= 1, true, 'registered more than once');
    // the same device again, later (a reflashed device): the same secret
    const again = await env.register('dev-existing-01');
    assertServed(env, again, 'dev-existing-01', 'existing device, second time');

    // one audit line per request, naming the device
    const lines = auditOf(env, 'dev-existing-01');
    assert.strictEqual(lines.length, 2, JSON.stringify(lines.map((l) => l.code)));
    assert.ok(lines.every((l) => l.code === 'ok'));
    for (const c of cases) {
      assert.strictEqual(auditOf(env, c.name).length, 1, `${c.name}: audit lines`);
    }
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg: instanceId in the client id (the SDK appends it for an instance endpoint) is served', async () => {
  const INSTANCE = 'iot-cn-dynreg01';
  const env = await dynregEnv({ emulator: { iotInstanceId: INSTANCE }, pluginOptions: { iot_instance_id: INSTANCE } });
  try {
    const r = await env.register('dev-instance-01', { instanceId: INSTANCE });
    assertServed(env, r, 'dev-instance-01', 'instanceId');
    const plain = await env.register('dev-instance-02');
    assertServed(env, plain, 'dev-instance-02', 'no instanceId');
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg: regnwl, bad signs, unknown products, replays and the plain listener are refused at CONNACK; other clients pass', async () => {
  const env = await dynregEnv();
  try {
    const codes = {};
    const note = (what, r) => { codes[what] = r.connack; };

    // authType=regnwl: no OpenAPI gives a deviceToken; refused with a log line that says why
    const nwl = await env.register('dev-regnwl-01', { authType: 'regnwl' });
    note('regnwl', nwl);
    assertRefused(env, nwl, 'dev-regnwl-01', 'regnwl');
    assert.match(env.broker.log(), /mosquitto_bootstrap: .*regnwl/);

    // signed with another secret, a sign over another random, a sign cut short, no password
    const bad = await env.register('dev-badsign-01', { productSecret: 'not-the-product-secret' });
    note('wrong ProductSecret', bad);
    assertRefused(env, bad, 'dev-badsign-01', 'wrong ProductSecret');
    const cred = dr.credentials({ productKey: env.productKey, deviceName: 'dev-badsign-02', productSecret: env.productSecret });
    const other = dr.sign({ productKey: env.productKey, deviceName: 'dev-badsign-02', productSecret: env.productSecret, random: cred.random + '1' });
    const mismatch = await dr.register(env.tlsPort, { ca: env.ca, servername: 'localhost', ...cred, password: other });
    note('sign over another random', mismatch);
    assertRefused(env, mismatch, 'dev-badsign-02', 'sign over another random');
    const shortSign = await dr.register(env.tlsPort, { ca: env.ca, servername: 'localhost', ...cred, password: cred.password.slice(0, 32) });
    assertRefused(env, shortSign, 'dev-badsign-02', 'a sign cut short');
    const sha1AsSha256 = await env.register('dev-badsign-03', { password: dr.sign({ productKey: env.productKey, deviceName: 'dev-badsign-03', productSecret: env.productSecret, random: '12345', method: 'hmacsha1' }), random: '12345' });
    assertRefused(env, sha1AsSha256, 'dev-badsign-03', 'an hmacsha1 sign announced as hmacsha256');

    // a product the broker does not serve
    const unknown = await dr.register(env.tlsPort, { ca: env.ca, servername: 'localhost', productKey: 'a1NotOurs', deviceName: 'dev-unknown-01', productSecret: env.productSecret });
    note('unknown product', unknown);
    assertRefused(env, unknown, 'dev-unknown-01', 'unknown product', 'a1NotOurs');

    // the very same CONNECT again after it was served: the random is spent
    const first = dr.credentials({ productKey: env.productKey, deviceName: 'dev-replay-01', productSecret: env.productSecret });
    const served = await dr.register(env.tlsPort, { ca: env.ca, servername: 'localhost', ...first });
    assertServed(env, served, 'dev-replay-01', 'before the replay');
    const regs = calls(env, 'RegisterDevice') + calls(env, 'QueryDeviceDetail');
    const replay = await dr.register(env.tlsPort, { ca: env.ca, servername: 'localhost', ...first });
    note('replay', replay);
    assert.ok(replay.connack !== 0 && replay.deviceSecret === null, `replay: CONNACK ${replay.connack}, secret ${!!replay.deviceSecret}`);
    assert.strictEqual(calls(env, 'RegisterDevice') + calls(env, 'QueryDeviceDetail'), regs, 'a replay made a platform call');

    // a good CONNECT on the plain TCP listener: the secret would travel in the clear
    const plain = await dr.register(env.port, { tls: false, productKey: env.productKey, deviceName: 'dev-plain-01', productSecret: env.productSecret });
    note('plain listener', plain);
    assertRefused(env, plain, 'dev-plain-01', 'plain TCP listener');

    // a client that is no dynreg CONNECT is left to whatever else authenticates (here: anonymous)
    const mqtt = require('./lib/mqtt_raw');
    for (const [where, port, tls] of [['TLS', env.tlsPort, { ca: env.ca, servername: 'localhost' }], ['plain', env.port, null]]) {
      for (const clientId of ['ordinary-sensor-01', 'sensor|x=1|']) {
        const c = await mqtt.connect(port, { tls, clientId });
        assert.strictEqual(c.connack.returnCode, 0, `an anonymous client '${clientId}' on the ${where} listener`);
        await c.disconnect();
      }
    }

    console.log('CONNACK codes: ' + JSON.stringify(codes));
    // nothing refused ever reached the platform
    for (const name of ['dev-regnwl-01', 'dev-badsign-01', 'dev-badsign-02', 'dev-badsign-03', 'dev-plain-01']) {
      assert.strictEqual(env.emu.device(env.productKey, name), null, name);
    }
    // an audit line for each refusal, as for a bootstrap request
    for (const name of ['dev-regnwl-01', 'dev-badsign-01', 'dev-plain-01']) {
      const lines = auditOf(env, name);
      assert.ok(lines.length >= 1 && lines.every((l) => l.code !== 'ok'), `${name}: audit ${JSON.stringify(lines.map((l) => l.code))}`);
    }
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg: a takeover (the same client id while the first connection waits) gets nothing; the first gets its secret', async () => {
  const env = await dynregEnv();
  try {
    env.emu.setLatency(2000); // the platform answers slowly: the first connection is still waiting
    const cred = dr.credentials({ productKey: env.productKey, deviceName: 'dev-takeover-01', productSecret: env.productSecret });
    const opts = { ca: env.ca, servername: 'localhost', ...cred };
    const firstP = dr.register(env.tlsPort, opts);
    await h.sleep(700);
    const second = await dr.register(env.tlsPort, { ...opts, windowMs: 4000 });
    const first = await firstP;
    console.log(`first: ${first.deviceSecret ? 'secret' : 'none'} (CONNACK ${first.connack}); second: CONNACK ${second.connack}, ${second.deviceSecret ? 'secret' : 'none'}`);
    assert.strictEqual(second.deviceSecret, null, 'the second connection got the secret');
    assert.notStrictEqual(second.connack, 0, 'the second connection was accepted');
    env.emu.setLatency(0);
    assertServed(env, first, 'dev-takeover-01', 'the first connection');
    assert.strictEqual(calls(env, 'RegisterDevice'), 1);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg: under a quota backlog the device is closed inside its 5 s window, and its retry is served by a lookup', async () => {
  const env = await dynregEnv({ pluginOptions: { register_qps: 1, batching: 'off' } });
  try {
    const ids = Array.from({ length: 10 }, (_, i) => `dev-backlog-${String(i).padStart(2, '0')}`);
    const results = await Promise.all(ids.map((id) => env.register(id)));
    const served = ids.filter((id, i) => results[i].deviceSecret);
    const waiting = ids.filter((id, i) => !results[i].deviceSecret);
    console.log(`in the window: ${served.length} served, ${waiting.length} closed (after ${waiting.map((id) => results[ids.indexOf(id)].elapsedMs).join(', ')} ms)`);
    if (waiting.length) console.log('what a closed device read on /ext/register: ' + JSON.stringify(results[ids.indexOf(waiting[0])].errorPayload));
    for (const id of served) assertServed(env, results[ids.indexOf(id)], id, id);
    assert.ok(waiting.length >= 3, `a backlog at 1 RegisterDevice/s leaves devices unanswered in 5 s: ${waiting.length}`);
    for (const id of waiting) {
      const r = results[ids.indexOf(id)];
      assert.strictEqual(r.connack, 0, `${id}: CONNACK ${r.connack}`);
      assert.strictEqual(r.closedBy, 'broker', `${id}: left to wait in silence until its own timeout`);
      assert.ok(r.errorPayload, `${id}: closed without a word on /ext/register`);
      assert.ok(r.elapsedMs < WINDOW_MS, `${id}: closed after ${r.elapsedMs} ms, past the SDK's window`);
    }
    // the flow goes on without them: every device ends up registered, once
    const until = Date.now() + 30000;
    while (ids.some((id) => !env.emu.device(env.productKey, id)) && Date.now() < until) await h.sleep(100);
    for (const id of ids) assert.ok(env.emu.device(env.productKey, id), `${id} was not registered after its connection closed`);
    assert.strictEqual(calls(env, 'RegisterDevice'), ids.length);
    // the retries (a new random each, as the SDK makes) are answered by a lookup, in the window,
    // with the secret the platform made the first time: nothing is registered twice
    const made = Object.fromEntries(ids.map((id) => [id, env.emu.device(env.productKey, id).DeviceSecret]));
    const devices = env.emu.deviceCount();
    const [reg, qry] = [calls(env, 'RegisterDevice'), calls(env, 'QueryDeviceDetail')];
    for (const id of waiting) {
      const r = await env.register(id);
      assertServed(env, r, id, `${id} retry`);
      h.assertSameSecret(r.deviceSecret, made[id], `${id} retry: the first registration's DeviceSecret`);
    }
    assert.strictEqual(env.emu.deviceCount(), devices, 'a retry created a device');
    assert.ok(calls(env, 'QueryDeviceDetail') >= qry + waiting.length, 'the retries were not served by lookups');
    const audits = waiting.map((id) => auditOf(env, id));
    assert.ok(audits.every((a) => a[a.length - 1].code === 'ok' && a[a.length - 1].device === 'existing' && a[a.length - 1].action === 'QueryDeviceDetail'),
      JSON.stringify(audits.map((a) => a.map((l) => [l.code, l.device, l.action]))));
    console.log(`retries: ${calls(env, 'RegisterDevice') - reg} RegisterDevice and ${calls(env, 'QueryDeviceDetail') - qry} QueryDeviceDetail calls for ${waiting.length} devices`);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg: the policies hold as for the bootstrap topic: allowlist, registration preregistered, several products', async () => {
  const fs = require('fs');
  const path = require('path');
  const dir = h.makeWorkdir();
  const list = path.join(dir, 'allowlist');
  fs.writeFileSync(list, 'dyn-ok-*\n', { mode: 0o644 });
  h.giveToBroker(dir);
  h.giveToBroker(list);
  // an allowlist, and only devices created on the platform in advance
  let env = await dynregEnv({ pluginOptions: { device_allowlist: list, registration: 'preregistered' } });
  try {
    const outside = await env.register('dyn-outside-01');
    assertRefused(env, outside, 'dyn-outside-01', 'a name off the allowlist');
    assert.deepStrictEqual(env.emu.stats().byAction, {}, 'a platform call for a name off the allowlist');
    const line = auditOf(env, 'dyn-outside-01')[0];
    assert.strictEqual(line && line.code, 'not_allowed');

    // on the list, not on the platform: no registration, an error on /ext/register, closed
    const unknown = await env.register('dyn-ok-new');
    assert.strictEqual(unknown.connack, 0);
    assert.strictEqual(unknown.deviceSecret, null);
    assert.strictEqual(unknown.closedBy, 'broker', 'left waiting');
    assert.ok(unknown.elapsedMs < WINDOW_MS);
    assert.strictEqual(unknown.errorPayload && unknown.errorPayload.code, 'not_registered', JSON.stringify(unknown.errorPayload));
    assert.strictEqual(env.emu.device(env.productKey, 'dyn-ok-new'), null, 'registered under registration preregistered');
    assert.strictEqual(env.emu.stats().byAction.RegisterDevice || 0, 0);

    // on the list and on the platform: its own secret
    env.emu.preRegister(env.productKey, 'dyn-ok-old');
    const old = await env.register('dyn-ok-old');
    assertServed(env, old, 'dyn-ok-old', 'pre-registered');
    await env.assertLogClean();
  } finally {
    await env.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // several products: each device signs with its own product's secret
  env = await dynregEnv({ products: ['a1DynProdA', 'a1DynProdB'] });
  try {
    const a = await env.register('dyn-prod-a', { productKey: 'a1DynProdA' });
    assertServed(env, a, 'dyn-prod-a', 'product A', 'a1DynProdA');
    const b = await env.register('dyn-prod-b', { productKey: 'a1DynProdB' });
    assertServed(env, b, 'dyn-prod-b', 'product B', 'a1DynProdB');
    // B's name signed with A's secret
    const crossed = await env.register('dyn-prod-x', { productKey: 'a1DynProdB', productSecret: env.productSecrets.a1DynProdA });
    assertRefused(env, crossed, 'dyn-prod-x', 'signed with another product\'s secret', 'a1DynProdB');
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg: its $SYS counters, and refusals past the limit are still refused while valid CONNECTs pass', async () => {
  const env = await dynregEnv(await h.operatorOptions({ pluginOptions: { dynreg_window_ms: 1500 } }));
  try {
    assertServed(env, await env.register('dev-count-01'), 'dev-count-01', 'first');
    assertServed(env, await env.register('dev-count-02', { method: 'hmacmd5', upper: false }), 'dev-count-02', 'second');
    const bad = await env.register('dev-count-03', { productSecret: 'wrong' });
    assertRefused(env, bad, 'dev-count-03', 'bad sign');
    // not answered within dynreg_window_ms: told busy and closed
    env.emu.setLatency(3000);
    const late = await env.register('dev-count-04');
    assert.strictEqual(late.connack, 0);
    assert.strictEqual(late.deviceSecret, null);
    assert.strictEqual(late.closedBy, 'broker');
    assert.ok(late.elapsedMs >= 1400 && late.elapsedMs < 2500, `closed after ${late.elapsedMs} ms with dynreg_window_ms 1500`);
    assert.strictEqual(late.errorPayload && late.errorPayload.code, 'busy', JSON.stringify(late.errorPayload));
    const want = { connects: 4, accepted: 3, refused: 1, window_expired: 1 };
    for (const [k, v] of Object.entries(want)) await h.waitForSys(env, 'dynreg/' + k, (x) => Number(x) === v);
    await h.waitForSys(env, 'dynreg/answered', (x) => Number(x) >= 2);
    env.emu.setLatency(0);

    // a dozen refused CONNECTs under one client id and address: each refused at CONNACK, never
    // served; a valid CONNECT from the same address right after is served
    const cred = dr.credentials({ productKey: env.productKey, deviceName: 'dev-flood-01', productSecret: 'wrong' });
    const codes = [];
    for (let i = 0; i < 12; i++) {
      const r = await dr.register(env.tlsPort, { ca: env.ca, servername: 'localhost', ...cred });
      codes.push(r.connack);
      assert.strictEqual(r.deviceSecret, null);
    }
    assert.ok(codes.every((c) => c === 5), `refusals past the limit: CONNACK ${JSON.stringify(codes)}`);
    const after = await env.register('dev-flood-02');
    assertServed(env, after, 'dev-flood-02', 'a valid CONNECT after the flood');
    // the audit trail does not grow one line per refusal past the limit
    const flood = auditOf(env, 'dev-flood-01');
    assert.ok(flood.length >= 1 && flood.length <= 11, `${flood.length} audit lines for 12 refusals`);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('dynreg: the Link SDK\'s TLS profile (TLS 1.2, RSA key exchange, AES-CBC) is served with an RSA certificate', async () => {
  // what the SDK's bundled mbedtls config allows: no ECDHE, no ECDSA, no GCM, TLS 1.2 only
  const SDK_TLS = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'AES256-SHA256:AES128-SHA256:AES256-SHA:AES128-SHA' };
  const env = await dynregEnv({ rsa: true });
  try {
    const r = await env.register('dev-sdk-tls-01', { tlsOptions: SDK_TLS });
    assertServed(env, r, 'dev-sdk-tls-01', 'the SDK\'s TLS profile');
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
  // with an EC certificate (the other tests') that profile has no cipher suite in common
  const ec = await dynregEnv();
  try {
    const r = await ec.register('dev-sdk-tls-02', { tlsOptions: SDK_TLS });
    assert.strictEqual(r.connack, null, `the SDK's TLS profile reached CONNACK ${r.connack} with an EC certificate`);
    assert.strictEqual(r.deviceSecret, null);
    assert.match(r.error || '', /handshake|alert|cipher|SSL/i, r.error);
  } finally {
    await ec.stop();
  }
});
