'use strict';
// Contract conformance: the independent Python client (bootstrap_client.py, written from
// docs/contract.md alone, on paho-mqtt and cryptography) against a real broker with the plugin
// and the emulator. conformance.py runs the cases and says which failed; this file starts the
// environments (tests/integration/lib/harness.js) and checks every triple the client stored
// against the emulator's record. Nothing here or in the client prints a secret.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('../integration/lib/harness');

const DRIVER = path.join(__dirname, 'conformance.py');
const CONTRACT = path.join(__dirname, '..', '..', 'docs', 'contract.md');
// Debian's interpreter: python3-paho-mqtt and python3-cryptography are installed for it
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

// env: the environment the scenario ran against, whose broker state and log tail (secrets
// masked) a failure message shows
async function runDriver(args, secrets, timeoutMs, env = null) {
  const r = await h.run(PYTHON, [DRIVER, ...args], { timeoutMs });
  process.stdout.write(r.stdout);
  const leaked = secrets.filter((s) => s && (r.stdout.includes(s) || r.stderr.includes(s))).length;
  assert.strictEqual(leaked, 0, `the client printed ${leaked} secret(s)`);
  if (r.code !== 0 && env) {
    const p = env.broker.proc;
    r.stderr += `\nbroker: ${p && p.exitCode === null && p.signalCode === null ? 'running' : `exited (${p && (p.exitCode ?? p.signalCode)})`}; its log's end:\n${await env.logTail(30)}`;
  }
  assert.strictEqual(r.code, 0, `conformance.py ${args[0]} failed (exit ${r.code}${r.signal ? ', ' + r.signal : ''}):\n${r.stderr}`);
  return r;
}

// Runs one scenario against env, in format json or cbor (docs/contract.md, "CBOR": every
// request and reply of it); returns the triples the client got, checked against the emulator:
// each is the platform's own record for that device.
async function scenario(env, name, expectedDevices, format = 'json') {
  const out = path.join(env.dir, `${name}-${format}.triples`);
  const cfg = path.join(env.dir, `${name}-${format}.json`);
  fs.writeFileSync(cfg, JSON.stringify({ host: '127.0.0.1', port: env.port, productKey: env.productKey,
    productSecretFile: env.productSecretFile, scenario: name, out, format }));
  await runDriver(['run', cfg], [env.productSecret, env.accessKeySecret, ...env.emu.allDeviceSecrets()], 180000, env);
  const triples = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.strictEqual(fs.statSync(out).mode & 0o777, 0o600, 'the triples file is private');
  assert.deepStrictEqual(Object.keys(triples).sort(), expectedDevices.slice().sort(), 'the devices served');
  for (const [id, t] of Object.entries(triples)) {
    const record = env.emu.device(env.productKey, id);
    assert.ok(record, `${id}: the emulator has no such device`);
    assert.deepStrictEqual(Object.keys(t), ['ProductKey', 'DeviceName', 'DeviceSecret', 'IotId'], `${id}: the triple's members`);
    assert.strictEqual(t.ProductKey, env.productKey);
    assert.strictEqual(t.DeviceName, id);
    assert.strictEqual(t.IotId, record.IotId, `${id}: IotId`);
    h.assertSameSecret(t.DeviceSecret, record.DeviceSecret, `${id}: DeviceSecret`);
  }
  return triples;
}

test('every vector of docs/contract.md, reproduced by the Python client', async () => {
  await runDriver(['vectors', CONTRACT], [], 30000);
});

for (const format of ['json', 'cbor']) test(`${format}: MQTT 3.1.1 and 5, every sign method, new and existing devices, Response Topic and Correlation Data, every refusal a device can provoke`, async () => {
  await h.withEnv({ pluginOptions: { batching: 'off', audit_file: '$DIR/audit.log' } }, async (env) => {
    env.emu.preRegister(env.productKey, 'py-pre-0001');
    const before = env.emu.stats().byAction;
    const ids = [];
    for (const v of [4, 5]) for (const m of ['sha256', 'sha1', 'md5']) ids.push(`py-v${v}-${m}`);
    ids.push('py-v5-corr', 'py-v5-corr2', 'py-qos-0', 'py-qos-2', 'py-v5-below', 'py-v5-plain', 'py-pk-0001', 'py-pre-0001', 'py-un-0003', 'py-rl-0001');
    await scenario(env, 'main', ids, format);
    // new devices were registered, existing ones (asked twice, or created before) looked up
    const after = env.emu.stats().byAction;
    assert.ok((after.RegisterDevice || 0) - (before.RegisterDevice || 0) >= ids.length - 1, 'RegisterDevice for every new device');
    assert.ok((after.QueryDeviceDetail || 0) - (before.QueryDeviceDetail || 0) >= 7, 'QueryDeviceDetail for the devices asking again');
    // nothing the client provoked was registered: refusals make no platform call
    for (const id of ['ab', 'py-ir-0001', 'py-ir-0002', 'py-un-0001', 'py-un-0002', 'py-un-0004', 'py-un-0005', 'py-un-0006']) {
      assert.strictEqual(env.emu.device(env.productKey, id), null, `${id} was registered`);
    }
    // every request of the run was read, answered and audited in its format
    const lines = h.auditLines(env);
    const formats = new Set(lines.filter((l) => l.reason !== 'refusals_unanswered').map((l) => l.format));
    assert.deepStrictEqual([...formats], [format], 'the audit lines\' format');
    if (format === 'cbor') {
      assert.ok(lines.filter((l) => l.reason === 'not_cbor').length >= 6, 'not_cbor in the audit trail');
      assert.ok(lines.some((l) => l.reason === 'not_object'), 'not_object in the audit trail');
    }
  });
});

test('not_allowed with a device allowlist', async () => {
  const dir = h.makeWorkdir();
  const list = path.join(dir, 'allowlist');
  fs.writeFileSync(list, 'py-al-*\n', { mode: 0o644 });
  h.giveToBroker(list);
  try {
    await h.withEnv({ pluginOptions: { device_allowlist: list } }, async (env) => {
      for (const format of ['json', 'cbor']) await scenario(env, 'allowlist', ['py-al-0001'], format);
      assert.strictEqual(env.emu.device(env.productKey, 'py-xx-0001'), null, 'a refused device was registered');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('busy and retryAfter: one platform call at a time, a queue of one, a slow platform', async () => {
  await h.withEnv({ pluginOptions: { batching: 'off', max_inflight: 1, max_queue: 1 } }, async (env) => {
    env.emu.setLatency(1000);
    for (const format of ['json', 'cbor']) await scenario(env, 'busy', ['py-busy-0000', 'py-busy-0001', 'py-busy-0002', 'py-busy-0003', 'py-busy-0004'], format);
  });
});

test('reply_encryption off: the triple in the clear, and a device expecting a sealed reply refuses it', async () => {
  await h.withEnv({ pluginOptions: { reply_encryption: 'off' } }, async (env) => {
    for (const format of ['json', 'cbor']) await scenario(env, 'clear', ['py-clr-4', 'py-clr-5'], format);
  });
});

test('request_auth none: the bare deviceId or {"deviceId"}, the triple in the clear to the deviceId\'s client', async () => {
  await h.withEnv({ requestAuth: 'none' }, async (env) => {
    for (const format of ['json', 'cbor']) await scenario(env, 'none', ['py-none-0001', 'py-none-0002', 'py-none-0003', 'py-none-0004', 'py-none-0005'], format);
  });
});
