'use strict';
// plugin_opt_audit_file: one JSON line per decision, no secrets, reopened on SIGHUP.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

function lines(file) {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}

test('every decision is one JSON line with who, what and how long; no secrets; logrotate-friendly', async () => {
  await h.withEnv({ pluginOptions: { audit_file: '$DIR/audit.log', product_key: 'a1TestProduct' } }, async (env) => {
    const file = path.join(env.dir, 'audit.log');
    assert.strictEqual((await env.rr('dev-a-001')).reply.success, true);
    assert.strictEqual((await env.rr('dev-a-001')).reply.success, true);
    assert.strictEqual((await h.rr(env.port, { id: 'dev-a-002', message: JSON.stringify({ deviceId: 'dev-a-002' }) })).reply.code, 'unauthorized');
    assert.strictEqual((await h.rr(env.port, { id: 'asker-a', message: JSON.stringify({ deviceId: 'no/slash' }) })).reply.code, 'invalid_device_id');
    env.emu.addFaults({ kind: '5xx', count: 1000 });
    await h.sleep(50);
    const got = lines(file);
    assert.strictEqual(got.length, 4, 'one line per decision');
    const [created, existing, unauthorized, invalid] = got;
    assert.deepStrictEqual(Object.keys(created).sort(), ['action', 'address', 'client', 'code', 'device', 'deviceId', 'durationMs', 'format', 'platformCode', 'productKey', 'reason', 'requestId', 'time']);
    assert.deepStrictEqual([created.productKey, created.deviceId, created.code, created.reason, created.device, created.client, created.address, created.action],
      ['a1TestProduct', 'dev-a-001', 'ok', 'registered', 'new', 'dev-a-001', '127.0.0.1', 'RegisterDevice']);
    assert.match(created.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok(created.requestId && created.durationMs >= 0);
    assert.strictEqual(created.format, 'json', 'a request on the request topic is JSON');
    assert.deepStrictEqual([existing.code, existing.reason, existing.device, existing.action], ['ok', 'existing_device', 'existing', 'QueryDeviceDetail']);
    assert.deepStrictEqual([unauthorized.code, unauthorized.reason, unauthorized.productKey, unauthorized.deviceId, unauthorized.device, unauthorized.action],
      ['unauthorized', 'unsigned', 'a1TestProduct', 'dev-a-002', null, null]);
    assert.deepStrictEqual([invalid.code, invalid.reason, invalid.productKey, invalid.deviceId, invalid.client],
      ['invalid_device_id', 'bad_device_id', null, null, 'asker-a']);
    const text = fs.readFileSync(file, 'utf8');
    const secrets = env.secrets.concat(env.emu.allDeviceSecrets());
    assert.strictEqual(secrets.filter((s) => text.includes(s)).length, 0, 'a secret is in the audit file');
    const mode = fs.statSync(file).mode & 0o777;
    assert.strictEqual(mode & 0o007, 0, 'not readable by others');

    // logrotate: move the file, SIGHUP, and the next decision lands in a new file
    fs.renameSync(file, file + '.1');
    env.broker.proc.kill('SIGHUP');
    for (let i = 0; i < 50 && !fs.existsSync(file); i++) await h.sleep(100);
    env.emu.clearFaults();
    assert.strictEqual((await env.rr('dev-a-003')).reply.success, true);
    assert.deepStrictEqual(lines(file).map((l) => l.deviceId), ['dev-a-003']);
    assert.strictEqual(lines(file + '.1').length, 4, 'the rotated file kept its lines');
  });
});
