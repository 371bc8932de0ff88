'use strict';
// The core flow through a real broker: new device, existing device, mosquitto_pub + sub and
// mosquitto_rr, invalid requests answered to the requester, nothing retained, nothing leaked.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');

let env;
test.before(async () => { env = await h.startEnv(); });
test.after(async () => { if (env) { env.assertLogClean(); await env.stop(); } });

test('new device: mosquitto_sub under the deviceId receives the triple published by mosquitto_pub', async () => {
  const s = h.sub(env.port, { id: 'dev-0001', topics: ['bootstrap/reply/dev-0001'] });
  await s.ready;
  const p = await h.pub(env.port, { message: '{"deviceId":"dev-0001"}' });
  assert.strictEqual(p.code, 0, 'mosquitto_pub failed: ' + p.stderr);
  const msgs = await s.waitFor(1);
  await s.messages();
  assert.strictEqual(msgs.length, 1, 'exactly one reply');
  assert.strictEqual(msgs[0].topic, 'bootstrap/reply/dev-0001');
  const reply = JSON.parse(msgs[0].payload);
  const device = env.emu.device(h.PRODUCT_KEY, 'dev-0001');
  assert.ok(device, 'the emulator registered the device');
  assert.strictEqual(reply.success, true);
  assert.deepStrictEqual(Object.keys(reply.data).sort(), ['DeviceName', 'DeviceSecret', 'IotId', 'ProductKey']);
  assert.strictEqual(reply.data.ProductKey, h.PRODUCT_KEY);
  assert.strictEqual(reply.data.DeviceName, 'dev-0001');
  assert.strictEqual(reply.data.IotId, device.IotId);
  h.assertSameSecret(reply.data.DeviceSecret, device.DeviceSecret, 'DeviceSecret');
  assert.strictEqual(env.emu.stats().byAction.RegisterDevice, 1);
});

test('mosquitto_rr with the bare deviceId gets the triple on one connection', async () => {
  const r = await h.rr(env.port, { id: 'dev-0002', message: 'dev-0002' });
  assert.strictEqual(r.code, 0, 'mosquitto_rr failed: ' + r.stderr);
  assert.strictEqual(r.reply.success, true);
  assert.strictEqual(r.reply.data.DeviceName, 'dev-0002');
  h.assertSameSecret(r.reply.data.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'dev-0002').DeviceSecret, 'DeviceSecret');
});

test('the same deviceId again gets the same DeviceSecret through QueryDeviceDetail', async () => {
  const before = env.emu.stats();
  const r = await h.rr(env.port, { id: 'dev-0002', message: '{"deviceId":"dev-0002"}' });
  const after = env.emu.stats();
  assert.strictEqual(r.reply.success, true);
  h.assertSameSecret(r.reply.data.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'dev-0002').DeviceSecret, 'DeviceSecret');
  assert.strictEqual((after.byAction.RegisterDevice || 0) - (before.byAction.RegisterDevice || 0), 1, 'one RegisterDevice');
  assert.strictEqual((after.byAction.QueryDeviceDetail || 0) - (before.byAction.QueryDeviceDetail || 0), 1, 'one QueryDeviceDetail');
  assert.strictEqual((after.byCode['iot.device.AlreadyExistedDeviceName'] || 0) - (before.byCode['iot.device.AlreadyExistedDeviceName'] || 0), 1);
  assert.match(env.broker.log(), /mosquitto_bootstrap: device dev-0002: triple sent \(existing device/);
});

test('invalid deviceIds get invalid_device_id on the requester\'s own reply topic, without a platform call', async () => {
  const before = env.emu.stats().requests;
  for (const bad of ['abc', 'has space', 'dev/0001', 'x'.repeat(33), '{"deviceId":"d+v#1"}', 'dév-0001']) {
    const r = await h.rr(env.port, { id: 'asker-01', message: bad, responseTopic: 'bootstrap/reply/asker-01' });
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
    const r = await h.rr(env.port, { id: 'asker-02', message: bad, responseTopic: 'bootstrap/reply/asker-02' });
    assert.strictEqual(r.reply && r.reply.code, 'invalid_request', `code for a ${bad.length}-byte payload`);
  }
  const empty = await h.rr(env.port, { id: 'asker-03', message: null, responseTopic: 'bootstrap/reply/asker-03' });
  assert.strictEqual(empty.reply && empty.reply.code, 'invalid_request', 'code for an empty payload');
  assert.strictEqual(env.emu.stats().requests, before, 'no platform call for unreadable requests');
});

test('a retained request is not retained', async () => {
  const p = await h.pub(env.port, { message: 'dev-0003', extra: ['-r'] });
  assert.strictEqual(p.code, 0);
  await h.sleep(300);
  const s = h.sub(env.port, { id: 'late-1', topics: ['bootstrap/register'] });
  await s.ready;
  await h.sleep(300);
  const got = await s.messages();
  assert.strictEqual(got.length, 0, 'a later subscriber received a retained request');
});

test('a client subscribed to # under another client id receives no DeviceSecret', async () => {
  const spy = h.sub(env.port, { id: 'spy-1', topics: ['#', 'bootstrap/reply/dev-0004', 'bootstrap/reply/+'] });
  await spy.ready;
  const r = await h.rr(env.port, { id: 'dev-0004', message: 'dev-0004' });
  assert.strictEqual(r.reply.success, true);
  await h.sleep(300);
  const got = await spy.messages();
  const secretValue = env.emu.device(h.PRODUCT_KEY, 'dev-0004').DeviceSecret;
  assert.strictEqual(got.filter((m) => m.payload.includes(secretValue)).length, 0, 'the spy received the DeviceSecret');
  assert.strictEqual(got.filter((m) => m.topic.startsWith('bootstrap/reply/')).length, 0, 'the spy received a reply');
});
