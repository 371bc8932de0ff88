'use strict';
// Link SDK MQTT dynamic registration (plugin_opt_dynreg_mqtt on, docs/link-sdk.md) through a
// real TLS listener: a signed CONNECT there gets its DeviceSecret on /ext/register and the
// connection is closed; the same CONNECT on the plain listener, regnwl, a wrong sign and a
// replayed random are refused at CONNACK; the bootstrap topic still works beside it; a device
// the platform cannot answer within the window is told busy and closed, and its retry is
// answered. (The independent client's broader tests are elsewhere.)
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const tls = require('tls');
const { execFileSync } = require('child_process');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

// The CONNECT of the Link SDK's dynregmq (C): random is the decimal of a 32-bit number, the
// sign upper-case hex.
function dynregConnect(deviceName, productKey, productSecret, { random = String(crypto.randomBytes(4).readUInt32BE()), authType = 'register', method = 'hmacsha256', sign } = {}) {
  const algo = { hmacsha256: 'sha256', hmacsha1: 'sha1', hmacmd5: 'md5' }[method];
  return {
    clientId: `${deviceName}.${productKey}|random=${random},authType=${authType},securemode=2,signmethod=${method}|`,
    username: `${deviceName}&${productKey}`,
    password: sign || crypto.createHmac(algo, productSecret).update(`deviceName${deviceName}productKey${productKey}random${random}`).digest('hex').toUpperCase(),
    random,
  };
}

// A raw MQTT client over TLS, verifying the broker's certificate with ca, limited to what the
// Link SDK's bundled mbedtls offers: TLS 1.2, RSA key exchange, AES-CBC.
const SDK_CIPHERS = 'AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA';
function connectTls(port, ca, { clientId, username, password, keepAlive = 1200 }) {
  const bytes = mqtt.packets.connect({ clientId, version: 4, clean: true, keepAlive, username, password });
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', ca: fs.readFileSync(ca), servername: 'localhost',
      minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: SDK_CIPHERS });
    const client = new mqtt.RawClient(socket, { version: 4 });
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('no CONNACK')); }, 10000);
    client.onConnack = (connack, err) => {
      client.onConnack = null;
      clearTimeout(timer);
      if (connack) resolve(client); else reject(err);
    };
    socket.on('secureConnect', () => socket.write(bytes));
    socket.on('error', () => {});
  });
}

// operator: the operator 'ops' reads $SYS through a password_file, which Mosquitto asks after
// the plugin's basic-auth callback (the dynreg username is in no password file).
// spare: a second port named in dynreg_tls_ports where nothing listens.
async function setUp(pluginOptions = {}, { operator = false, spare = null, extraConfig = '', tlsPort: givenPort = null } = {}) {
  const tlsPort = givenPort || await h.freePort();
  const dir = h.makeWorkdir();
  // an RSA certificate: the SDK's mbedtls has no ECDSA
  const server = { cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') };
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', server.key, '-out', server.cert], { stdio: 'ignore' });
  for (const f of [server.cert, server.key]) h.giveToBroker(f);
  const pki = { ca: server.cert };
  let options = {
    extraConfig: `listener ${tlsPort} 127.0.0.1\ncertfile ${server.cert}\nkeyfile ${server.key}\n${extraConfig}`,
    pluginOptions: { dynreg_mqtt: 'on', dynreg_tls_ports: spare ? `${tlsPort},${spare}` : tlsPort, audit_file: '$DIR/audit.log', ...pluginOptions },
  };
  if (operator) options = await h.operatorOptions(options);
  const env = await h.startEnv(options);
  // the plugin checks the named ports with a TLS handshake of its own, a moment after start
  if (!pluginOptions.dynreg_tls_ports) await h.waitForLog(env, new RegExp(`dynreg: port ${tlsPort} answers TLS`));
  return { env, tlsPort, ca: pki.ca, pkiDir: dir };
}

function closed(client, ms) {
  return Promise.race([client.closed.then(() => true), h.sleep(ms).then(() => false)]);
}

test('dynreg over TLS: the DeviceSecret on /ext/register; refused on the plain listener, for regnwl, a wrong sign, a replay', async () => {
  const spare = await h.freePort();
  const { env, tlsPort, ca, pkiDir } = await setUp({}, { operator: true, spare });
  try {
    // a named port nothing answers on (from loopback) is taken on the operator's word, and said so
    await h.waitForLog(env, new RegExp(`dynreg: could not check that port ${spare} answers TLS \\(nothing listens on it on this host's \\d+ addresses\\)`));
    assert.match(env.broker.log(), /dynreg_mqtt on: Link SDK dynamic registration CONNECTs are served on the listeners of plugin_opt_dynreg_tls_ports \d+,\d+ alone \(told by the local port of the client's socket/);
    const dn = 'lsdk-0001';
    const c = dynregConnect(dn, env.productKey, env.productSecret);
    const client = await connectTls(tlsPort, ca, c);
    assert.strictEqual(client.connack.returnCode, 0);
    const m = await client.waitFor((x) => x.topic === '/ext/register', 5000);
    assert.strictEqual(m.qos, 0);
    const answer = JSON.parse(m.payload.toString());
    assert.deepStrictEqual(Object.keys(answer).sort(), ['deviceName', 'deviceSecret', 'productKey']);
    assert.strictEqual(answer.deviceName, dn);
    assert.strictEqual(answer.productKey, env.productKey);
    h.assertSameSecret(answer.deviceSecret, env.emu.device(env.productKey, dn).DeviceSecret, 'deviceSecret');
    // the broker closes a connection that stays after its answer
    assert.ok(await closed(client, 3000), 'the connection was not closed after the answer');
    await h.waitForAudit(env, (l) => l.deviceId === dn && l.code === 'ok');

    // the same device again, the same random: a replay
    const replay = await connectTls(tlsPort, ca, c);
    assert.strictEqual(replay.connack.returnCode, 5);
    await replay.destroy();

    // a valid CONNECT (new random, lower-case hmacsha1 sign) on the plain listener
    const plain = dynregConnect('lsdk-0002', env.productKey, env.productSecret, { method: 'hmacsha1' });
    plain.password = plain.password.toLowerCase();
    const onPlain = await mqtt.connect(env.port, { ...plain, keepAlive: 1200 });
    assert.strictEqual(onPlain.connack.returnCode, 5);
    await onPlain.destroy();
    // it was refused for the listener alone: the same CONNECT over TLS is served
    const onTls = await connectTls(tlsPort, ca, plain);
    assert.strictEqual(onTls.connack.returnCode, 0);
    // as a generic MQTT client would, it subscribes to its answer's topic while it waits: granted
    assert.strictEqual(await onTls.subscribe('/ext/register'), 0);
    const m2 = await onTls.waitFor((x) => x.topic === '/ext/register', 5000);
    h.assertSameSecret(JSON.parse(m2.payload.toString()).deviceSecret, env.emu.device(env.productKey, 'lsdk-0002').DeviceSecret, 'deviceSecret');
    await onTls.destroy();

    // regnwl, and a wrong sign
    const nwl = await connectTls(tlsPort, ca, dynregConnect('lsdk-0003', env.productKey, env.productSecret, { authType: 'regnwl' }));
    assert.strictEqual(nwl.connack.returnCode, 5);
    await nwl.destroy();
    const wrong = await connectTls(tlsPort, ca, dynregConnect('lsdk-0004', env.productKey, 'not-the-product-secret'));
    assert.strictEqual(wrong.connack.returnCode, 5);
    await wrong.destroy();
    assert.strictEqual(env.emu.device(env.productKey, 'lsdk-0003'), null);
    assert.strictEqual(env.emu.device(env.productKey, 'lsdk-0004'), null);

    const log = env.broker.log();
    assert.match(log, /dynreg CONNECT from client 'lsdk-0002\.[^']*' \(127\.0\.0\.1\) refused at CONNACK: unauthorized \(not over a TLS listener named in plugin_opt_dynreg_tls_ports/);
    assert.match(log, /refused at CONNACK: invalid_request \(authType=regnwl \(no pre-registration\) is not served: no OpenAPI gives the deviceToken/);
    assert.match(log, /dynreg CONNECT for device lsdk-0004 .* refused at CONNACK: unauthorized \(the signature does not match\)/);
    assert.match(log, /dynreg CONNECT for device lsdk-0001 .* refused at CONNACK: unauthorized \(this random was already used/);
    for (const s of [env.productSecret, answer.deviceSecret]) assert.ok(!log.includes(s), 'a secret reached the log');

    // nobody forges an answer: /ext/register is the plugin's alone
    const forger = await mqtt.connect(env.port, { clientId: 'forger-0001', version: 5 });
    assert.strictEqual(await forger.publish('/ext/register', '{"deviceSecret":"forged"}', { qos: 1 }), 0x87);
    assert.strictEqual(await forger.subscribe('/ext/register'), 0x87, 'only a connection waiting for its answer may subscribe');
    await forger.disconnect();

    // the bootstrap topic is served as before, by a client without a username (deferred)
    await h.assertServes(env, 'topic-0001');
    const audit = h.auditLines(env);
    assert.strictEqual(audit.filter((l) => l.code === 'ok').length, 3);
    assert.strictEqual(audit.filter((l) => l.code === 'unauthorized').length, 3);
    assert.strictEqual(audit.filter((l) => l.code === 'invalid_request').length, 1);

    // $SYS counters of its own
    await h.waitForSys(env, 'dynreg/answered', (v) => v === '2');
    assert.strictEqual(await h.readSys(env, 'dynreg/connects'), '6');
    assert.strictEqual(await h.readSys(env, 'dynreg/accepted'), '2');
    assert.strictEqual(await h.readSys(env, 'dynreg/refused'), '4');
    assert.strictEqual(await h.readSys(env, 'dynreg/errors'), null, 'a counter that never moved is not published');
  } finally {
    await env.stop();
    fs.rmSync(pkiDir, { recursive: true, force: true });
  }
});

test('dynreg window: a device the platform cannot answer in time is told busy and closed; its retry gets the triple', async () => {
  const { env, tlsPort, ca, pkiDir } = await setUp({ dynreg_window_ms: 1000 });
  try {
    const dn = 'lsdk-slow-0001';
    env.emu.setLatency(3000);
    const t0 = Date.now();
    const c = dynregConnect(dn, env.productKey, env.productSecret);
    const client = await connectTls(tlsPort, ca, c);
    assert.strictEqual(client.connack.returnCode, 0);
    // a second connection presenting the same client id while the first waits: refused, and
    // the first keeps its connection
    const takeover = await connectTls(tlsPort, ca, c);
    assert.strictEqual(takeover.connack.returnCode, 5);
    await takeover.destroy();
    const m = await client.waitFor((x) => x.topic === '/ext/register', 5000);
    const busy = JSON.parse(m.payload.toString());
    assert.strictEqual(busy.code, 'busy');
    assert.strictEqual(busy.deviceSecret, undefined);
    assert.ok(await closed(client, 2000), 'the connection was not closed after the error');
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 4500, `closed after ${took} ms`);
    // the flow goes on: the device exists once the slow answer is in
    await h.waitForAudit(env, (l) => l.deviceId === dn && l.code === 'connection_closed', { timeoutMs: 10000 });
    env.emu.setLatency(0);
    assert.ok(env.emu.device(env.productKey, dn), 'the registration went on');
    const retry = await connectTls(tlsPort, ca, dynregConnect(dn, env.productKey, env.productSecret));
    assert.strictEqual(retry.connack.returnCode, 0);
    const m2 = await retry.waitFor((x) => x.topic === '/ext/register', 5000);
    h.assertSameSecret(JSON.parse(m2.payload.toString()).deviceSecret, env.emu.device(env.productKey, dn).DeviceSecret, 'deviceSecret');
    await retry.destroy();
    const metrics = await h.waitForAudit(env, (l) => l.deviceId === dn && l.code === 'ok');
    assert.ok(metrics);
  } finally {
    await env.stop();
    fs.rmSync(pkiDir, { recursive: true, force: true });
  }
});

test('a bootstrap topic request for the same device takes a waiting Link SDK connection\'s place: it is told busy at once', async () => {
  const { env, tlsPort, ca, pkiDir } = await setUp();
  try {
    const dn = 'lsdk-join-0001';
    env.emu.setLatency(2500);
    const client = await connectTls(tlsPort, ca, dynregConnect(dn, env.productKey, env.productSecret));
    assert.strictEqual(client.connack.returnCode, 0);
    await h.sleep(300);
    const t0 = Date.now();
    const topic = h.rr(env.port, { id: dn, message: env.request(dn), timeoutS: 15 }); // joins the flow under way
    const m = await client.waitFor((x) => x.topic === '/ext/register', 4000);
    const busy = JSON.parse(m.payload.toString());
    assert.strictEqual(busy.code, 'busy');
    assert.ok(Date.now() - t0 < 1500, `told within ${Date.now() - t0} ms, not at the end of its window`);
    const r = await topic;
    assert.ok(r.reply && r.reply.success, 'the newer request got the triple');
    env.emu.setLatency(0);
    await h.waitForAudit(env, (l) => l.client && l.client.startsWith(`${dn}.`) && l.reason === 'superseded');
  } finally {
    await env.stop();
    fs.rmSync(pkiDir, { recursive: true, force: true });
  }
});

test('a Link SDK connection is nobody: no rights of the user its username names; MQTT 3.1.1 only', async () => {
  // acl defer: the acl_file decides for other clients; it gives the user lsdk-vic&<pk> private/#,
  // and anonymous clients read access to it (the watcher)
  const dir = h.makeWorkdir();
  const aclFile = path.join(dir, 'acl');
  fs.writeFileSync(aclFile, `topic read private/#\nuser lsdk-vic&${h.PRODUCT_KEY}\ntopic readwrite private/#\n`);
  h.giveToBroker(aclFile);
  const { env, tlsPort, ca, pkiDir } = await setUp({ acl: 'defer' }, { extraConfig: `acl_file ${aclFile}\n` });
  try {
    const watcher = await mqtt.connect(env.port, { clientId: 'watcher-0001' });
    assert.strictEqual(await watcher.subscribe('private/#'), 0);
    env.emu.setLatency(3000); // the connection waits for its answer meanwhile
    const client = await connectTls(tlsPort, ca, dynregConnect('lsdk-vic', env.productKey, env.productSecret));
    assert.strictEqual(client.connack.returnCode, 0);
    assert.strictEqual(await client.subscribe('private/#'), 0x80, 'the user\'s ACL does not come with the sign');
    assert.strictEqual(await client.subscribe('/ext/register'), 0);
    await client.publish('private/lsdk-vic/cmd', '{"cmd":"unlock"}', { qos: 1 });
    await h.sleep(500);
    assert.strictEqual(watcher.messages.filter((m) => m.topic.startsWith('private/')).length, 0, 'its publish went nowhere');
    // its answer still comes (the triple, or busy if the window ran out first)
    const m = await client.waitFor((x) => x.topic === '/ext/register', 6000);
    const a = JSON.parse(m.payload.toString());
    assert.ok(typeof a.deviceSecret === 'string' || a.code === 'busy', 'an answer on /ext/register');
    env.emu.setLatency(0);
    await client.destroy();
    await watcher.disconnect();

    // MQTT 5 (a session expiry could keep it) and MQTT 3.1: not the SDK's protocol
    for (const version of [5, 3]) {
      const c = dynregConnect(`lsdk-v${version}`, env.productKey, env.productSecret);
      const bytes = mqtt.packets.connect({ clientId: c.clientId, version, clean: true, keepAlive: 1200, username: c.username, password: c.password,
        sessionExpiry: version === 5 ? 3600 : undefined });
      const refused = await new Promise((resolve, reject) => {
        const socket = tls.connect({ port: tlsPort, host: '127.0.0.1', ca: fs.readFileSync(ca), servername: 'localhost' });
        const raw = new mqtt.RawClient(socket, { version });
        raw.onConnack = (connack, err) => { socket.destroy(); if (connack) resolve(connack); else reject(err); };
        socket.on('secureConnect', () => socket.write(bytes));
        socket.on('error', () => {});
      });
      assert.notStrictEqual(refused.returnCode ?? refused.reasonCode, 0, `MQTT ${version}: refused`);
    }
    await h.waitForAudit(env, (l) => l.client && l.client.startsWith('lsdk-v5.') && l.reason === 'dynreg_malformed');
    assert.match(env.broker.log(), /the CONNECT must be MQTT 3\.1\.1, as the Link SDK's/);
  } finally {
    await env.stop();
    fs.rmSync(pkiDir, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a plain listener sharing the TLS port number on another address: refused there, served on TLS', async () => {
  // the attack: TLS on 127.0.0.1:P, the same P in the clear on ::1 and on 127.0.0.2
  const tlsPort = await h.freePort();
  const { env, ca, pkiDir } = await setUp({ dynreg_tls_ports: String(tlsPort) }, { tlsPort, extraConfig: `listener ${tlsPort} ::1\nlistener ${tlsPort} 127.0.0.2\n` });
  try {
    await h.waitForLog(env, new RegExp(`port ${tlsPort} is not a TLS listener \\(TLS on 127\\.0\\.0\\.1, in the clear on ::1`));
    for (const host of ['::1', '127.0.0.2']) {
      const c = dynregConnect(`lsdk-same-${host === '::1' ? 6 : 2}`, env.productKey, env.productSecret);
      const plain = await mqtt.connect(tlsPort, { ...c, keepAlive: 1200, host });
      assert.strictEqual(plain.connack.returnCode, 5, `refused in the clear on ${host}`);
      assert.ok(!plain.messages.some((m) => m.topic === '/ext/register'));
      await plain.destroy();
    }
    const c = dynregConnect('lsdk-same-tls', env.productKey, env.productSecret);
    const client = await connectTls(tlsPort, ca, c);
    assert.strictEqual(client.connack.returnCode, 0, 'served over TLS on 127.0.0.1');
    const m = await client.waitFor((x) => x.topic === '/ext/register', 5000);
    h.assertSameSecret(JSON.parse(m.payload.toString()).deviceSecret, env.emu.device(env.productKey, 'lsdk-same-tls').DeviceSecret, 'deviceSecret');
    await client.destroy();
    assert.strictEqual(env.emu.device(env.productKey, 'lsdk-same-6'), null);
    assert.strictEqual(env.emu.device(env.productKey, 'lsdk-same-2'), null);
    const log = env.broker.log();
    assert.match(log, /lsdk-same-6\.[^']*' \(::1\) refused at CONNACK: unauthorized \(this port, named in plugin_opt_dynreg_tls_ports, answers in the clear here/);
    assert.match(log, /lsdk-same-2\.[^']*' \(127\.0\.0\.1\) refused at CONNACK: unauthorized \(the plugin did not check that the address this connection came in on answers TLS/);
  } finally {
    await env.stop();
    fs.rmSync(pkiDir, { recursive: true, force: true });
  }
});

test('dynreg_tls_ports naming a plain listener: found out, and dynreg refused there', async () => {
  const { env, pkiDir } = await setUp({ dynreg_tls_ports: '$PORT' });
  try {
    await h.waitForLog(env, new RegExp(`plugin_opt_dynreg_tls_ports: port ${env.port} is not a TLS listener \\(in the clear on 127\\.0\\.0\\.1\\): dynreg CONNECTs that arrive in the clear are refused`));
    const c = dynregConnect('lsdk-plain-0001', env.productKey, env.productSecret);
    const client = await mqtt.connect(env.port, { ...c, keepAlive: 1200 });
    assert.strictEqual(client.connack.returnCode, 5);
    await client.destroy();
    assert.match(env.broker.log(), /refused at CONNACK: unauthorized \(this port, named in plugin_opt_dynreg_tls_ports, answers in the clear here/);
    assert.strictEqual(env.emu.device(env.productKey, 'lsdk-plain-0001'), null);
  } finally {
    await env.stop();
    fs.rmSync(pkiDir, { recursive: true, force: true });
  }
});

// A port named in dynreg_tls_ports whose listener accepts and never answers (made here): the
// probe thread waits for it at most 3 s and says so; a broker stopped while it waits exits at
// once, the thread stopped mid-handshake and joined.
test('dynreg_tls_ports naming a silent port: left to the operator after 3 s; a shutdown meanwhile is prompt', async () => {
  const net = require('net');
  const held = [];
  let onConnection = null;
  const silent = net.createServer((s) => { held.push(s); s.on('error', () => {}); if (onConnection) onConnection(); });
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = silent.address().port;
  const probed = () => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the probe never connected to the silent port')), 10000);
    onConnection = () => { onConnection = null; clearTimeout(timer); resolve(); };
  });
  let baselineMs = 0; // how long a broker takes to stop with the probe done
  try {
    let connected = probed();
    let { env, pkiDir } = await setUp({ dynreg_tls_ports: String(silentPort) });
    try {
      await connected;
      const t0 = Date.now();
      await h.waitForLog(env, new RegExp(`dynreg: could not check that port ${silentPort} answers TLS \\(no answer in time on 127\\.0\\.0\\.1\\): taking plugin_opt_dynreg_tls_ports' word for it`));
      const waited = Date.now() - t0;
      assert.ok(waited >= 2500 && waited < 6000, `the verdict came ${waited} ms after the probe connected`);
      const s0 = Date.now();
      await env.broker.stop();
      baselineMs = Date.now() - s0;
    } finally {
      await env.stop();
      fs.rmSync(pkiDir, { recursive: true, force: true });
    }

    connected = probed();
    ({ env, pkiDir } = await setUp({ dynreg_tls_ports: String(silentPort) }));
    try {
      await connected;
      const t0 = Date.now();
      await env.broker.stop();
      const took = Date.now() - t0;
      // the probe's own timeout would hold the join for up to 3 s
      assert.ok(took < baselineMs + 1500, `the broker took ${took} ms to stop while the probe waited (${baselineMs} ms with the probe done)`);
      assert.doesNotMatch(env.broker.log(), /no answer in time/);
      assert.match(env.broker.log(), /mosquitto version [\d.]+ terminating/);
    } finally {
      await env.stop();
      fs.rmSync(pkiDir, { recursive: true, force: true });
    }
  } finally {
    for (const s of held) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});
