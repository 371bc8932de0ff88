'use strict';
// The emulator must reject what the real gateway rejects, or a signing bug in the plugin
// would pass the integration tests.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const http = require('http');
const { createEmulator, sign, canonicalQuery } = require('./emulator.js');

const ID = 'LTAItest';
const SECRET = 'emu-secret-' + crypto.randomBytes(6).toString('hex');
let emu, port;

test.before(async () => {
  emu = createEmulator({ accessKeys: { [ID]: { secret: SECRET }, LTAIsts: { secret: SECRET, securityToken: 'tok' } }, products: ['a1P'] });
  port = await emu.listen(0);
});
test.after(() => emu.close());

function params(extra = {}) {
  return { Action: 'RegisterDevice', Format: 'JSON', Version: '2018-01-20', AccessKeyId: ID, SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0', SignatureNonce: crypto.randomUUID(), Timestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    RegionId: 'cn-shanghai', ProductKey: 'a1P', DeviceName: 'dev-' + crypto.randomBytes(3).toString('hex'), ...extra };
}

function call(method, p, secret = SECRET) {
  const signed = { ...p, Signature: sign(method, p, secret) };
  const body = canonicalQuery(signed) + '&Signature=' + encodeURIComponent(signed.Signature);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: method === 'GET' ? '/?' + body : '/',
      headers: method === 'POST' ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {} }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(data) }));
    });
    req.on('error', reject);
    if (method === 'POST') req.write(body);
    req.end();
  });
}

test('the published vectors (GET and POST) come out of the emulator\'s signer', () => {
  const p = { AccessKeyId: 'testid', Action: 'DescribeRegions', Format: 'XML', SignatureMethod: 'HMAC-SHA1',
    SignatureNonce: '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf', SignatureVersion: '1.0', Timestamp: '2016-02-23T12:46:24Z', Version: '2014-05-26' };
  assert.strictEqual(sign('GET', p, 'testsecret'), 'OLeaidS1JvxuMvnyHOwuJ+uX5qY=');
  assert.strictEqual(sign('POST', p, 'testsecret'), 'MxbnVAM4w6sft9xjVpe/GCKueuk=');
});

test('correctly signed GET and POST are accepted', async () => {
  for (const m of ['GET', 'POST']) {
    const r = await call(m, params());
    assert.strictEqual(r.status, 200, m);
    assert.strictEqual(r.body.Success, true, m);
    assert.ok(r.body.Data.DeviceSecret.length >= 32);
  }
});

test('a signature made for GET is refused on POST', async () => {
  const p = params();
  const body = canonicalQuery(p) + '&Signature=' + encodeURIComponent(sign('GET', p, SECRET));
  const r = await new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }, (res) => {
      let d = ''; res.on('data', (x) => { d += x; }); res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(d) }));
    });
    req.end(body);
  });
  assert.strictEqual(r.body.Code, 'SignatureDoesNotMatch');
});

test('wrong secret, unknown key, stale timestamp, reused nonce, missing token are refused with the real codes', async () => {
  let r = await call('POST', params(), 'not-the-secret');
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'SignatureDoesNotMatch']);
  assert.ok(r.body.RequestId && r.body.HostId && r.body.Recommend);
  r = await call('POST', params({ AccessKeyId: 'LTAInobody' }));
  assert.deepStrictEqual([r.status, r.body.Code], [404, 'InvalidAccessKeyId.NotFound']);
  r = await call('POST', params({ Timestamp: new Date(Date.now() - 16 * 60000).toISOString().replace(/\.\d+Z$/, 'Z') }));
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'InvalidTimeStamp.Expired']);
  const p = params();
  assert.strictEqual((await call('POST', p)).status, 200);
  r = await call('POST', { ...p, DeviceName: 'another-name' });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'SignatureNonceUsed']);
  r = await call('POST', params({ AccessKeyId: 'LTAIsts' }));
  assert.strictEqual(r.body.Code, 'InvalidSecurityToken.Mismatch');
  r = await call('POST', params({ AccessKeyId: 'LTAIsts', SecurityToken: 'tok' }));
  assert.strictEqual(r.body.Success, true);
});

test('RegisterDevice and QueryDeviceDetail follow the platform: names, duplicates, shapes', async () => {
  let r = await call('POST', params({ DeviceName: 'ab' }));
  assert.deepStrictEqual([r.status, r.body.Success, r.body.Code], [200, false, 'iot.device.InvalidFormattedDeviceName']);
  const p = params({ DeviceName: 'dev-dup-1' });
  r = await call('POST', p);
  const secretValue = r.body.Data.DeviceSecret;
  r = await call('POST', params({ DeviceName: 'dev-dup-1' }));
  assert.deepStrictEqual([r.status, r.body.Success, r.body.Code], [200, false, 'iot.device.AlreadyExistedDeviceName']);
  r = await call('POST', params({ Action: 'QueryDeviceDetail', DeviceName: 'dev-dup-1' }));
  assert.strictEqual(r.body.Success, true);
  assert.ok(r.body.Data.DeviceSecret === secretValue, 'same secret');
  assert.strictEqual(r.body.Data.Status, 'UNACTIVE');
  for (const k of ['IotId', 'ProductKey', 'ProductName', 'DeviceName', 'DeviceSecret', 'Status', 'NodeType', 'GmtCreate', 'UtcCreate', 'Region']) {
    assert.ok(k in r.body.Data, k);
  }
  r = await call('POST', params({ Action: 'QueryDeviceDetail', DeviceName: 'dev-nobody' }));
  assert.strictEqual(r.body.Code, 'iot.device.NotExistedDevice');
  r = await call('POST', params({ ProductKey: 'a1Other' }));
  assert.strictEqual(r.body.Code, 'iot.prod.NotExistedProduct');
});

test('quota: calls beyond the per-second rate get Throttling.User', async () => {
  const q = createEmulator({ accessKeys: { [ID]: { secret: SECRET } }, products: ['a1P'], quota: { RegisterDevice: 3 } });
  const qport = await q.listen(0);
  const saved = port;
  port = qport;
  try {
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await call('POST', params())).body.Code || 'ok');
    assert.deepStrictEqual(codes, ['ok', 'ok', 'ok', 'Throttling.User', 'Throttling.User']);
  } finally {
    port = saved;
    await q.close();
  }
});
