'use strict';
// The emulator must reject what the real gateway rejects, or a signing bug in the plugin
// would pass the integration tests.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const http = require('http');
const { createEmulator, sign, canonicalQuery, percentEncode, sha256Hex, canonicalRequestV3, signV3 } = require('./emulator.js');

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

// ---- V3 (ACS3-HMAC-SHA256) ----

const nowV3 = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

// A V3 request as Alibaba's SDKs send RPC actions: POST, parameters in the query, empty body,
// x-acs-* headers signed with host (and content-type when sent). Overrides break it on purpose.
function callV3({ action = 'RegisterDevice', query = {}, keyId = ID, secret = SECRET, date = nowV3(), nonce = crypto.randomUUID(),
  token, extraHeaders = {}, unsigned = {}, authorization, body = '', signedBody = body, afterSigning = {} } = {}) {
  const q = Object.fromEntries(Object.entries({ ProductKey: 'a1P', DeviceName: 'dev-' + crypto.randomBytes(3).toString('hex'), ...query })
    .filter(([, v]) => v !== undefined));
  const headers = { host: `127.0.0.1:${port}`, 'x-acs-action': action, 'x-acs-version': '2018-01-20', 'x-acs-date': date,
    'x-acs-signature-nonce': nonce, 'x-acs-content-sha256': sha256Hex(signedBody), ...extraHeaders };
  if (token !== undefined) headers['x-acs-security-token'] = token;
  const signed = Object.keys(headers).sort();
  const signature = signV3(canonicalRequestV3('POST', '/', q, headers, signed, headers['x-acs-content-sha256']), secret);
  const sent = { ...q, ...afterSigning };
  const path = '/?' + Object.keys(sent).map((k) => percentEncode(k) + '=' + percentEncode(sent[k])).join('&');
  const all = { ...headers, ...unsigned,
    authorization: authorization !== undefined ? authorization : `ACS3-HMAC-SHA256 Credential=${keyId},SignedHeaders=${signed.join(';')},Signature=${signature}` };
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers: all }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(data) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('V3: the worked example of Alibaba\'s "V3 request structure and signature" comes out of the emulator\'s signer', () => {
  const headers = { host: 'ecs.cn-shanghai.aliyuncs.com', 'x-acs-action': 'RunInstances', 'x-acs-version': '2014-05-26',
    'x-acs-date': '2023-10-26T10:22:32Z', 'x-acs-signature-nonce': '3156853299f313e23d1673dc12e1703d',
    'x-acs-content-sha256': sha256Hex('') };
  const canonical = canonicalRequestV3('POST', '/', { RegionId: 'cn-shanghai', ImageId: 'win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd' },
    headers, Object.keys(headers).sort(), sha256Hex(''));
  assert.strictEqual(sha256Hex(canonical), '7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259');
  assert.strictEqual(signV3(canonical, 'YourAccessKeySecret'), '06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0');
});

test('V3: correctly signed RegisterDevice and QueryDeviceDetail are accepted, and counted as V3', async () => {
  const before = emu.stats().bySignature;
  let r = await callV3({ query: { DeviceName: 'dev-v3-1' } });
  assert.deepStrictEqual([r.status, r.body.Success], [200, true]);
  assert.ok(r.body.Data.DeviceSecret.length >= 32);
  r = await callV3({ action: 'QueryDeviceDetail', query: { DeviceName: 'dev-v3-1' } });
  assert.deepStrictEqual([r.status, r.body.Data.DeviceName, r.body.Data.Status], [200, 'dev-v3-1', 'UNACTIVE']);
  // a signed content-type and a form body (parameters there) are V3 too
  r = await callV3({ query: { DeviceName: undefined }, extraHeaders: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'DeviceName=dev-v3-form' });
  assert.strictEqual(r.body.Success, true);
  assert.strictEqual(r.body.Data.DeviceName, 'dev-v3-form');
  const after = emu.stats().bySignature;
  assert.deepStrictEqual([after.v3 - before.v3, after.v1 - before.v1], [3, 0]);
});

test('V3: wrong secret, unknown key, stale date, reused nonce, STS token are refused with the same codes as signature 1.0', async () => {
  let r = await callV3({ secret: 'not-the-secret' });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'SignatureDoesNotMatch']);
  assert.ok(r.body.RequestId && r.body.HostId && r.body.Recommend);
  r = await callV3({ keyId: 'LTAInobody' });
  assert.deepStrictEqual([r.status, r.body.Code], [404, 'InvalidAccessKeyId.NotFound']);
  r = await callV3({ date: new Date(Date.now() - 16 * 60000).toISOString().replace(/\.\d+Z$/, 'Z') });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'InvalidTimeStamp.Expired']);
  r = await callV3({ date: new Date(Date.now() + 16 * 60000).toISOString().replace(/\.\d+Z$/, 'Z') });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'InvalidTimeStamp.Expired']);
  r = await callV3({ date: 'Thu, 26 Oct 2023 10:22:32 GMT' });
  assert.strictEqual(r.body.Code, 'InvalidTimeStamp.Format');
  const nonce = crypto.randomUUID();
  assert.strictEqual((await callV3({ nonce })).status, 200);
  r = await callV3({ nonce, query: { DeviceName: 'another-v3-name' } });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'SignatureNonceUsed']);
  // a nonce is a nonce, whichever way it was signed
  const p = params();
  assert.strictEqual((await call('POST', p)).status, 200);
  r = await callV3({ nonce: p.SignatureNonce });
  assert.strictEqual(r.body.Code, 'SignatureNonceUsed');
  r = await callV3({ keyId: 'LTAIsts' });
  assert.strictEqual(r.body.Code, 'InvalidSecurityToken.Mismatch');
  r = await callV3({ keyId: 'LTAIsts', token: 'other' });
  assert.strictEqual(r.body.Code, 'InvalidSecurityToken.Mismatch');
  r = await callV3({ keyId: 'LTAIsts', token: 'tok', extraHeaders: { 'x-acs-accesskey-id': 'LTAIsts' } });
  assert.strictEqual(r.body.Success, true);
});

test('V3: a request changed after signing is refused: parameters, headers, body', async () => {
  let r = await callV3({ afterSigning: { DeviceName: 'dev-swapped' } });
  assert.strictEqual(r.body.Code, 'SignatureDoesNotMatch');
  r = await callV3({ afterSigning: { IotInstanceId: 'iot-extra' } });
  assert.strictEqual(r.body.Code, 'SignatureDoesNotMatch');
  r = await callV3({ action: 'QueryDeviceDetail', unsigned: { 'x-acs-action': 'RegisterDevice' } });
  assert.strictEqual(r.body.Code, 'SignatureDoesNotMatch');
  // the body is not what x-acs-content-sha256 (signed) says
  r = await callV3({ extraHeaders: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'DeviceName=dev-x', signedBody: '' });
  assert.strictEqual(r.body.Code, 'SignatureDoesNotMatch');
  assert.strictEqual(emu.device('a1P', 'dev-swapped'), null);
});

test('V3: a malformed or incomplete Authorization is IncompleteSignature', async () => {
  const sig = 'a'.repeat(64);
  const malformed = [
    'acs LTAItest:c2lnbmF0dXJl',
    'ACS3-HMAC-SHA1 Credential=LTAItest,SignedHeaders=host,Signature=' + sig,
    'ACS3-HMAC-SHA256 Credential=LTAItest,SignedHeaders=host',
    'ACS3-HMAC-SHA256 Credential=LTAItest,Signature=' + sig,
    'ACS3-HMAC-SHA256 Credential=LTAItest,SignedHeaders=host,Signature=' + sig.toUpperCase(),
    'ACS3-HMAC-SHA256 Credential=LTAItest,SignedHeaders=host,Signature=abc',
    '',
  ];
  for (const authorization of malformed) {
    const r = await callV3({ authorization });
    assert.deepStrictEqual([r.status, r.body.Code], [400, 'IncompleteSignature'], authorization);
  }
  // a header that takes part in signing but is left out of SignedHeaders
  let r = await callV3({ unsigned: { 'x-acs-extra': '1' } });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'IncompleteSignature']);
  r = await callV3({ unsigned: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.strictEqual(r.body.Code, 'IncompleteSignature');
  // SignedHeaders out of order
  r = await callV3({ authorization: 'ACS3-HMAC-SHA256 Credential=LTAItest,SignedHeaders=x-acs-action;host,Signature=' + sig });
  assert.strictEqual(r.body.Code, 'IncompleteSignature');
  // a signed header that is not sent; a required one that is missing
  r = await callV3({ authorization: 'ACS3-HMAC-SHA256 Credential=LTAItest,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-missing;x-acs-signature-nonce;x-acs-version,Signature=' + sig });
  assert.strictEqual(r.body.Code, 'IncompleteSignature');
  r = await callV3({ extraHeaders: { 'x-acs-signature-nonce': '' } });
  assert.strictEqual(r.body.Code, 'IncompleteSignature');
});
