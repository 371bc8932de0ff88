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

test('pop-core AssumeRole with Policy and ExternalId: the emulator\'s STS checks both and records what it got', async () => {
  const roleArn = 'acs:ram::1234567890123456:role/sdk-role';
  const emu = createEmulator({ accessKeys: { LTAIsdk: { secret: 'sdk-secret-value' } }, products: ['a1P'], credentials: { roleArn, ttlS: 20, externalId: 'ext-42' } });
  const port = await emu.listen(0);
  try {
    const sts = new RPCClient({ accessKeyId: 'LTAIsdk', accessKeySecret: 'sdk-secret-value', endpoint: `http://127.0.0.1:${port}`, apiVersion: '2015-04-01' });
    const policy = JSON.stringify({ Version: '1', Statement: [{ Effect: 'Allow', Action: ['iot:RegisterDevice'], Resource: '*' }] });
    const call = (params) => sts.request('AssumeRole', { RoleArn: roleArn, RoleSessionName: 'sdk-1', ...params }, { method: 'POST' });
    const r = await call({ Policy: policy, ExternalId: 'ext-42', DurationSeconds: '900' });
    assert.match(r.Credentials.AccessKeyId, /^STS\./);
    assert.deepStrictEqual(emu.credentialStats().lastSts.AssumeRole, { RoleArn: roleArn, RoleSessionName: 'sdk-1', DurationSeconds: '900', Policy: policy, ExternalId: 'ext-42' });
    await assert.rejects(call({ ExternalId: 'ext-41' }), (e) => e.code === 'NoPermission');
    await assert.rejects(call({}), (e) => e.code === 'NoPermission', 'the role asks for an ExternalId');
    await assert.rejects(call({ ExternalId: 'ext 42' }), (e) => e.code === 'InvalidParameter.ExternalId');
    await assert.rejects(call({ ExternalId: 'ext-42', Policy: '{"Statement":[]}' }), (e) => e.code === 'InvalidParameter.PolicyGrammar');
    await assert.rejects(call({ ExternalId: 'ext-42', Policy: 'not json' }), (e) => e.code === 'InvalidParameter.PolicyGrammar');
    await assert.rejects(call({ ExternalId: 'ext-42', DurationSeconds: '899' }), (e) => e.code === 'InvalidParameter.DurationSeconds');
  } finally {
    await emu.close();
  }
});

test('the metadata service\'s IMDS modes: v2 wants a token, v1 has none (and refuses one), optional takes both', async () => {
  const http = require('http');
  const at = (port, method, p, headers = {}) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end();
  });
  const emu = createEmulator({ accessKeys: {}, products: ['a1P'], credentials: { roleName: 'R1' } });
  const port = await emu.listen(0);
  const prefix = '/latest/meta-data/ram/security-credentials/';
  try {
    assert.strictEqual((await at(port, 'GET', prefix)).status, 401, 'v2: no token, no answer');
    assert.strictEqual((await at(port, 'GET', '/latest/api/token', { 'X-aliyun-ecs-metadata-token-ttl-seconds': '60' })).status, 405, 'the token only to PUT');
    assert.strictEqual((await at(port, 'PUT', '/latest/api/token')).status, 400, 'the token only with the TTL header');
    emu.setImdsMode('v1');
    assert.strictEqual((await at(port, 'PUT', '/latest/api/token', { 'X-aliyun-ecs-metadata-token-ttl-seconds': '60' })).status, 404);
    assert.deepStrictEqual(await at(port, 'GET', prefix), { status: 200, text: 'R1' });
    assert.strictEqual((await at(port, 'GET', prefix + 'R1', { 'X-aliyun-ecs-metadata-token': '' })).status, 401, 'v1: a token header is refused');
    const c = JSON.parse((await at(port, 'GET', prefix + 'R1')).text);
    assert.strictEqual(c.Code, 'Success');
    emu.setImdsMode('optional');
    const token = (await at(port, 'PUT', '/latest/api/token', { 'X-aliyun-ecs-metadata-token-ttl-seconds': '60' })).text;
    assert.strictEqual((await at(port, 'GET', prefix, { 'X-aliyun-ecs-metadata-token': token })).status, 200);
    assert.strictEqual((await at(port, 'GET', prefix, { 'X-aliyun-ecs-metadata-token': 'made-up' })).status, 401);
    assert.strictEqual((await at(port, 'GET', prefix)).status, 200);
    assert.strictEqual(emu.credentialStats().metadataWithoutToken, 3);
  } finally {
    await emu.close();
  }
});
