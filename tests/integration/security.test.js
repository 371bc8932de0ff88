'use strict';
// Only a genuine device gets its own secret, and nothing leaks. Each test starts its own broker.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

const { withEnv } = h;

function assertNoSecretIn(env, text, what) {
  const all = env.secrets.concat(env.emu.allDeviceSecrets());
  assert.strictEqual(all.filter((x) => text.includes(x)).length, 0, `a secret appears in ${what}`);
}

test('sign: unsigned, wrongly signed, signed for another device and replayed requests get unauthorized, with no platform call', async () => {
  await withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
    const cases = [
      ['unsigned', JSON.stringify({ deviceId: 'dev-s001' }), /must be signed/],
      ['other secret', env.request('dev-s001', { key: 'not-the-product-secret' }), /does not match/],
      ['other device', JSON.stringify({ ...JSON.parse(env.request('dev-s999')), deviceId: 'dev-s001' }), /does not match/],
    ];
    for (const [what, message, why] of cases) {
      const r = await h.rr(env.port, { id: 'dev-s001', message });
      assert.strictEqual(r.reply && r.reply.code, 'unauthorized', what);
      assert.match(r.reply.message, why, what);
      assert.strictEqual(r.reply.retryAfter, undefined);
      assertNoSecretIn(env, JSON.stringify(r.reply), 'an error reply');
    }
    // with sign the request is a JSON object (docs/contract.md): bare text is malformed, not unsigned
    const bare = await h.rr(env.port, { id: 'dev-s001', message: 'dev-s001' });
    assert.deepStrictEqual([bare.reply.code, bare.reply.retryAfter], ['invalid_request', undefined], 'bare text');
    assert.match(bare.reply.message, /not JSON/);
    assert.strictEqual(env.emu.stats().requests, 0, 'no platform call for a refused request');
    // a captured request replayed: the same random for the same device is refused
    const signed = env.request('dev-s001', { random: 'replay-me-0001' });
    const first = await h.rr(env.port, { id: 'dev-s001', message: signed });
    assert.strictEqual(first.reply.success, true);
    const again = await h.rr(env.port, { id: 'dev-s001', message: signed });
    assert.strictEqual(again.reply.code, 'unauthorized');
    assert.match(again.reply.message, /random was already used/);
    // a fresh random works (the device is still unactivated)
    const fresh = await env.rr('dev-s001');
    assert.strictEqual(fresh.reply.success, true);
    const audited = h.auditLines(env).filter((l) => l.client === 'dev-s001').map((l) => [l.code, l.reason, l.deviceId, l.address]);
    const as = (code, reason, id = 'dev-s001') => [code, reason, id, '127.0.0.1'];
    assert.deepStrictEqual(audited, [as('unauthorized', 'unsigned'), as('unauthorized', 'sign_mismatch'), as('unauthorized', 'sign_mismatch'),
      as('invalid_request', 'not_json', null), as('ok', 'registered'), as('unauthorized', 'random_replayed'), as('ok', 'existing_device')],
    'every decision audited, with its cause');
  });
});

test('refusals are limited per client id and per address; a correctly signed request is never refused for what its neighbours did (NAT)', async () => {
  await withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
    // one client id guessing: 9 answers, the 10th says rate_limited, then silence
    for (let i = 0; i < 9; i++) {
      const r = await h.rr(env.port, { id: 'attacker', message: env.request('dev-r001', { key: 'guess-' + i }) });
      assert.strictEqual(r.reply.code, 'unauthorized', `refusal ${i + 1}`);
    }
    const blocked = await h.rr(env.port, { id: 'attacker', message: env.request('dev-r001', { key: 'guess-9' }) });
    assert.strictEqual(blocked.reply.code, 'rate_limited');
    assert.ok(blocked.reply.retryAfter > 0 && blocked.reply.retryAfter <= 60, 'retryAfter within the minute');
    const silent = await h.rr(env.port, { id: 'attacker', message: env.request('dev-r001', { key: 'guess-x' }), timeoutS: 1 });
    assert.strictEqual(silent.reply, null, 'a blocked client id\'s refusals are not answered');
    // the same client id, correctly signed: served (only refusals are limited)
    const own = await env.rr('attacker');
    assert.strictEqual(own.reply.success, true, 'a valid request from a blocked client id');

    // behind one address (a NAT, HAProxy in TCP mode): fresh client ids flood bad signs until the
    // address itself is blocked, and keep going
    let answered = 0;
    const natCodes = [];
    for (let i = 0; i < 70; i++) {
      const r = await h.requestRaw(env.port, { id: `nat-flood-${i}`, payload: env.request('dev-r001', { key: 'guess-' + i }), timeoutS: 0.3 });
      if (r.reply) { answered++; natCodes.push(r.reply.code); }
    }
    // the address had 11 refusals already: 48 more are answered, the 60th with rate_limited
    assert.strictEqual(answered, 49, 'refusals answered before the address limit');
    // each client id asked once: the rate_limited answer is the address's limit
    assert.deepStrictEqual(natCodes, [...Array(48).fill('unauthorized'), 'rate_limited'], 'the address limit answered once, then silence');
    // genuine devices behind the same address: served at once
    for (const id of ['dev-r002', 'dev-r003']) {
      const genuine = await env.rr(id);
      assert.strictEqual(genuine.reply.success, true, `${id} behind the flooded address`);
      h.assertSameSecret(genuine.reply.data.DeviceSecret, env.emu.device(h.PRODUCT_KEY, id).DeviceSecret, 'DeviceSecret');
    }
    assert.strictEqual(env.emu.stats().byAction.RegisterDevice, 3, 'only the valid requests reached the platform');
    // every request is in the audit trail: a line each, but the silent refusals, which summary
    // lines count ({"code":"rate_limited","unanswered":N}, the first at the next second)
    const read = () => fs.readFileSync(path.join(env.dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    let lines = read();
    const unanswered = (ls) => ls.reduce((n, l) => n + (l.unanswered || 0), 0);
    for (let i = 0; i < 80 && unanswered(lines) < 70 - answered + 1; i++) { await h.sleep(100); lines = read(); }
    const single = lines.filter((l) => !l.unanswered);
    assert.strictEqual(single.length + unanswered(lines), 11 + 1 + 70 + 2);
    assert.strictEqual(single.filter((l) => l.code === 'rate_limited').length + unanswered(lines), 2 + 1 + (70 - answered));
  });
});

test('identity: with TLS client certificates, the deviceId must be the certificate CN', async () => {
  const dir = h.makeWorkdir();
  h.giveToBroker(dir);
  try {
    const pki = h.makePki(dir);
    const server = pki.leaf('broker', { cn: 'localhost', ip: ['127.0.0.1'] });
    const dev = pki.leaf('dev-cert-01', { cn: 'dev-cert-01', client: true });
    const other = pki.leaf('dev-cert-02', { cn: 'dev-cert-02', client: true });
    const tls = [`cafile ${pki.ca}`, `certfile ${server.cert}`, `keyfile ${server.key}`, 'require_certificate true', 'use_identity_as_username true'].join('\n');
    await withEnv({ requestAuth: 'identity', extraConfig: tls, pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
      const client = (c) => ['--cafile', pki.ca, '--cert', c.cert, '--key', c.key];
      const ok = await h.rr(env.port, { id: 'dev-cert-01', message: JSON.stringify({ deviceId: 'dev-cert-01' }), extra: client(dev) });
      assert.strictEqual(ok.reply && ok.reply.success, true, 'own CN: ' + ok.stderr);
      const theft = await h.rr(env.port, { id: 'dev-cert-02', message: JSON.stringify({ deviceId: 'dev-cert-01' }), extra: client(other) });
      assert.strictEqual(theft.reply.code, 'unauthorized');
      assert.match(theft.reply.message, /the deviceId must be the client certificate's CN/);
      // no certificate: the TLS listener refuses the connection outright
      const none = await h.rr(env.port, { id: 'dev-cert-01', message: 'x', extra: ['--cafile', pki.ca], timeoutS: 3 });
      assert.strictEqual(none.reply, null);
      assert.strictEqual(env.emu.stats().byAction.RegisterDevice, 1, 'only the genuine request reached the platform');

      // takeover: dev-cert-01 asks; while the platform answers, the holder of dev-cert-02's
      // valid certificate connects with dev-cert-01's client id. Nobody gets the triple.
      env.emu.setLatency(1500);
      const victim = h.rr(env.port, { id: 'dev-cert-01', message: JSON.stringify({ deviceId: 'dev-cert-01' }), extra: client(dev), timeoutS: 5 });
      const calls = env.emu.stats().requests;
      for (let i = 0; i < 250 && env.emu.stats().requests === calls; i++) await h.sleep(20);
      assert.strictEqual(env.emu.stats().requests, calls + 1, 'the victim\'s request is on its way to the platform');
      const thief = await h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), '-i', 'dev-cert-01', ...client(other),
        '-t', 'bootstrap/reply/dev-cert-01', '-t', 'bootstrap/reply/dev-cert-02', '-W', '5', '-v']);
      const r = await victim;
      const dropped = await h.waitForAudit(env, (l) => l.deviceId === 'dev-cert-01' && l.code !== 'ok' && l.code !== 'unauthorized', { timeoutMs: 5000 });
      assert.ok(!r.reply || !r.reply.success, 'the taken-over device still got its reply');
      assert.strictEqual(thief.stdout.trim(), '', 'the thief with its own valid certificate received something');
      assert.ok(!thief.stdout.includes(env.emu.device(h.PRODUCT_KEY, 'dev-cert-01').DeviceSecret));
      assert.deepStrictEqual(dropped.map((l) => l.code), ['connection_closed'], 'audited: the reply was dropped, its connection gone');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('existing devices: unactive (default) refuses activated and disabled devices', async () => {
  await withEnv({}, async (env) => {
    for (const id of ['dev-e001', 'dev-e002', 'dev-e003']) assert.strictEqual((await env.rr(id)).reply.success, true);
    env.emu.setDeviceStatus(h.PRODUCT_KEY, 'dev-e001', 'ONLINE');
    env.emu.setDeviceStatus(h.PRODUCT_KEY, 'dev-e002', 'OFFLINE');
    env.emu.setDeviceStatus(h.PRODUCT_KEY, 'dev-e003', 'DISABLE');
    let r = await env.rr('dev-e001');
    assert.strictEqual(r.reply.code, 'already_activated');
    assertNoSecretIn(env, JSON.stringify(r.reply), 'an already_activated reply');
    r = await env.rr('dev-e002');
    assert.strictEqual(r.reply.code, 'already_activated');
    r = await env.rr('dev-e003');
    assert.strictEqual(r.reply.code, 'device_disabled');
  });
});

test('existing devices: always returns activated devices\' secrets but never a disabled one\'s; never refuses all', async () => {
  await withEnv({ pluginOptions: { existing_devices: 'always' } }, async (env) => {
    await env.rr('dev-a001');
    await env.rr('dev-a002');
    env.emu.setDeviceStatus(h.PRODUCT_KEY, 'dev-a001', 'ONLINE');
    env.emu.setDeviceStatus(h.PRODUCT_KEY, 'dev-a002', 'DISABLE');
    const r = await env.rr('dev-a001');
    assert.strictEqual(r.reply.success, true);
    h.assertSameSecret(r.reply.data.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'dev-a001').DeviceSecret, 'DeviceSecret');
    assert.strictEqual((await env.rr('dev-a002')).reply.code, 'device_disabled');
  });
  await withEnv({ pluginOptions: { existing_devices: 'never' } }, async (env) => {
    assert.strictEqual((await env.rr('dev-n001')).reply.success, true);
    const r = await env.rr('dev-n001');
    assert.strictEqual(r.reply.code, 'device_exists');
    assert.strictEqual(env.emu.stats().byAction.QueryDeviceDetail, undefined, 'never asks QueryDeviceDetail');
  });
});

test('defer ACL beside an allow-all acl_file: # , bootstrap/# and the victim\'s reply topic under another id get nothing', async () => {
  const dir = h.makeWorkdir();
  const acl = h.aclFileAllowingAll(dir);
  try {
    await withEnv({ pluginOptions: { acl: 'defer' }, extraConfig: `acl_file ${acl}` }, async (env) => {
      const spies = [
        h.sub(env.port, { id: 'spy-hash', topics: ['#'] }),
        h.sub(env.port, { id: 'spy-boot', topics: ['bootstrap/#'] }),
        h.sub(env.port, { id: 'spy-victim', topics: ['bootstrap/reply/dev-v001'] }),
      ];
      await Promise.all(spies.map((s) => s.ready));
      // the other mechanisms still decide other topics: the spy on # sees ordinary traffic
      await h.pub(env.port, { topic: 'sensors/temp', message: '21.5' });
      const r = await env.rr('dev-v001');
      assert.strictEqual(r.reply.success, true);
      // someone else asking for the victim: the victim (not connected) gets it, never the asker
      const asker = await h.rr(env.port, { id: 'not-the-victim', message: env.request('dev-v001'), responseTopic: 'bootstrap/reply/dev-v001', timeoutS: 2 });
      assert.strictEqual(asker.reply, null, 'the asker received the victim\'s reply');
      await h.sleep(300);
      const got = await Promise.all(spies.map((s) => s.messages()));
      assert.deepStrictEqual(got[0].map((m) => m.topic), ['sensors/temp'], 'the # spy got only ordinary traffic');
      assert.strictEqual(got[1].length, 0, 'the bootstrap/# spy got something');
      assert.strictEqual(got[2].length, 0, 'the victim-topic spy got something');
      // a forged reply on the victim's topic is not accepted either
      const forged = h.sub(env.port, { id: 'dev-v002', topics: ['bootstrap/reply/dev-v002'] });
      await forged.ready;
      await h.pub(env.port, { id: 'forger', topic: 'bootstrap/reply/dev-v002', message: '{"success":true}' });
      await h.sleep(300);
      assert.strictEqual((await forged.messages()).length, 0, 'a forged reply reached the device');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('strict ACL (default): only the request topic and one\'s own reply topic; $SYS and everything else denied', async () => {
  await withEnv({}, async (env) => {
    const out = await h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), '-i', 'dev-x001', '-t', 'bootstrap/reply/dev-x001',
      '-t', '#', '-t', '$SYS/#', '-t', 'bootstrap/reply/dev-x002', '-d', '-W', '1', '-V', 'mqttv311'], { timeoutMs: 5000 });
    // SUBACK return codes in order: own reply topic granted (QoS 0), the rest refused (128)
    const granted = /Subscribed \(mid: \d+\): (.*)/.exec(out.stdout);
    assert.ok(granted, 'no SUBACK: ' + out.stdout);
    assert.deepStrictEqual(granted[1].split(', ').map(Number), [0, 128, 128, 128]);
    // publishing elsewhere is dropped: a device listening on its own topic hears nothing
    const listener = h.sub(env.port, { id: 'dev-x003', topics: ['bootstrap/reply/dev-x003'] });
    await listener.ready;
    await h.pub(env.port, { id: 'dev-x004', topic: 'bootstrap/reply/dev-x003', message: 'forged' });
    await h.sleep(300);
    assert.strictEqual((await listener.messages()).length, 0);
  });
});

test('HTTPS to the platform: verified with plugin_opt_ca_file; an untrusted or misnamed certificate is refused and logged', async () => {
  const dir = h.makeWorkdir();
  h.giveToBroker(dir);
  try {
    const pki = h.makePki(dir);
    const good = pki.leaf('platform', { cn: 'platform', ip: ['127.0.0.1'], dns: ['localhost'] });
    const misnamed = pki.leaf('misnamed', { cn: 'elsewhere', dns: ['iot.elsewhere.example'] });
    await withEnv({ emulator: { tls: good }, pluginOptions: { ca_file: pki.ca } }, async (env) => {
      const r = await env.rr('dev-tls1');
      assert.strictEqual(r.reply.success, true, JSON.stringify(r.reply && r.reply.code));
    });
    await withEnv({ emulator: { tls: good } }, async (env) => {
      const r = await env.rr('dev-tls2');
      assert.strictEqual(r.reply.code, 'platform_unavailable');
      assert.match(env.broker.log(), /mosquitto_bootstrap: device dev-tls2: platform_unavailable: .*SSL certificate problem/);
      assert.strictEqual(env.emu.stats().requests, 0, 'nothing was sent to an untrusted server');
    });
    await withEnv({ emulator: { tls: misnamed }, pluginOptions: { ca_file: pki.ca } }, async (env) => {
      const r = await env.rr('dev-tls3');
      assert.strictEqual(r.reply.code, 'platform_unavailable');
      assert.match(env.broker.log(), /mosquitto_bootstrap: device dev-tls3: platform_unavailable: .*(subject name|does not match|certificate)/i);
      assert.strictEqual(env.emu.stats().requests, 0);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGHUP re-reads the credentials file (key rotation) without dropping a request in flight', async () => {
  await withEnv({ credentials: 'file' }, async (env) => {
    const file = path.join(env.dir, 'credentials');
    const oldKeys = { [env.accessKeyId]: { secret: env.accessKeySecret } };
    const newId = 'LTAIrotated01';
    const newSecret = 'rotated-' + Date.now().toString(36) + 'x9';
    env.secrets.push(newSecret);
    env.emu.setAccessKeys({ ...oldKeys, [newId]: { secret: newSecret } });
    env.emu.setLatency(1000);
    const inFlight = env.rr('dev-rot1');
    await h.sleep(300);
    fs.writeFileSync(file, `[default]\naccess_key_id = ${newId}\naccess_key_secret = ${newSecret}\n`);
    env.broker.proc.kill('SIGHUP');
    await h.sleep(300);
    assert.match(env.broker.log(), /mosquitto_bootstrap: reload: platform credentials reloaded from credentials file/);
    assert.strictEqual((await inFlight).reply.success, true, 'the request in flight finished');
    env.emu.setLatency(0);
    env.emu.setAccessKeys({ [newId]: { secret: newSecret } }); // the old key is revoked
    const after = await env.rr('dev-rot2');
    assert.strictEqual(after.reply.success, true, 'signed with the new key');
    // a broken file on the next SIGHUP keeps the working credentials
    fs.writeFileSync(file, 'garbage\n');
    env.broker.proc.kill('SIGHUP');
    await h.sleep(300);
    assert.match(env.broker.log(), /reload: .* keeping the current credentials/);
    assert.strictEqual((await env.rr('dev-rot3')).reply.success, true);
  });
});

test('hostile payloads: each gets a clear error code, no platform call, and the broker keeps serving', async () => {
  await withEnv({}, async (env) => {
    const cases = [
      ['non-UTF-8 in JSON', Buffer.from('{"deviceId":"dev-\xff\xfe01"}', 'latin1'), 'invalid_request'],
      // request_auth sign (this broker's): a payload that is not JSON is invalid_request, whatever
      // it holds (under none it is a bare deviceId: tests/integration/reasons.test.js)
      ['non-UTF-8 bare', Buffer.from('dev-\xff01', 'latin1'), 'invalid_request'],
      ['NUL in bare text', Buffer.from('dev-\x00001', 'latin1'), 'invalid_request'],
      ['NUL escaped in JSON', Buffer.from('{"deviceId":"dev-\\u0000001"}'), 'invalid_request'],
      ['deep JSON within 1 KiB (parsed, then unsigned)', Buffer.from('{"a":' + '['.repeat(450) + ']'.repeat(450) + ',"deviceId":"dev-deep1"}'), 'unauthorized'],
      ['deep and unterminated', Buffer.from('{"a":' + '['.repeat(1000)), 'invalid_request'],
      ['huge', Buffer.alloc(64 * 1024, 'a'), 'invalid_request'],
      ['array', Buffer.from('["dev-0001"]'), 'invalid_request'],
      ['number deviceId', Buffer.from('{"deviceId":1234}'), 'invalid_request'],
      ['object deviceId', Buffer.from('{"deviceId":{"a":1}}'), 'invalid_request'],
      ['slash', Buffer.from('{"deviceId":"dev/0001"}'), 'invalid_device_id'],
      ['plus', Buffer.from('dev+0001'), 'invalid_request'],
      ['hash', Buffer.from('dev#0001'), 'invalid_request'],
      ['sign of wrong type', Buffer.from('{"deviceId":"dev-0001","random":"abcdefgh","signMethod":"hmacsha256","sign":true}'), 'invalid_request'],
      ['random too long', Buffer.from(JSON.stringify({ deviceId: 'dev-0001', random: 'r'.repeat(65), signMethod: 'hmacsha256', sign: 'a'.repeat(64) })), 'invalid_request'],
      ['control characters', Buffer.from('{"deviceId":"dev\\u001b[31m01"}'), 'invalid_device_id'],
    ];
    let n = 0;
    for (const [what, payload, code] of cases) {
      const f = path.join(env.dir, 'payload');
      fs.writeFileSync(f, payload);
      const r = await h.requestFromFile(env.port, { id: `hostile-${n++}`, file: f });
      assert.strictEqual(r.reply && r.reply.code, code, what);
      assert.ok(r.reply.message.length > 0, what);
    }
    const empty = await h.rr(env.port, { id: 'hostile-1', message: null });
    assert.strictEqual(empty.reply.code, 'invalid_request');
    assert.strictEqual(env.emu.stats().requests, 0, 'no platform call');
    assert.strictEqual((await env.rr('dev-after1')).reply.success, true, 'still serving');
  });
});
