'use strict';
// The core flow through a real broker in its default configuration (signed requests, strict
// ACL): new device, existing device, mosquitto_pub + sub and mosquitto_rr, invalid requests
// answered to the requester, nothing retained. Then the unsigned formats under request_auth none.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

let env;
test.before(async () => { env = await h.startEnv({ pluginOptions: { audit_file: '$DIR/audit.log' } }); });
test.after(async () => { if (env) { env.assertLogClean(); await env.stop(); } });

test('new device: mosquitto_rr as the device gets the triple sealed for its request, on one connection', async () => {
  const random = 'r-' + Date.now().toString(36) + '-0001';
  const r = await h.rr(env.port, { id: 'dev-0001', message: env.request('dev-0001', { random }) });
  assert.strictEqual(r.code, 0, 'mosquitto_rr failed: ' + r.stderr);
  const reply = r.reply;
  const device = env.emu.device(h.PRODUCT_KEY, 'dev-0001');
  assert.ok(device, 'the emulator registered the device');
  assert.strictEqual(reply.success, true);
  assert.deepStrictEqual(Object.keys(reply).sort(), ['sealed', 'success'], 'no triple in the clear beside the seal');
  assert.deepStrictEqual(Object.keys(reply.sealed).sort(), ['alg', 'ct', 'iv', 'tag']);
  assert.ok(!r.stdout.includes(device.DeviceSecret), 'the DeviceSecret in the clear');
  const triple = h.openSealed(reply, { productSecret: env.productSecret, random, productKey: h.PRODUCT_KEY, deviceId: 'dev-0001' });
  assert.strictEqual(triple.IotId, device.IotId);
  h.assertSameSecret(triple.DeviceSecret, device.DeviceSecret, 'DeviceSecret');
  assert.strictEqual(env.emu.stats().byAction.RegisterDevice, 1);
  const [line] = await h.waitForAudit(env, (l) => l.deviceId === 'dev-0001');
  assert.deepStrictEqual([line.code, line.device, line.action], ['ok', 'new', 'RegisterDevice'], 'audited: a new device served');
});

test('hmacsha1 signs are accepted too', async () => {
  const r = await env.rr('dev-0002', { method: 'hmacsha1' });
  assert.strictEqual(r.code, 0, 'mosquitto_rr failed: ' + r.stderr);
  assert.strictEqual(r.reply.success, true);
  assert.strictEqual(r.reply.data.DeviceName, 'dev-0002');
  h.assertSameSecret(r.reply.data.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'dev-0002').DeviceSecret, 'DeviceSecret');
});

test('hmacmd5 signs are accepted too (Alibaba\'s device SDKs offer it), and a wrong one is refused', async () => {
  const r = await env.rr('dev-md5-01', { method: 'hmacmd5' });
  assert.strictEqual(r.code, 0, 'mosquitto_rr failed: ' + r.stderr);
  assert.strictEqual(r.reply.success, true);
  assert.strictEqual(r.reply.data.DeviceName, 'dev-md5-01');
  h.assertSameSecret(r.reply.data.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'dev-md5-01').DeviceSecret, 'DeviceSecret');
  // signed with another key: the right length for md5, the wrong HMAC
  const forged = h.signRequest('dev-md5-02', h.PRODUCT_KEY, 'not-the-product-secret', { method: 'hmacmd5' });
  const bad = await h.rr(env.port, { id: 'dev-md5-02', message: JSON.stringify(forged) });
  assert.strictEqual(bad.reply.success, false);
  assert.strictEqual(bad.reply.code, 'unauthorized');
  assert.strictEqual(env.emu.device(h.PRODUCT_KEY, 'dev-md5-02'), null, 'no platform call for a wrong sign');
});

test('a request sent under another client id than the deviceId is refused: the reply could not be bound to the device', async () => {
  const s = h.sub(env.port, { id: 'dev-0005', topics: ['bootstrap/reply/dev-0005'] });
  await s.ready;
  const r = await h.rr(env.port, { id: 'helper-05', message: env.request('dev-0005'), responseTopic: 'bootstrap/reply/helper-05' });
  await h.sleep(300);
  const got = await s.messages();
  assert.strictEqual(r.reply && r.reply.code, 'unauthorized');
  assert.match(r.reply.message, /connect with the deviceId as client id/);
  assert.strictEqual(got.length, 0, 'the device received something');
  assert.strictEqual(env.emu.device(h.PRODUCT_KEY, 'dev-0005'), null, 'no platform call');
});

test('the same deviceId again (unactivated) gets the same DeviceSecret through QueryDeviceDetail', async () => {
  const before = env.emu.stats();
  const r = await env.rr('dev-0002');
  const after = env.emu.stats();
  assert.strictEqual(r.reply.success, true);
  h.assertSameSecret(r.reply.data.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'dev-0002').DeviceSecret, 'DeviceSecret');
  assert.strictEqual((after.byAction.RegisterDevice || 0) - (before.byAction.RegisterDevice || 0), 1, 'one RegisterDevice');
  assert.strictEqual((after.byAction.QueryDeviceDetail || 0) - (before.byAction.QueryDeviceDetail || 0), 1, 'one QueryDeviceDetail');
  assert.strictEqual((after.byCode['iot.device.AlreadyExistedDeviceName'] || 0) - (before.byCode['iot.device.AlreadyExistedDeviceName'] || 0), 1);
  const lines = await h.waitForAudit(env, (l) => l.deviceId === 'dev-0002', { n: 2 });
  assert.deepStrictEqual([lines[1].code, lines[1].device, lines[1].action], ['ok', 'existing', 'QueryDeviceDetail'], 'audited: an existing device served');
});

test('invalid deviceIds get invalid_device_id on the requester\'s own reply topic, without a platform call', async () => {
  const before = env.emu.stats().requests;
  for (const bad of ['abc', 'has space', 'dev/0001', 'x'.repeat(33), 'd+v#1', 'dév-0001']) {
    const r = await h.rr(env.port, { id: 'asker-01', message: JSON.stringify({ deviceId: bad }) });
    assert.strictEqual(r.code, 0, `no reply for ${JSON.stringify(bad)}: ${r.stderr}`);
    assert.strictEqual(r.reply.success, false);
    assert.strictEqual(r.reply.code, 'invalid_device_id', `code for ${JSON.stringify(bad)}`);
    assert.ok(r.reply.message.length > 0);
    assert.strictEqual(r.reply.retryAfter, undefined, 'no retryAfter: trying again cannot help');
  }
  assert.strictEqual(env.emu.stats().requests, before, 'no platform call for invalid deviceIds');
});

test('unreadable requests get invalid_request', async () => {
  const before = env.emu.stats().requests;
  for (const bad of ['{"deviceId":5}', '{"device":"dev-0001"}', '{not json', '{"deviceId":"dev-0001","deviceId":"dev-0002"}', 'x'.repeat(1025)]) {
    const r = await h.rr(env.port, { id: 'asker-02', message: bad });
    assert.strictEqual(r.reply && r.reply.code, 'invalid_request', `code for a ${bad.length}-byte payload`);
  }
  const empty = await h.rr(env.port, { id: 'asker-03', message: null });
  assert.strictEqual(empty.reply && empty.reply.code, 'invalid_request', 'code for an empty payload');
  assert.strictEqual(env.emu.stats().requests, before, 'no platform call for unreadable requests');
});

test('a client subscribed to # under another client id receives no DeviceSecret', async () => {
  const spy = h.sub(env.port, { id: 'spy-1', topics: ['#', 'bootstrap/reply/dev-0004', 'bootstrap/reply/+'] });
  await spy.ready;
  const r = await env.rr('dev-0004');
  assert.strictEqual(r.reply.success, true);
  await h.sleep(300);
  const got = await spy.messages();
  const secretValue = env.emu.device(h.PRODUCT_KEY, 'dev-0004').DeviceSecret;
  assert.strictEqual(got.filter((m) => m.payload.includes(secretValue)).length, 0, 'the spy received the DeviceSecret');
  assert.strictEqual(got.length, 0, 'the spy received something');
});

test('unsigned formats under request_auth none: bare deviceId text and {"deviceId"}; a retained request is not retained', async () => {
  const dir = h.makeWorkdir();
  const open = await h.startEnv({ requestAuth: 'none', pluginOptions: { acl: 'defer' }, extraConfig: `acl_file ${h.aclFileAllowingAll(dir)}\npersistence true\npersistence_location $DIR/` });
  try {
    assert.match(open.broker.log(), /mosquitto_bootstrap: request_auth none: any client that can publish on 'bootstrap\/register' can register devices/);
    let r = await h.rr(open.port, { id: 'dev-bare', message: 'dev-bare' });
    assert.strictEqual(r.reply.success, true, 'bare text');
    assert.ok(r.reply.data && !r.reply.sealed, 'in the clear: there is no key to seal with');
    // the two-client pattern: a subscriber under the deviceId gets what another client asked for
    const s = h.sub(open.port, { id: 'dev-pubsub', topics: ['bootstrap/reply/dev-pubsub'] });
    await s.ready;
    assert.strictEqual((await h.pub(open.port, { message: '{"deviceId":"dev-pubsub"}' })).code, 0);
    const msgs = await s.waitFor(1);
    await s.messages();
    assert.strictEqual(msgs.length, 1, 'exactly one reply');
    assert.strictEqual(JSON.parse(msgs[0].payload).data.DeviceName, 'dev-pubsub');
    r = await h.rr(open.port, { id: 'dev-json', message: '  {"deviceId":"dev-json","extra":[1,2]}\n' });
    assert.strictEqual(r.reply.success, true, 'JSON');
    // a retained request: answered as any request, and not kept. No client may read the request
    // topic (the ACL), so the broker's store itself is read: with persistence on, the broker
    // writes every retained message to mosquitto.db when it stops; the control message retained
    // beside the request must be there (the store is read), the request must not.
    const retainReply = h.sub(open.port, { id: 'dev-retain', topics: ['bootstrap/reply/dev-retain'] });
    await retainReply.ready;
    assert.strictEqual((await h.pub(open.port, { message: 'dev-retain', extra: ['-r'] })).code, 0);
    const answered = await retainReply.waitFor(1);
    await retainReply.messages();
    assert.strictEqual(answered.length, 1, 'the retained request was answered');
    assert.strictEqual(JSON.parse(answered[0].payload).data.DeviceName, 'dev-retain');
    assert.strictEqual((await h.pub(open.port, { topic: 'control/retained', message: 'control-payload', extra: ['-r'] })).code, 0);
    await open.broker.stop();
    const db = fs.readFileSync(path.join(open.dir, 'mosquitto.db'));
    assert.ok(db.includes('control/retained') && db.includes('control-payload'), 'the control message was kept (the store is read)');
    assert.ok(!db.includes('bootstrap/register') && !db.includes('dev-retain'), 'the retained request was kept');
    open.assertLogClean();
  } finally {
    await open.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

