'use strict';
// CBOR beside JSON (docs/contract.md, "CBOR"): a CBOR request from a file through the real
// mosquitto_pub -f, answered in CBOR on the reply topic plus /cbor while a JSON request still
// gets JSON on the JSON topic; refusals in CBOR; the audit line's format and the requests/cbor
// metric; and the bytes on the wire per bootstrap in each format (bench/wire_bytes.py).
// CBOR is read and written here by Debian's python3-cbor2, not by anything of the plugin's.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const WIRE = path.join(__dirname, '..', '..', 'bench', 'wire_bytes.py');

// cbor2 on the other side of a pipe: bytes as {"$bytes": hex} in JSON
const CODEC = `
import sys, json, cbor2, io
def plain(v):
    if isinstance(v, bytes): return {'$bytes': v.hex()}
    if isinstance(v, dict): return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list): return [plain(x) for x in v]
    return v
if sys.argv[1] == 'encode':
    sys.stdout.write(cbor2.dumps(json.loads(sys.argv[2])).hex())
else:
    b = bytes.fromhex(sys.argv[2]); fp = io.BytesIO(b); v = cbor2.CBORDecoder(fp).decode()
    assert fp.tell() == len(b), 'trailing bytes'
    sys.stdout.write(json.dumps(plain(v)))
`;

async function cbor(op, arg) {
  const r = await h.run(PYTHON, ['-c', CODEC, op, arg]);
  assert.strictEqual(r.code, 0, `cbor2 ${op}: ${r.stderr}`);
  return op === 'encode' ? Buffer.from(r.stdout, 'hex') : JSON.parse(r.stdout);
}

function writeFile(dir, name, data) {
  const f = path.join(dir, name);
  fs.writeFileSync(f, data);
  return f;
}

function pubFile(port, topic, file, id) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', topic, '-f', file, '-q', '1'];
  if (id) args.push('-i', id);
  return h.run('mosquitto_pub', args);
}

function checkTriple(env, data, id) {
  assert.deepStrictEqual(Object.keys(data), ['ProductKey', 'DeviceName', 'DeviceSecret', 'IotId'], 'the triple, keys in order');
  const record = env.emu.device(env.productKey, id);
  assert.strictEqual(data.DeviceName, id);
  assert.strictEqual(data.ProductKey, env.productKey);
  assert.strictEqual(data.IotId, record.IotId);
  h.assertSameSecret(data.DeviceSecret, record.DeviceSecret, `${id}: DeviceSecret`);
}

test('mosquitto_pub -f: a CBOR request gets CBOR on /cbor, a JSON one JSON on the JSON topic; a refusal in CBOR; audit and metrics say cbor', async () => {
  const options = await h.operatorOptions({ requestAuth: 'none', pluginOptions: { existing_devices: 'never', audit_file: '$DIR/audit.log' } });
  await h.withEnv(options, async (env) => {
    env.emu.preRegister(env.productKey, 'dev-cbor-02');
    const jsonFile = writeFile(env.dir, 'dev-cbor-01.json', JSON.stringify({ deviceId: 'dev-cbor-01' }));
    const cborFile = writeFile(env.dir, 'dev-cbor-01.cbor', await cbor('encode', JSON.stringify({ deviceId: 'dev-cbor-01' })));

    // the device listens on both its reply topics; payloads printed in hex
    const device = h.sub(env.port, { id: 'dev-cbor-01', topics: ['bootstrap/reply/dev-cbor-01', 'bootstrap/reply/dev-cbor-01/cbor'], extra: ['-F', 'MSG|%t|%x'] });
    await device.ready;
    let r = await pubFile(env.port, 'bootstrap/register/cbor', cborFile);
    assert.strictEqual(r.code, 0, r.stderr);
    let got = await device.waitFor(1);
    r = await pubFile(env.port, 'bootstrap/register', jsonFile);
    assert.strictEqual(r.code, 0, r.stderr);
    got = await device.waitFor(2);
    await device.messages();
    assert.deepStrictEqual(got.map((m) => m.topic), ['bootstrap/reply/dev-cbor-01/cbor', 'bootstrap/reply/dev-cbor-01'], 'CBOR on /cbor first, then JSON on the JSON topic');
    const inCbor = await cbor('decode', got[0].payload);
    assert.deepStrictEqual(Object.keys(inCbor), ['success', 'data']);
    assert.strictEqual(inCbor.success, true);
    checkTriple(env, inCbor.data, 'dev-cbor-01');
    // the same device asking again in JSON (existing_devices never): JSON, on the JSON topic
    const inJson = JSON.parse(Buffer.from(got[1].payload, 'hex').toString());
    assert.deepStrictEqual([inJson.success, inJson.code], [false, 'device_exists'], 'JSON, as before');

    // a refusal the device's own client receives, for a device created before: device_exists, in CBOR
    const exists = h.sub(env.port, { id: 'dev-cbor-02', topics: ['bootstrap/reply/dev-cbor-02', 'bootstrap/reply/dev-cbor-02/cbor'], extra: ['-F', 'MSG|%t|%x'] });
    await exists.ready;
    r = await pubFile(env.port, 'bootstrap/register/cbor', writeFile(env.dir, 'dev-cbor-02.cbor', await cbor('encode', JSON.stringify({ deviceId: 'dev-cbor-02' }))));
    assert.strictEqual(r.code, 0, r.stderr);
    got = await exists.waitFor(1);
    await h.sleep(300);
    got = await exists.messages();
    assert.strictEqual(got.length, 1, 'one answer, on one topic');
    assert.strictEqual(got[0].topic, 'bootstrap/reply/dev-cbor-02/cbor');
    const refused = await cbor('decode', got[0].payload);
    assert.deepStrictEqual(Object.keys(refused), ['success', 'code', 'message']);
    assert.deepStrictEqual([refused.success, refused.code], [false, 'device_exists']);

    // a malformed CBOR request (a file of bytes that is no CBOR map) gets invalid_request in
    // CBOR on the requester's /cbor; the same bytes on the JSON topic get JSON
    const c = await mqtt.connect(env.port, { clientId: 'dev-cbor-03' });
    try {
      await c.subscribe('bootstrap/reply/dev-cbor-03/#', 1);
      await c.subscribe('bootstrap/reply/dev-cbor-03', 1);
      const bad = fs.readFileSync(writeFile(env.dir, 'bad.cbor', Buffer.concat([fs.readFileSync(cborFile), Buffer.from([0])])));
      await c.publish('bootstrap/register/cbor', bad, { qos: 1 });
      let m = await c.waitFor(() => true, 5000);
      assert.strictEqual(m.topic, 'bootstrap/reply/dev-cbor-03/cbor');
      const e = await cbor('decode', m.payload.toString('hex'));
      assert.deepStrictEqual([e.success, e.code], [false, 'invalid_request']);
      await c.publish('bootstrap/register', '{"deviceId":', { qos: 1 });
      m = await c.waitFor((x) => x.topic === 'bootstrap/reply/dev-cbor-03', 5000);
      assert.strictEqual(JSON.parse(m.payload.toString()).code, 'invalid_request');
    } finally {
      await c.disconnect();
    }

    // the audit trail and the metrics tell the formats apart
    const lines = await h.waitForAudit(env, (l) => ['dev-cbor-01', 'dev-cbor-02'].includes(l.deviceId) || l.client === 'dev-cbor-03', { n: 5 });
    const seen = lines.map((l) => [l.deviceId || l.client, l.format, l.reason]);
    assert.deepStrictEqual(seen, [['dev-cbor-01', 'cbor', 'registered'], ['dev-cbor-01', 'json', 'device_exists'], ['dev-cbor-02', 'cbor', 'device_exists'],
      ['dev-cbor-03', 'cbor', 'not_cbor'], ['dev-cbor-03', 'json', 'not_json']]);
    await h.waitForSys(env, 'requests/cbor', (v) => v === '3');
    await h.waitForSys(env, 'requests', (v) => v === '5');
  });
});

test('wire bytes per bootstrap, JSON and CBOR, the same device: sealed triple and an error (bench/wire_bytes.py)', async () => {
  await h.withEnv({}, async (env) => {
    const rows = [];
    for (const version of ['3', '5']) {
      const r = await h.run(PYTHON, [WIRE, '127.0.0.1', String(env.port), env.productKey, env.productSecretFile, 'dev-wire-01', version], { timeoutMs: 60000 });
      assert.strictEqual(r.code, 0, r.stderr);
      const secrets = [env.productSecret, env.emu.device(env.productKey, 'dev-wire-01').DeviceSecret];
      assert.ok(!secrets.some((s) => r.stdout.includes(s)), 'the bench printed a secret');
      rows.push(...r.stdout.trim().split('\n').map((l) => JSON.parse(l)));
    }
    for (const row of rows) {
      console.log(`wire: MQTT ${row.mqtt} ${row.format.padEnd(4)} ${row.case.padEnd(18)} request ${String(row.request).padStart(3)} B, reply ${String(row.reply).padStart(3)} B; TCP up ${row.tcpUp} B, down ${row.tcpDown} B`);
    }
    const pick = (mqttV, format, kase) => rows.find((r) => r.mqtt === mqttV && r.format === format && r.case === kase);
    for (const v of ['3.1.1', '5']) {
      for (const kase of ['sealed triple', 'error unauthorized']) {
        const j = pick(v, 'json', kase), c = pick(v, 'cbor', kase);
        assert.ok(c.request < j.request, `${v} ${kase}: the CBOR request is smaller`);
        assert.ok(c.reply < j.reply, `${v} ${kase}: the CBOR reply is smaller`);
        assert.ok(c.tcpUp + c.tcpDown < j.tcpUp + j.tcpDown, `${v} ${kase}: fewer bytes on the wire`);
      }
      // deterministic encoding: the sealed reply's size follows from the triple alone
      assert.strictEqual(pick(v, 'cbor', 'sealed triple').reply, pick('3.1.1', 'cbor', 'sealed triple').reply);
    }
  });
});
