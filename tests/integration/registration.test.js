'use strict';
// plugin_opt_registration preregistered: only devices created on the platform in advance are
// served; an unknown name gets not_registered and the platform is never asked to create one,
// neither by RegisterDevice nor by a batch registration.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');
const { DOCUMENTED_QPS } = require('../emulator/emulator.js');

const CREATING = ['RegisterDevice', 'BatchCheckDeviceNames', 'BatchRegisterDeviceWithApplyId'];

test('preregistered: a known unactivated device is served, an unknown one refused with no RegisterDevice call', async () => {
  await h.withEnv({ pluginOptions: { registration: 'preregistered', audit_file: '$DIR/audit.log' } }, async (env) => {
    env.emu.preRegister(h.PRODUCT_KEY, 'pre-0001');
    const known = await env.rr('pre-0001');
    assert.strictEqual(known.reply.success, true);
    h.assertSameSecret(known.reply.data.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'pre-0001').DeviceSecret, 'DeviceSecret');

    const unknown = await env.rr('pre-unknown-0001');
    assert.strictEqual(unknown.reply.success, false);
    assert.strictEqual(unknown.reply.code, 'not_registered');
    assert.strictEqual(unknown.reply.retryAfter, undefined);
    assert.strictEqual(env.emu.device(h.PRODUCT_KEY, 'pre-unknown-0001'), null, 'nothing was created');

    // the existing_devices policy still applies: an activated device is refused
    env.emu.preRegister(h.PRODUCT_KEY, 'pre-0002');
    env.emu.device(h.PRODUCT_KEY, 'pre-0002').Status = 'ONLINE';
    assert.strictEqual((await env.rr('pre-0002')).reply.code, 'already_activated');

    const stats = env.emu.stats();
    for (const a of CREATING) assert.strictEqual(stats.byAction[a], undefined, `${a} was called`);
    assert.strictEqual(stats.byAction.QueryDeviceDetail, 3);
  });
});

test('preregistered with a crowd: lookups are batched, unknown names refused, nothing created', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS },
    pluginOptions: { registration: 'preregistered' } });
  try {
    const known = Array.from({ length: 150 }, (_, i) => `crowd-pre-${String(i).padStart(3, '0')}`);
    const unknown = Array.from({ length: 50 }, (_, i) => `crowd-unk-${String(i).padStart(3, '0')}`);
    await env.emu.preRegister(h.PRODUCT_KEY, known);
    const results = await Promise.all([...known, ...unknown].map((id) => env.device(id)));
    for (let i = 0; i < known.length; i++) {
      assert.ok(results[i].reply.success, `${known[i]}: ${JSON.stringify(results[i].codes)}`);
      h.assertSameSecret(results[i].reply.data.DeviceSecret, (await env.emu.device(h.PRODUCT_KEY, known[i])).DeviceSecret, known[i]);
    }
    for (let i = known.length; i < results.length; i++) assert.deepStrictEqual(results[i].codes, ['not_registered']);
    const stats = await env.emu.stats();
    for (const a of CREATING) assert.strictEqual(stats.byAction[a], undefined, `${a} was called`);
    assert.ok(stats.byAction.BatchQueryDeviceDetail >= 1, JSON.stringify(stats.byAction));
    assert.strictEqual(stats.throttled, 0);
    assert.strictEqual(stats.batch.devicesCreated, 0);
  } finally {
    await env.stop();
  }
});

test('preregistered with existing_devices never is refused at start-up', async () => {
  const env = await h.startEnv({ pluginOptions: { registration: 'preregistered', existing_devices: 'never' }, expectFailure: true });
  try {
    assert.ok(env.failure && env.failure.code !== 0, 'the broker exited with an error');
    assert.match(env.broker.log(), /plugin_opt_registration: preregistered serves only devices that already exist/);
  } finally {
    await env.stop();
  }
});
