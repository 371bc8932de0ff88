'use strict';
// Text from outside reaches the log and the audit trail escaped, never filtered (issue 18,
// items 4 and 5): every byte value 0x00-0xff through the client id, the deviceId and the
// platform's IotId, Code, Message and RequestId. Two different inputs never print the same and
// no raw control byte reaches either file.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

const INVALID = '{"deviceId":1}';

// The escaping the plugin promises: printable ASCII as it is, a backslash doubled, \xNN else.
function escaped(buf) {
  let out = '';
  for (const b of buf) {
    if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += '\\x' + b.toString(16).padStart(2, '0');
  }
  return out;
}

const hex = (b) => b.toString(16).padStart(2, '0');

// The tests that ask one platform call after another (hundreds): with wakeup_port each reply goes
// out when it is ready, not at the broker's next idle tick (up to 100 ms later, every time).
const SERVED = { audit_file: '$DIR/audit.log', wakeup_port: '$PORT' };

function auditText(env) {
  const f = path.join(env.dir, 'audit.log');
  return fs.existsSync(f) ? fs.readFileSync(f) : Buffer.alloc(0);
}

function auditLines(env) {
  return auditText(env).toString('latin1').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// No byte outside printable ASCII but the line end, in the audit file and in every line the
// plugin wrote to the log; and every log line begins as the broker begins them (a timestamp):
// no line was forged by a newline inside one.
function assertClean(env) {
  const audit = auditText(env);
  for (let i = 0; i < audit.length; i++) {
    assert.ok(audit[i] === 0x0a || (audit[i] >= 0x20 && audit[i] < 0x7f), `raw byte 0x${hex(audit[i])} in the audit file at ${i}`);
  }
  const log = Buffer.from(env.broker.log(), 'latin1').toString('latin1');
  for (const line of log.split('\n').filter(Boolean)) {
    assert.match(line, /^\d+: /, `a log line that the broker did not begin: ${JSON.stringify(line)}`);
    if (!line.includes('mosquitto_bootstrap:')) continue;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      assert.ok(c >= 0x20 && c < 0x7f, `raw byte 0x${hex(c)} in a plugin log line: ${JSON.stringify(line)}`);
    }
  }
}

// One refused request under clientId from its own loopback address (each address has its own
// refusal limit: 512 of them from one would go unanswered, and unlogged, after 60).
async function refusedAs(env, clientId, i) {
  const localAddress = `127.77.${Math.floor(i / 250)}.${(i % 250) + 1}`;
  let c;
  try {
    c = await mqtt.connect(env.port, { clientId, localAddress, keepAlive: 0, timeoutMs: 3000 });
  } catch (e) {
    return false; // the broker closed the connection: it took no such client id
  }
  if (c.connack.returnCode !== 0) { c.destroy(); return false; }
  await c.publish('bootstrap/register', INVALID, { qos: 1 });
  await c.disconnect();
  return true;
}

// A request from its own loopback address (the refusal limit is per address); its answer.
async function requestFrom(env, clientId, localAddress, payload) {
  const c = await mqtt.connect(env.port, { clientId, localAddress, keepAlive: 0 });
  try {
    await c.subscribe(`bootstrap/reply/${clientId}`, 1);
    await c.publish('bootstrap/register', payload, { qos: 1 });
    const m = await c.waitFor(() => true, 5000).catch(() => null);
    return m ? JSON.parse(m.payload.toString()) : null;
  } finally {
    await c.disconnect();
  }
}

test('client ids that the printable filter made "dev-0001" are told apart in the log and the audit trail', async () => {
  await h.withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' }, logTypes: ['error', 'warning', 'notice'] }, async (env) => {
    const ids = ['dev-0001', 'dev-0001\u00e9', '\u00addev-0001', 'dev-\u200b0001'];
    for (let i = 0; i < ids.length; i++) assert.ok(await refusedAs(env, ids[i], i), `${JSON.stringify(ids[i])} connected`);
    await h.sleep(300);
    const clients = auditLines(env).map((l) => l.client).filter((c) => c && c.includes('0001'));
    console.log('# audit clients:', JSON.stringify(clients));
    assert.deepStrictEqual(clients, ids.map((id) => escaped(Buffer.from(id, 'utf8'))));
    const logged = [...env.broker.log().matchAll(/mosquitto_bootstrap: request from client '([^']*)'/g)].map((m) => m[1]);
    console.log('# log clients:', JSON.stringify(logged));
    assert.deepStrictEqual(logged, ids.map((id) => escaped(Buffer.from(id, 'utf8'))));
    assertClean(env);
  });
});

test('every byte value in a client id (raw, and as U+0000-U+00FF in UTF-8) prints distinctly, escaped, in log and audit', async () => {
  await h.withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' }, logTypes: ['error', 'warning', 'notice'] }, async (env) => {
    const sent = [];
    for (let b = 0; b < 256; b++) {
      for (const [kind, middle] of [['r', Buffer.from([b])], ['u', Buffer.from(String.fromCharCode(b), 'utf8')]]) {
        const id = Buffer.concat([Buffer.from(`cid-${kind}${hex(b)}-`), middle, Buffer.from('-end')]);
        if (await refusedAs(env, id, sent.length + 1)) sent.push(id);
      }
    }
    console.log(`# the broker took ${sent.length} of 512 client ids`);
    assert.ok(sent.length >= 256, 'the broker took at least every printable and every UTF-8 id');
    await h.sleep(500);
    const audit = new Map(auditLines(env).filter((l) => l.client && l.client.startsWith('cid-')).map((l) => [l.client, l]));
    const log = env.broker.log();
    const seen = new Set();
    for (const id of sent) {
      const want = escaped(id);
      assert.ok(audit.has(want), `audit line for ${want}`);
      assert.ok(log.includes(`request from client '${want}' (`), `log line for ${want}`);
      assert.ok(!seen.has(want), `${want} printed for two ids`);
      seen.add(want);
    }
    assertClean(env);
  });
});

test('every byte value in a deviceId: refused or served, never printed raw', async () => {
  await h.withEnv({ requestAuth: 'none', pluginOptions: SERVED, logTypes: ['error', 'warning', 'notice', 'information'] }, async (env) => {
    let valid = 0;
    const named = []; // the valid deviceIds asked for: the only ones an audit line may name
    for (let b = 0; b < 256; b++) {
      // as a JSON escape (any code point), and as the raw byte in the payload
      for (const [kind, payload] of [['u', Buffer.from(`{"deviceId":"dv-${hex(b)}\\u00${hex(b)}-end"}`)],
        ['r', Buffer.concat([Buffer.from(`{"deviceId":"dv-${hex(b)}`), Buffer.from([b]), Buffer.from('-end"}')])]]) {
        // a valid deviceId's triple goes to the device's own reply topic: asked as the device
        const deviceId = `dv-${hex(b)}${String.fromCharCode(b)}-end`;
        const clientId = /^[A-Za-z0-9_@.:-]{4,32}$/.test(deviceId) ? deviceId : `dvc-${kind}${hex(b)}`;
        if (clientId === deviceId) named.push(deviceId);
        const reply = await requestFrom(env, clientId, `127.78.${b}.${kind === 'u' ? 1 : 2}`, payload);
        assert.ok(reply, `an answer for deviceId byte 0x${hex(b)} (${kind})`);
        if (reply.success) valid++;
      }
    }
    console.log(`# ${valid} of 512 deviceIds served`);
    await h.sleep(300);
    const lines = auditLines(env).filter((l) => l.client && l.client.startsWith('dv'));
    assert.strictEqual(lines.length, 512, 'one audit line per request');
    // each valid deviceId named as it was sent (twice: as a JSON escape and as the raw byte),
    // no other named at all
    const ids = lines.filter((l) => l.deviceId).map((l) => l.deviceId);
    assert.deepStrictEqual(ids.sort(), named.sort());
    assertClean(env);
  });
});

test('every byte value in the platform\'s Code, Message and RequestId: escaped in the log, distinct, no raw byte', async () => {
  await h.withEnv({ requestAuth: 'none', pluginOptions: SERVED, logTypes: ['error', 'warning', 'notice', 'information'] }, async (env) => {
    const chars = [];
    for (let b = 1; b < 256; b++) chars.push(b);
    for (const b of chars) {
      const ch = String.fromCharCode(b);
      env.emu.addFaults({ kind: '5xx', status: 400, code: `C-${hex(b)}-${ch}-end`, message: `M-${hex(b)}-${ch}-end\n`, requestId: `R-${hex(b)}-${ch}-end` });
      const r = await env.rr(`pf-${hex(b)}`, { timeoutS: 10 });
      assert.ok(r.reply && !r.reply.success, `refused for Code byte 0x${hex(b)}`);
    }
    await h.sleep(300);
    const log = env.broker.log();
    const seen = new Set();
    for (const b of chars) {
      // the code the platform sent, UTF-8 on the wire, shown byte for byte
      const want = escaped(Buffer.from(`C-${hex(b)}-${String.fromCharCode(b)}-end`, 'utf8'));
      assert.ok(log.includes(want), `Code ${want} in the log`);
      assert.ok(!seen.has(want));
      seen.add(want);
      const rid = escaped(Buffer.from(`R-${hex(b)}-${String.fromCharCode(b)}-end`, 'utf8'));
      const line = auditLines(env).find((l) => l.deviceId === `pf-${hex(b)}`);
      assert.ok(line, `audit line for pf-${hex(b)}`);
      assert.strictEqual(line.requestId, rid, `RequestId of pf-${hex(b)} in the audit trail`);
    }
    assertClean(env);
  });
});

test('every byte value in an IotId, and a forged log line in one: escaped in the log line that names it', async () => {
  await h.withEnv({ requestAuth: 'none', pluginOptions: SERVED, logTypes: ['error', 'warning', 'notice', 'information'] }, async (env) => {
    const iotIds = [];
    for (let b = 1; b < 256; b++) iotIds.push([`io-${hex(b)}`, `I-${hex(b)}-${String.fromCharCode(b)}-end`]);
    iotIds.push(['io-forged', 'x\n1796000000: mosquitto_bootstrap: FORGED LOG LINE\u001b[31m']);
    for (const [dev, iot] of iotIds) {
      env.emu.preRegister(h.PRODUCT_KEY, dev);
      env.emu.device(h.PRODUCT_KEY, dev).IotId = iot;
      const r = await env.rr(dev, { timeoutS: 10 });
      assert.ok(r.reply && r.reply.success, `${dev} served`);
      assert.strictEqual(r.reply.data.IotId, iot, 'the device gets its IotId as the platform gave it');
    }
    await h.sleep(300);
    const log = env.broker.log();
    const seen = new Set();
    for (const [dev, iot] of iotIds) {
      const want = escaped(Buffer.from(iot, 'utf8'));
      assert.ok(log.includes(`device ${dev}: triple sent`) && log.includes(`IotId ${want},`), `IotId ${want} in the log`);
      assert.ok(!seen.has(want));
      seen.add(want);
    }
    assert.ok(!/^\d+: mosquitto_bootstrap: FORGED LOG LINE/m.test(log), 'no forged line');
    assertClean(env);
  });
});
