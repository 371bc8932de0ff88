'use strict';
// Alibaba's own SDK (@alicloud/pop-core, installed in bench/seed by the test command) signs
// its requests; the emulator must accept them, GET and POST, and refuse them with a wrong
// secret. This pins the emulator's signature check to the real client's, not only to ours.
const test = require('node:test');
const assert = require('assert');
const path = require('path');
const { createEmulator } = require('./emulator.js');

const RPCClient = require(path.join(__dirname, '../../bench/seed/node_modules/@alicloud/pop-core')).RPCClient;

test('pop-core requests pass the emulator\'s gateway checks', async () => {
  const emu = createEmulator({ accessKeys: { LTAIsdk: { secret: 'sdk-secret-value' } }, products: ['a1P'] });
  const port = await emu.listen(0);
  try {
    const client = (secret) => new RPCClient({ accessKeyId: 'LTAIsdk', accessKeySecret: secret, endpoint: `http://127.0.0.1:${port}`, apiVersion: '2018-01-20' });
    const r = await client('sdk-secret-value').request('RegisterDevice', { ProductKey: 'a1P', DeviceName: 'dev-sdk-1' }, { method: 'POST' });
    assert.strictEqual(r.Success, true);
    const q = await client('sdk-secret-value').request('QueryDeviceDetail', { ProductKey: 'a1P', DeviceName: 'dev-sdk-1' }, { method: 'GET' });
    assert.strictEqual(q.Data.DeviceName, 'dev-sdk-1');
    await assert.rejects(client('wrong').request('QueryDeviceDetail', { ProductKey: 'a1P', DeviceName: 'dev-sdk-1' }, { method: 'POST' }),
      (e) => e.code === 'SignatureDoesNotMatch');
    assert.strictEqual(emu.stats().signatureFailures, 1);
  } finally {
    await emu.close();
  }
});
