'use strict';
// plugin_opt_device_allowlist with real clients: names and patterns, not_allowed without a
// platform call and only after the sign, a SIGHUP that takes a new list, a SIGHUP with a bad
// file that keeps the old one, and a bad file at start-up that stops the broker.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

// Writes the list as an editor or a deployment would: a new file moved into place.
function writeList(file, text) {
  fs.writeFileSync(file + '.new', text);
  fs.chmodSync(file + '.new', 0o644);
  h.giveToBroker(file + '.new');
  fs.renameSync(file + '.new', file);
}

function auditLines(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// SIGHUP, then wait for the plugin's line about the list.
async function reload(env, pattern, before) {
  env.broker.proc.kill('SIGHUP');
  for (let i = 0; i < 100; i++) {
    if (pattern.test(env.broker.log().slice(before))) return;
    await h.sleep(50);
  }
  assert.fail(`no log line matching ${pattern} after SIGHUP:\n${env.broker.log().slice(before)}`);
}

test('names and patterns decide who may bootstrap; SIGHUP takes a new list, and keeps the old one when the new file is bad', async () => {
  const dir = h.makeWorkdir();
  const list = path.join(dir, 'allowlist');
  writeList(list, [
    '# devices of batch 7',
    'dev-al-0001',
    '   sensor-00??   # two characters of anything',
    'lamp-*',
    'gw-[a-c][0-9]',
    '',
  ].join('\n'));
  const env = await h.startEnv({ pluginOptions: { device_allowlist: list, audit_file: '$DIR/audit.log' } });
  try {
    assert.match(env.broker.log(), /mosquitto_bootstrap: device allowlist \S+: 1 deviceIds, 3 patterns/);
    for (const id of ['dev-al-0001', 'sensor-0042', 'lamp-kitchen', 'gw-b7']) {
      const r = await env.rr(id);
      assert.strictEqual(r.reply && r.reply.success, true, `${id} is on the list`);
    }
    const calls = () => { const s = env.emu.stats().byAction; return (s.RegisterDevice || 0) + (s.QueryDeviceDetail || 0); };
    const before = calls();
    for (const id of ['dev-al-0002', 'sensor-00123', 'lamps-1', 'gw-d7']) {
      const r = await env.rr(id);
      assert.strictEqual(r.reply && r.reply.code, 'not_allowed', `${id} is not on the list`);
      assert.strictEqual(r.reply.success, false);
      assert.strictEqual(env.emu.device(h.PRODUCT_KEY, id), null, `no device ${id} on the platform`);
    }
    assert.strictEqual(calls(), before, 'no platform call for a deviceId that is not on the list');
    const refused = h.auditLines(env).filter((l) => l.deviceId === 'dev-al-0002').map((l) => [l.code, l.client, l.address]);
    assert.deepStrictEqual(refused, [['not_allowed', 'dev-al-0002', '127.0.0.1']], 'the refusal audited with who asked');

    // the list is consulted only once the request proves itself: an unsigned or forged request
    // for a name that is not on it is unauthorized, exactly like one for a name that is
    const unsigned = await h.rr(env.port, { id: 'dev-al-0003', message: JSON.stringify({ deviceId: 'dev-al-0003' }) });
    assert.strictEqual(unsigned.reply.code, 'unauthorized');
    const forged = h.signRequest('dev-al-0003', h.PRODUCT_KEY, 'not-the-product-secret');
    assert.strictEqual((await h.rr(env.port, { id: 'dev-al-0003', message: JSON.stringify(forged) })).reply.code, 'unauthorized');
    const forgedListed = h.signRequest('lamp-hall', h.PRODUCT_KEY, 'not-the-product-secret');
    assert.strictEqual((await h.rr(env.port, { id: 'lamp-hall', message: JSON.stringify(forgedListed) })).reply.code, 'unauthorized');

    const audit = auditLines(path.join(env.dir, 'audit.log'));
    assert.deepStrictEqual(audit.filter((l) => l.code === 'not_allowed').map((l) => l.deviceId), ['dev-al-0002', 'sensor-00123', 'lamps-1', 'gw-d7']);

    // a new list: lamps are out, dev-al-000? in
    writeList(list, 'dev-al-000?\ngw-[a-c][0-9]\n');
    let mark = env.broker.log().length;
    await reload(env, /mosquitto_bootstrap: reload: device allowlist \S+: 0 deviceIds, 2 patterns\n/, mark);
    assert.strictEqual((await env.rr('dev-al-0002')).reply.success, true, 'dev-al-0002 is on the new list');
    assert.strictEqual((await env.rr('lamp-hall')).reply.code, 'not_allowed', 'lamps are off the new list');

    // a bad file: the current list stays, and one log line says why
    writeList(list, 'dev-al-0100\nsensor-[0-9\nlamp-*\n');
    mark = env.broker.log().length;
    await reload(env, /keeping the current list/, mark);
    const after = env.broker.log().slice(mark).split('\n').filter((l) => /device_allowlist|device allowlist/.test(l));
    assert.strictEqual(after.length, 1, 'one line about the list:\n' + after.join('\n'));
    assert.match(after[0], /^\d+: mosquitto_bootstrap: reload: plugin_opt_device_allowlist: \S+allowlist line 2: the pattern has a '\[' without its '\]'; keeping the current list \(0 deviceIds, 2 patterns\)$/);
    assert.strictEqual((await env.rr('dev-al-0004')).reply.success, true, 'the old list still allows dev-al-000?');
    assert.strictEqual((await env.rr('lamp-hall')).reply.code, 'not_allowed', 'the bad file\'s lamp-* was not taken');
    assert.strictEqual((await env.rr('dev-al-0100')).reply.code, 'not_allowed', 'nothing of the bad file was taken');

    // a file that is gone: the same
    fs.rmSync(list);
    mark = env.broker.log().length;
    await reload(env, /keeping the current list/, mark);
    assert.match(env.broker.log().slice(mark), /mosquitto_bootstrap: reload: plugin_opt_device_allowlist: cannot open \S+: No such file or directory; keeping the current list/);
    assert.strictEqual((await env.rr('gw-c0')).reply.success, true);

    await env.assertLogClean();
  } finally {
    await env.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad or missing list at start-up stops the broker with a line saying why', async () => {
  const dir = h.makeWorkdir();
  try {
    const list = path.join(dir, 'allowlist');
    writeList(list, 'dev-0001\n' + 'x'.repeat(200) + '\n');
    for (const [file, why] of [[list, /mosquitto_bootstrap: plugin_opt_device_allowlist: \S+ line 2 is longer than 128 bytes/],
      [path.join(dir, 'missing'), /mosquitto_bootstrap: plugin_opt_device_allowlist: cannot open \S+missing: No such file/]]) {
      const env = await h.startEnv({ pluginOptions: { device_allowlist: file }, expectFailure: true });
      try {
        assert.ok(env.failure, 'the broker exited');
        assert.notStrictEqual(env.failure.code, 0, 'with a non-zero status');
        assert.match(env.broker.log(), why);
        env.assertLogClean();
      } finally {
        await env.stop();
      }
    }
    const relative = await h.startEnv({ pluginOptions: { device_allowlist: 'allowlist' }, expectFailure: true });
    try {
      assert.match(relative.broker.log(), /mosquitto_bootstrap: plugin_opt_device_allowlist: must be an absolute path/);
    } finally {
      await relative.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
