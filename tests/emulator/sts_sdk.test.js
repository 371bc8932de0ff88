'use strict';
// Alibaba's own SDK (@alicloud/pop-core, installed in bench/seed by the test command) against the
// emulator's STS: its AssumeRole must pass the signature checks and get credentials the gateway
// accepts with their SecurityToken. (Beside sdk.test.js, which does the same for the IoT actions.)
const test = require('node:test');
const assert = require('assert');
const path = require('path');
const { createEmulator } = require('./emulator.js');

const RPCClient = require(path.join(__dirname, '../../bench/seed/node_modules/@alicloud/pop-core')).RPCClient;

test('pop-core AssumeRole passes the emulator\'s STS, and its calls with the STS credentials pass the gateway', async () => {
  const roleArn = 'acs:ram::1234567890123456:role/sdk-role';
  const emu = createEmulator({ accessKeys: { LTAIsdk: { secret: 'sdk-secret-value' } }, products: ['a1P'], credentials: { roleArn, ttlS: 20 } });
  const port = await emu.listen(0);
  try {
    const sts = new RPCClient({ accessKeyId: 'LTAIsdk', accessKeySecret: 'sdk-secret-value', endpoint: `http://127.0.0.1:${port}`, apiVersion: '2015-04-01' });
    for (const method of ['POST', 'GET']) {
      const r = await sts.request('AssumeRole', { RoleArn: roleArn, RoleSessionName: 'sdk-' + method }, { method });
      assert.match(r.Credentials.AccessKeyId, /^STS\./);
      const iot = new RPCClient({ accessKeyId: r.Credentials.AccessKeyId, accessKeySecret: r.Credentials.AccessKeySecret,
        securityToken: r.Credentials.SecurityToken, endpoint: `http://127.0.0.1:${port}`, apiVersion: '2018-01-20' });
      assert.strictEqual((await iot.request('RegisterDevice', { ProductKey: 'a1P' }, { method: 'POST' })).Success, true, method);
    }
    const wrong = new RPCClient({ accessKeyId: 'LTAIsdk', accessKeySecret: 'wrong', endpoint: `http://127.0.0.1:${port}`, apiVersion: '2015-04-01' });
    await assert.rejects(wrong.request('AssumeRole', { RoleArn: roleArn, RoleSessionName: 'sdk' }, { method: 'POST' }), (e) => e.code === 'SignatureDoesNotMatch');
  } finally {
    await emu.close();
  }
});
