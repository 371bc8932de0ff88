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

// ---- Credential services: ECS metadata (IMDSv2), STS AssumeRole / AssumeRoleWithOIDC, credentials URI ----

const ROLE = 'BrokerEcsRole';
const ROLE_ARN = 'acs:ram::1234567890123456:role/broker-role';
const OIDC_ARN = 'acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1';
const OIDC_TOKEN = Buffer.from('{"alg":"RS256"}').toString('base64url') + '.' +
  Buffer.from(JSON.stringify({ iss: 'https://oidc-ack.example', sub: 'system:serviceaccount:iot:broker', aud: 'sts.aliyuncs.com', iat: 1700000000, exp: 1700003600 })).toString('base64url') +
  '.' + crypto.randomBytes(32).toString('base64url');
const ISO_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

function credEmulator(extra = {}) {
  return createEmulator({ accessKeys: { [ID]: { secret: SECRET }, LTAIother: { secret: SECRET }, LTAIsts: { secret: SECRET, securityToken: 'tok' } },
    products: ['a1P'], credentials: { roleName: ROLE, roleArn: ROLE_ARN, oidcProviderArn: OIDC_ARN, oidcToken: OIDC_TOKEN, ttlS: 2 },
    stsCallers: [ID], ...extra });
}

function httpAt(p, method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: p, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch (e) { json = null; }
        resolve({ status: res.statusCode, type: res.headers['content-type'] || '', text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const form = (o) => Object.keys(o).map((k) => percentEncode(k) + '=' + percentEncode(o[k])).join('&');
const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

// As credentials-go does it: the common parameters in the query, the action's in the form body,
// signature 1.0 over both.
function stsCall(p, action, body, { id = ID, secret = SECRET, securityToken, method = 'POST' } = {}) {
  const query = { Version: '2015-04-01', Action: action, Format: 'JSON', Timestamp: stamp() };
  if (action === 'AssumeRole') {
    Object.assign(query, { SignatureMethod: 'HMAC-SHA1', SignatureVersion: '1.0', SignatureNonce: crypto.randomUUID(), AccessKeyId: id });
    if (securityToken) query.SecurityToken = securityToken;
    query.Signature = sign(method, { ...query, ...body }, secret);
  }
  if (method === 'GET') return httpAt(p, 'GET', '/?' + form({ ...query, ...body }));
  return httpAt(p, 'POST', '/?' + form(query), { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form(body) });
}

// An IoT call signed with issued credentials.
function iotCall(p, action, c, { securityToken = c.SecurityToken, extra = {} } = {}) {
  const q = { Action: action, Format: 'JSON', Version: '2018-01-20', AccessKeyId: c.AccessKeyId, SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0', SignatureNonce: crypto.randomUUID(), Timestamp: stamp(), RegionId: 'cn-shanghai', ProductKey: 'a1P',
    DeviceName: 'dev-' + crypto.randomBytes(4).toString('hex'), ...extra };
  if (securityToken !== null) q.SecurityToken = securityToken;
  q.Signature = sign('POST', q, c.AccessKeySecret);
  return httpAt(p, 'POST', '/', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form(q) });
}

async function imdsToken(p, ttl = '21600') {
  const r = await httpAt(p, 'PUT', '/latest/api/token', { headers: { 'X-aliyun-ecs-metadata-token-ttl-seconds': ttl } });
  assert.strictEqual(r.status, 200);
  return r.text;
}

async function imdsCredentials(p) {
  const token = await imdsToken(p);
  const r = await httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/' + ROLE, { headers: { 'X-aliyun-ecs-metadata-token': token } });
  assert.strictEqual(r.status, 200);
  return r.json;
}

function assertCredentialShape(c) {
  assert.match(c.AccessKeyId, /^STS\.[A-Za-z0-9]{20,}$/);
  assert.ok(c.AccessKeySecret.length >= 30);
  assert.ok(c.SecurityToken.length >= 100);
  assert.match(c.Expiration, ISO_SECONDS);
}

test('IMDSv2: PUT token (ttl 1..21600), then the role name and the role\'s credentials with the token', async () => {
  const e = credEmulator();
  const p = await e.listen(0);
  try {
    for (const bad of [null, '0', '21601', 'abc', '-5', '1.5']) {
      const r = await httpAt(p, 'PUT', '/latest/api/token', { headers: bad === null ? {} : { 'X-aliyun-ecs-metadata-token-ttl-seconds': bad } });
      assert.strictEqual(r.status, 400, String(bad));
    }
    assert.strictEqual((await httpAt(p, 'GET', '/latest/api/token')).status, 405);
    const token = await imdsToken(p, '1');
    assert.ok(token.length >= 20);
    const auth = { 'X-aliyun-ecs-metadata-token': token };
    let r = await httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/', { headers: auth });
    assert.deepStrictEqual([r.status, r.text], [200, ROLE]);
    assert.match(r.type, /^text\/plain/);
    r = await httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/' + ROLE, { headers: auth });
    assert.strictEqual(r.status, 200);
    assertCredentialShape(r.json);
    assert.strictEqual(r.json.Code, 'Success');
    assert.match(r.json.LastUpdated, ISO_SECONDS);
    assert.deepStrictEqual(Object.keys(r.json).sort(), ['AccessKeyId', 'AccessKeySecret', 'Code', 'Expiration', 'LastUpdated', 'SecurityToken']);
    const again = (await httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/' + ROLE, { headers: auth })).json;
    assert.notStrictEqual(again.AccessKeyId, r.json.AccessKeyId, 'every fetch issues a fresh credential');
    r = await httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/OtherRole', { headers: auth });
    assert.strictEqual(r.status, 404, 'unknown role');
    // IMDSv2 enforced: no token, a made-up token, an expired token
    for (const headers of [{}, { 'X-aliyun-ecs-metadata-token': 'made-up' }]) {
      assert.strictEqual((await httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/' + ROLE, { headers })).status, 401);
      assert.strictEqual((await httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/', { headers })).status, 401);
    }
    await new Promise((resolve) => setTimeout(resolve, 1100));
    r = await httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/' + ROLE, { headers: auth });
    assert.strictEqual(r.status, 401, 'the metadata token expired');
    const s = e.credentialStats();
    assert.strictEqual(s.calls.metadataToken, 8);
    assert.strictEqual(s.calls.metadataCredentials, 6);
    assert.strictEqual(s.calls.metadataRoleName, 3);
    assert.strictEqual(s.issued.metadataCredentials, 2);
    assert.strictEqual(s.metadataUnauthorized, 5);
  } finally {
    await e.close();
  }
});

test('issued credentials: accepted by the IoT actions with their own token until Expiration, then InvalidSecurityToken.Expired', async () => {
  const e = credEmulator({ credentials: { roleName: ROLE, ttlS: 1 } });
  const p = await e.listen(0);
  try {
    const c = await imdsCredentials(p);
    const other = await imdsCredentials(p);
    let r = await iotCall(p, 'RegisterDevice', c, { extra: { DeviceName: 'dev-sts-1' } });
    assert.deepStrictEqual([r.status, r.json.Success], [200, true]);
    r = await iotCall(p, 'QueryDeviceDetail', c, { extra: { DeviceName: 'dev-sts-1' } });
    assert.deepStrictEqual([r.status, r.json.Data.DeviceName], [200, 'dev-sts-1']);
    r = await iotCall(p, 'RegisterDevice', c, { securityToken: null });
    assert.deepStrictEqual([r.status, r.json.Code], [400, 'MissingSecurityToken']);
    r = await iotCall(p, 'RegisterDevice', c, { securityToken: other.SecurityToken });
    assert.deepStrictEqual([r.status, r.json.Code], [400, 'InvalidSecurityToken.MismatchWithAccessKey']);
    r = await iotCall(p, 'RegisterDevice', { ...c, AccessKeySecret: 'wrong' });
    assert.deepStrictEqual([r.status, r.json.Code], [400, 'SignatureDoesNotMatch']);
    const wait = Date.parse(c.Expiration) - Date.now();
    assert.ok(wait > 0 && wait <= 2000, 'ttlS 1: expires within two seconds');
    await new Promise((resolve) => setTimeout(resolve, wait + 50));
    for (const action of ['RegisterDevice', 'QueryDeviceDetail']) {
      r = await iotCall(p, action, c, { extra: { DeviceName: 'dev-sts-1' } });
      assert.deepStrictEqual([r.status, r.json.Code], [400, 'InvalidSecurityToken.Expired'], action);
      assert.ok(r.json.RequestId && r.json.HostId && r.json.Message && r.json.Recommend, 'gateway error shape');
    }
    assert.strictEqual(e.credentialStats().iotRefusedExpired, 2);
    assert.strictEqual(e.stats().byCode['InvalidSecurityToken.Expired'], 2);
    const fresh = await imdsCredentials(p);
    assert.strictEqual((await iotCall(p, 'RegisterDevice', fresh)).json.Success, true, 'a fresh credential works');
    e.expireIssuedCredentials();
    assert.strictEqual((await iotCall(p, 'RegisterDevice', fresh)).json.Code, 'InvalidSecurityToken.Expired', 'expired on demand');
    assert.ok(e.issuedCredentials().every((x) => x.expired));
  } finally {
    await e.close();
  }
});

test('issued credentials over V3: the token in x-acs-security-token, the same refusals', async () => {
  const c = (await httpAt(port, 'GET', '/_credentials')).json;
  const as = { keyId: c.AccessKeyId, secret: c.AccessKeySecret };
  let r = await callV3({ ...as, token: c.SecurityToken });
  assert.deepStrictEqual([r.status, r.body.Success], [200, true]);
  r = await callV3({ ...as });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'MissingSecurityToken']);
  r = await callV3({ ...as, token: c.SecurityToken.slice(0, -4) + 'AAAA' });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'InvalidSecurityToken.MismatchWithAccessKey']);
  emu.expireIssuedCredentials();
  r = await callV3({ ...as, token: c.SecurityToken });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'InvalidSecurityToken.Expired']);
});

test('STS AssumeRole: signed by a configured long-term key, the real answer shape; refusals with the STS codes', async () => {
  const e = credEmulator();
  const p = await e.listen(0);
  try {
    const body = { RoleArn: ROLE_ARN, RoleSessionName: 'mosquitto-bootstrap', DurationSeconds: '3600' };
    let r = await stsCall(p, 'AssumeRole', body);
    assert.strictEqual(r.status, 200, r.text);
    assert.deepStrictEqual(Object.keys(r.json).sort(), ['AssumedRoleUser', 'Credentials', 'RequestId']);
    assert.strictEqual(r.json.AssumedRoleUser.Arn, ROLE_ARN + '/mosquitto-bootstrap');
    assert.match(r.json.AssumedRoleUser.AssumedRoleId, /^\d{17}:mosquitto-bootstrap$/);
    assertCredentialShape(r.json.Credentials);
    const lifetime = Date.parse(r.json.Credentials.Expiration) - Date.now();
    assert.ok(lifetime > 0 && lifetime <= 3000, 'the emulator\'s ttlS (2) caps DurationSeconds');
    assert.strictEqual((await iotCall(p, 'RegisterDevice', r.json.Credentials)).json.Success, true);
    r = await stsCall(p, 'AssumeRole', { RoleArn: ROLE_ARN, RoleSessionName: 'get-signed' }, { method: 'GET' });
    assert.strictEqual(r.status, 200, 'GET works too');
    const sts = r.json.Credentials;

    const refusals = [
      [{}, { secret: 'not-the-secret' }, 400, 'SignatureDoesNotMatch'],
      [{}, { id: 'LTAInobody' }, 404, 'InvalidAccessKeyId.NotFound'],
      [{}, { id: 'LTAIother' }, 403, 'NoPermission'],                       // configured, not an STS caller
      [{}, { id: 'LTAIsts', securityToken: 'tok' }, 403, 'NoPermission'],   // not a long-term key
      [{}, { id: sts.AccessKeyId, secret: sts.AccessKeySecret, securityToken: sts.SecurityToken }, 403, 'NoPermission'],
      [{ RoleArn: 'acs:ram::1234567890123456:role/nobody' }, {}, 404, 'EntityNotExist.Role'],
      [{ RoleArn: undefined }, {}, 400, 'MissingRoleArn'],
      [{ RoleSessionName: 'a' }, {}, 400, 'InvalidParameter.RoleSessionName'],
      [{ RoleSessionName: 'bad name!' }, {}, 400, 'InvalidParameter.RoleSessionName'],
      [{ DurationSeconds: '100' }, {}, 400, 'InvalidParameter.DurationSeconds'],
      [{ DurationSeconds: '7200' }, {}, 400, 'InvalidParameter.DurationSeconds'],
    ];
    for (const [change, who, status, code] of refusals) {
      const b = { ...body, ...change };
      for (const k of Object.keys(b)) if (b[k] === undefined) delete b[k];
      r = await stsCall(p, 'AssumeRole', b, who);
      assert.deepStrictEqual([r.status, r.json.Code], [status, code], JSON.stringify([change, who.id]));
      assert.ok(r.json.RequestId && r.json.Message, 'error shape');
    }
    // the caller's credential expired
    e.expireIssuedCredentials();
    r = await stsCall(p, 'AssumeRole', body, { id: sts.AccessKeyId, secret: sts.AccessKeySecret, securityToken: sts.SecurityToken });
    assert.strictEqual(r.json.Code, 'InvalidSecurityToken.Expired');
    // stsCallers defaults to every configured long-term key
    const d = createEmulator({ accessKeys: { [ID]: { secret: SECRET }, LTAIother: { secret: SECRET } }, credentials: { roleArn: ROLE_ARN } });
    const dp = await d.listen(0);
    try {
      assert.strictEqual((await stsCall(dp, 'AssumeRole', body, { id: 'LTAIother' })).status, 200);
      d.setStsCallers([]);
      assert.strictEqual((await stsCall(dp, 'AssumeRole', body, { id: 'LTAIother' })).json.Code, 'NoPermission');
    } finally {
      await d.close();
    }
    assert.strictEqual(e.credentialStats().calls.AssumeRole, 2 + refusals.length + 1);
    assert.strictEqual(e.credentialStats().issued.AssumeRole, 2);
    assert.strictEqual(e.stats().requests, 1, 'STS calls are not IoT requests');
  } finally {
    await e.close();
  }
});

test('STS AssumeRoleWithOIDC: anonymous, the configured token and ARNs only; OIDCTokenInfo from the token', async () => {
  const e = credEmulator();
  const p = await e.listen(0);
  try {
    const body = { RoleArn: ROLE_ARN, OIDCProviderArn: OIDC_ARN, OIDCToken: OIDC_TOKEN, RoleSessionName: 'broker-pod' };
    let r = await stsCall(p, 'AssumeRoleWithOIDC', body);
    assert.strictEqual(r.status, 200, r.text);
    assert.deepStrictEqual(Object.keys(r.json).sort(), ['AssumedRoleUser', 'Credentials', 'OIDCTokenInfo', 'RequestId']);
    assert.strictEqual(r.json.AssumedRoleUser.Arn, ROLE_ARN + '/broker-pod');
    assertCredentialShape(r.json.Credentials);
    assert.deepStrictEqual(r.json.OIDCTokenInfo, { Subject: 'system:serviceaccount:iot:broker', Issuer: 'https://oidc-ack.example',
      ClientIds: 'sts.aliyuncs.com', ExpirationTime: '2023-11-14T23:13:20Z', IssuanceTime: '2023-11-14T22:13:20Z', VerificationInfo: 'Success' });
    assert.strictEqual((await iotCall(p, 'RegisterDevice', r.json.Credentials)).json.Success, true);
    for (const [change, status, code] of [
      [{ OIDCToken: OIDC_TOKEN.slice(0, -2) + 'xx' }, 401, 'AuthenticationFail.OIDCToken.Invalid'],
      [{ OIDCToken: '' }, 401, 'AuthenticationFail.OIDCToken.Invalid'],
      [{ OIDCProviderArn: 'acs:ram::1234567890123456:oidc-provider/other' }, 401, 'AuthenticationFail.NoPermission'],
      [{ RoleArn: 'acs:ram::1234567890123456:role/other' }, 404, 'EntityNotExist.Role'],
      [{ RoleSessionName: '' }, 400, 'MissingRoleSessionName'],
      [{ DurationSeconds: '899' }, 400, 'InvalidParameter.DurationSeconds'],
    ]) {
      r = await stsCall(p, 'AssumeRoleWithOIDC', { ...body, ...change });
      assert.deepStrictEqual([r.status, r.json.Code], [status, code], JSON.stringify(change));
    }
    assert.strictEqual(e.credentialStats().oidcTokenRefused, 1);
    assert.strictEqual(e.credentialStats().calls.AssumeRoleWithOIDC, 7);
  } finally {
    await e.close();
  }
});

test('credentials URI: GET answers Code Success and a fresh credential; the path is configurable', async () => {
  const e = credEmulator({ credentials: { uriPath: '/creds/broker', ttlS: 20 } });
  const p = await e.listen(0);
  try {
    const r = await httpAt(p, 'GET', '/creds/broker');
    assert.strictEqual(r.status, 200);
    assert.deepStrictEqual(Object.keys(r.json).sort(), ['AccessKeyId', 'AccessKeySecret', 'Code', 'Expiration', 'SecurityToken']);
    assert.strictEqual(r.json.Code, 'Success');
    assertCredentialShape(r.json);
    const lifetime = Date.parse(r.json.Expiration) - Date.now();
    assert.ok(lifetime > 18000 && lifetime <= 21000, 'ttlS 20');
    assert.strictEqual((await iotCall(p, 'RegisterDevice', r.json)).json.Success, true);
    assert.strictEqual((await httpAt(p, 'POST', '/creds/broker')).status, 405);
    assert.strictEqual((await httpAt(p, 'GET', '/_credentials')).status, 404, 'the default path is not served when another is set');
  } finally {
    await e.close();
  }
});

test('the refusal switch: metadata, STS and the URI fail with the status until turned back; issued credentials keep working', async () => {
  const e = credEmulator({ credentials: { roleName: ROLE, roleArn: ROLE_ARN, oidcProviderArn: OIDC_ARN, oidcToken: OIDC_TOKEN, ttlS: 60 } });
  const p = await e.listen(0);
  try {
    const before = await imdsCredentials(p);
    const token = await imdsToken(p);
    const attempts = () => Promise.all([
      httpAt(p, 'PUT', '/latest/api/token', { headers: { 'X-aliyun-ecs-metadata-token-ttl-seconds': '60' } }),
      httpAt(p, 'GET', '/latest/meta-data/ram/security-credentials/' + ROLE, { headers: { 'X-aliyun-ecs-metadata-token': token } }),
      stsCall(p, 'AssumeRole', { RoleArn: ROLE_ARN, RoleSessionName: 'refused' }),
      stsCall(p, 'AssumeRoleWithOIDC', { RoleArn: ROLE_ARN, OIDCProviderArn: OIDC_ARN, OIDCToken: OIDC_TOKEN, RoleSessionName: 'refused' }),
      httpAt(p, 'GET', '/_credentials'),
    ]);
    e.setCredentialsRefusal(true, 500);
    let rs = await attempts();
    assert.deepStrictEqual(rs.map((r) => r.status), [500, 500, 500, 500, 500]);
    assert.strictEqual(rs[2].json.Code, 'InternalError');
    assert.strictEqual(e.credentialStats().refused, 5);
    assert.strictEqual((await iotCall(p, 'RegisterDevice', before)).json.Success, true, 'the platform itself still answers');
    // over the control API (as a remote emulator is driven): 503, then back
    let c = await httpAt(p, 'POST', '/_emulator/credentials', { body: JSON.stringify({ refuse: true, status: 503 }) });
    assert.deepStrictEqual([c.json.refuse, c.json.status], [true, 503]);
    rs = await attempts();
    assert.deepStrictEqual(rs.map((r) => r.status), [503, 503, 503, 503, 503]);
    assert.strictEqual(rs[3].json.Code, 'ServiceUnavailable');
    // only the metadata service
    await httpAt(p, 'POST', '/_emulator/credentials', { body: JSON.stringify({ refuse: true, status: 503, services: ['metadata'] }) });
    rs = await attempts();
    assert.deepStrictEqual(rs.map((r) => r.status), [503, 503, 200, 200, 200]);
    c = await httpAt(p, 'POST', '/_emulator/credentials', { body: JSON.stringify({ refuse: false, ttlS: 5 }) });
    assert.deepStrictEqual([c.json.refuse, c.json.ttlS], [false, 5]);
    rs = await attempts();
    assert.deepStrictEqual(rs.map((r) => r.status), [200, 200, 200, 200, 200]);
    const lifetime = Date.parse(rs[4].json.Expiration) - Date.now();
    assert.ok(lifetime > 3000 && lifetime <= 6000, 'ttlS changed to 5');
  } finally {
    await e.close();
  }
});

test('stats, reset and the issued-secrets list (module API and control API agree)', async () => {
  const e = credEmulator();
  const p = await e.listen(0);
  try {
    const m = await imdsCredentials(p);
    const u = (await httpAt(p, 'GET', '/_credentials')).json;
    const a = (await stsCall(p, 'AssumeRole', { RoleArn: ROLE_ARN, RoleSessionName: 'stats' })).json.Credentials;
    const stats = (await httpAt(p, 'GET', '/_emulator/stats')).json;
    assert.deepStrictEqual(stats.credentials.calls, { metadataToken: 1, metadataRoleName: 0, metadataCredentials: 1, metadataOther: 0, AssumeRole: 1, AssumeRoleWithOIDC: 0, credentialsUri: 1 });
    assert.deepStrictEqual(stats.credentials.issued, { metadataToken: 1, metadataCredentials: 1, credentialsUri: 1, AssumeRole: 1 });
    const secrets = e.allIssuedSecrets();
    for (const c of [m, u, a]) {
      assert.ok(secrets.includes(c.AccessKeySecret) && secrets.includes(c.SecurityToken));
      assert.ok(!secrets.includes(c.AccessKeyId), 'ids are not secrets');
    }
    assert.ok(secrets.includes(OIDC_TOKEN));
    assert.strictEqual(secrets.length, 1 + 1 + 3 * 2, 'OIDC token, IMDS token, three credentials');
    assert.deepStrictEqual((await httpAt(p, 'GET', '/_emulator/issued-secrets')).json, secrets);
    assert.strictEqual((await httpAt(p, 'GET', '/_emulator/issued-credentials')).json.length, 3);
    const config = (await httpAt(p, 'GET', '/_emulator/credentials')).json;
    assert.deepStrictEqual([config.roleName, config.roleArn, config.oidcProviderArn, config.ttlS, config.stsCallers], [ROLE, ROLE_ARN, OIDC_ARN, 2, [ID]]);
    await httpAt(p, 'POST', '/_emulator/reset');
    assert.strictEqual(e.credentialStats().calls.AssumeRole, 0, 'reset clears the credential counters');
    assert.strictEqual(e.allIssuedSecrets().length, secrets.length, 'but not the list of what was handed out');
  } finally {
    await e.close();
  }
});

test('run as a process: the credential flags, the OIDC token from the environment, the control API', async () => {
  const { spawn } = require('child_process');
  const proc = spawn(process.execPath, [require.resolve('./emulator.js'), '--port', '0', '--role-name', ROLE, '--role-arn', ROLE_ARN,
    '--oidc-provider-arn', OIDC_ARN, '--credential-ttl-s', '20', '--credentials-uri-path', '/creds'],
  { env: { ...process.env, EMULATOR_ACCESS_KEY_ID: ID, EMULATOR_ACCESS_KEY_SECRET: SECRET, EMULATOR_OIDC_TOKEN: OIDC_TOKEN }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let out = '';
    const p = await new Promise((resolve, reject) => {
      proc.stdout.on('data', (d) => { out += d; const m = /"port":(\d+)/.exec(out); if (m) resolve(Number(m[1])); });
      proc.on('exit', () => reject(new Error('the emulator exited')));
    });
    assert.ok(!out.includes(OIDC_TOKEN) && !out.includes(SECRET), 'no secret printed');
    const config = (await httpAt(p, 'GET', '/_emulator/credentials')).json;
    assert.deepStrictEqual([config.roleName, config.roleArn, config.oidcProviderArn, config.ttlS, config.uriPath, config.stsCallers], [ROLE, ROLE_ARN, OIDC_ARN, 20, '/creds', [ID]]);
    const body = { RoleArn: ROLE_ARN, OIDCProviderArn: OIDC_ARN, OIDCToken: OIDC_TOKEN, RoleSessionName: 'remote' };
    assert.strictEqual((await stsCall(p, 'AssumeRoleWithOIDC', body)).status, 200);
    assert.strictEqual((await stsCall(p, 'AssumeRole', { RoleArn: ROLE_ARN, RoleSessionName: 'remote' })).status, 200);
    assert.strictEqual((await httpAt(p, 'GET', '/creds')).status, 200);
    const stats = (await httpAt(p, 'GET', '/_emulator/stats')).json;
    assert.deepStrictEqual([stats.credentials.issued.AssumeRoleWithOIDC, stats.credentials.issued.AssumeRole, stats.credentials.issued.credentialsUri], [1, 1, 1]);
    assert.strictEqual((await httpAt(p, 'GET', '/_emulator/issued-secrets')).json[0], OIDC_TOKEN);
  } finally {
    await new Promise((resolve) => { proc.on('close', resolve); proc.kill('SIGTERM'); });
  }
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
  r = await callV3({ extraHeaders: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'Nickname=dev_x', signedBody: '' });
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

// ---- Batch actions: BatchQueryDeviceDetail, BatchCheckDeviceNames, QueryBatchRegisterDeviceStatus,
// BatchRegisterDeviceWithApplyId, QueryPageByApplyId ----

const { DOCUMENTED_QPS } = require('./emulator.js');

// A batch action signed with signature 1.0, parameters in a POST form body (or GET); undefined values are left out.
function batchCall(p, action, extra = {}, { method = 'POST', secret = SECRET } = {}) {
  const q = Object.fromEntries(Object.entries({ Action: action, Format: 'JSON', Version: '2018-01-20', AccessKeyId: ID,
    SignatureMethod: 'HMAC-SHA1', SignatureVersion: '1.0', SignatureNonce: crypto.randomUUID(), Timestamp: stamp(),
    RegionId: 'cn-shanghai', ProductKey: action === 'QueryPageByApplyId' ? undefined : 'a1P', ...extra }).filter(([, v]) => v !== undefined));
  q.Signature = sign(method, q, secret);
  if (method === 'GET') return httpAt(p, 'GET', '/?' + form(q));
  return httpAt(p, 'POST', '/', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form(q) });
}

const names = (list, prefix = 'DeviceName') => Object.fromEntries(list.map((n, i) => [`${prefix}.${i + 1}`, n]));
const nameList = (list) => Object.fromEntries(list.flatMap((e, i) => {
  const n = typeof e === 'string' ? { name: e } : e;
  return [[`DeviceNameList.${i + 1}.DeviceName`, n.name], ...(n.nickname ? [[`DeviceNameList.${i + 1}.DeviceNickname`, n.nickname]] : [])];
}));

async function statusOf(p, applyId, productKey = 'a1P') {
  const r = await batchCall(p, 'QueryBatchRegisterDeviceStatus', { ApplyId: String(applyId), ProductKey: productKey });
  assert.strictEqual(r.json.Success, true, JSON.stringify(r.json));
  return r.json.Data;
}

// Polls QueryBatchRegisterDeviceStatus while the stage runs (CHECK / CREATE); returns the last Data.
async function waitStage(p, applyId, { timeoutMs = 5000 } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = await statusOf(p, applyId);
    if (d.Status !== 'CHECK' && d.Status !== 'CREATE') return d;
    if (Date.now() > end) return d;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function batchEmulator(extra = {}) {
  const e = createEmulator({ accessKeys: { [ID]: { secret: SECRET } }, products: ['a1P', 'a1Q'], checkDurationMs: 60, createDurationMs: 80, ...extra });
  return { e, p: await e.listen(0) };
}

test('BatchQueryDeviceDetail: Data.Data[] for the names that exist, in order, with the device fields; refusals', async () => {
  const { e, p } = await batchEmulator();
  try {
    for (const n of ['bq-dev-1', 'bq-dev-2', 'bq-dev-3']) e.preRegister('a1P', n);
    e.setDeviceStatus('a1P', 'bq-dev-2', 'ONLINE');
    for (const method of ['POST', 'GET']) {
      const r = await batchCall(p, 'BatchQueryDeviceDetail', names(['bq-dev-3', 'bq-nobody', 'bq-dev-1', 'bq-dev-2']), { method });
      assert.deepStrictEqual([r.status, r.json.Success], [200, true], method);
      assert.ok(r.json.RequestId);
      const list = r.json.Data.Data;
      assert.deepStrictEqual(list.map((d) => d.DeviceName), ['bq-dev-3', 'bq-dev-1', 'bq-dev-2'], 'names that do not exist are left out');
      assert.deepStrictEqual(list.map((d) => d.Status), ['UNACTIVE', 'UNACTIVE', 'ONLINE']);
      for (const d of list) {
        assert.deepStrictEqual(Object.keys(d).sort(), ['DeviceName', 'DeviceSecret', 'FirmwareVersion', 'GmtActive', 'GmtCreate', 'IotId', 'Nickname',
          'NodeType', 'ProductKey', 'ProductName', 'Region', 'Status', 'UtcActive', 'UtcCreate']);
        assert.strictEqual(d.DeviceSecret, e.device('a1P', d.DeviceName).DeviceSecret);
        assert.strictEqual(d.IotId, e.device('a1P', d.DeviceName).IotId);
        assert.strictEqual(d.ProductKey, 'a1P');
      }
    }
    // nothing found is an empty list, not an error
    let r = await batchCall(p, 'BatchQueryDeviceDetail', names(['bq-nobody']));
    assert.deepStrictEqual(r.json.Data, { Data: [] });
    // 100 names at most
    r = await batchCall(p, 'BatchQueryDeviceDetail', names(Array.from({ length: 100 }, (_, i) => 'bq-dev-' + (i + 1))));
    assert.strictEqual(r.json.Data.Data.length, 3);
    r = await batchCall(p, 'BatchQueryDeviceDetail', names(Array.from({ length: 101 }, (_, i) => 'bq-dev-' + (i + 1))));
    assert.deepStrictEqual([r.status, r.json.Success, r.json.Code], [200, false, 'iot.device.DeviceCountExceeded']);
    r = await batchCall(p, 'BatchQueryDeviceDetail', { DeviceName: 'bq-dev-1' }); // not DeviceName.1
    assert.deepStrictEqual([r.status, r.json.Code], [400, 'InvalidParameter.Unknown'], 'strict: not a parameter of this action');
    e.setStrict(false);
    r = await batchCall(p, 'BatchQueryDeviceDetail', { DeviceName: 'bq-dev-1' });
    assert.strictEqual(r.json.Code, 'iot.device.NoneDeviceNameElement');
    e.setStrict(true);
    r = await batchCall(p, 'BatchQueryDeviceDetail', { ...names(['bq-dev-1']), ProductKey: undefined });
    assert.strictEqual(r.json.Code, 'iot.prod.NullProductKey');
    r = await batchCall(p, 'BatchQueryDeviceDetail', { ...names(['bq-dev-1']), ProductKey: 'a1Nobody' });
    assert.strictEqual(r.json.Code, 'iot.prod.NotExistedProduct');
    r = await batchCall(p, 'BatchQueryDeviceDetail', { ...names(['bq-dev-1']), ProductKey: 'a1Q' });
    assert.deepStrictEqual(r.json.Data.Data, [], 'another product');
    const s = e.stats();
    assert.strictEqual(s.byAction.BatchQueryDeviceDetail, 10);
    assert.deepStrictEqual([s.batch.devicesServed.BatchQueryDeviceDetail, s.batch.lastDevicesServed.BatchQueryDeviceDetail, s.batch.maxDevicesServed.BatchQueryDeviceDetail], [9, 0, 3]);
  } finally {
    await e.close();
  }
});

test('batch actions pass the same gateway checks as the others: signature 1.0 and V3, wrong secret, reused nonce, instance', async () => {
  emu.preRegister('a1P', 'bq-gw-1');
  let r = await callV3({ action: 'BatchQueryDeviceDetail', query: { DeviceName: undefined, 'DeviceName.1': 'bq-gw-1' } });
  assert.deepStrictEqual([r.status, r.body.Success, r.body.Data.Data[0].DeviceName], [200, true, 'bq-gw-1']);
  r = await callV3({ action: 'BatchCheckDeviceNames', query: { DeviceName: undefined, 'DeviceNameList.1.DeviceName': 'bq-gw-2' } });
  assert.strictEqual(typeof r.body.Data.ApplyId, 'number');
  r = await callV3({ action: 'QueryBatchRegisterDeviceStatus', query: { DeviceName: undefined, ApplyId: String(r.body.Data.ApplyId) } });
  assert.strictEqual(r.body.Data.Status, 'CHECK');
  r = await callV3({ action: 'BatchQueryDeviceDetail', secret: 'not-the-secret', query: { DeviceName: undefined, 'DeviceName.1': 'bq-gw-1' } });
  assert.deepStrictEqual([r.status, r.body.Code], [400, 'SignatureDoesNotMatch']);
  r = await batchCall(port, 'QueryPageByApplyId', { ApplyId: '1' }, { secret: 'not-the-secret' });
  assert.deepStrictEqual([r.status, r.json.Code], [400, 'SignatureDoesNotMatch']);
  const nonce = crypto.randomUUID();
  assert.strictEqual((await callV3({ action: 'BatchQueryDeviceDetail', nonce, query: { DeviceName: undefined, 'DeviceName.1': 'bq-gw-1' } })).status, 200);
  r = await callV3({ action: 'BatchQueryDeviceDetail', nonce, query: { DeviceName: undefined, 'DeviceName.1': 'bq-gw-1' } });
  assert.strictEqual(r.body.Code, 'SignatureNonceUsed');
  const { e, p } = await batchEmulator({ iotInstanceId: 'iot-emu-1' });
  try {
    r = await batchCall(p, 'BatchQueryDeviceDetail', names(['x-dev-1']));
    assert.strictEqual(r.json.Code, 'iot.system.InstanceNotFound');
    r = await batchCall(p, 'BatchQueryDeviceDetail', { ...names(['x-dev-1']), IotInstanceId: 'iot-emu-1' });
    assert.strictEqual(r.json.Success, true);
  } finally {
    await e.close();
  }
});

test('batch registration, the whole flow: check (CHECK → CHECK_SUCCESS), register (CREATE → CREATE_SUCCESS), pages; ordinary devices', async () => {
  const { e, p } = await batchEmulator();
  try {
    const list = Array.from({ length: 120 }, (_, i) => ({ name: `flow-${String(i + 1).padStart(3, '0')}`, nickname: i < 3 ? `灯_${i + 1}` : undefined }));
    let r = await batchCall(p, 'BatchCheckDeviceNames', nameList(list));
    assert.deepStrictEqual([r.status, r.json.Success], [200, true]);
    const applyId = r.json.Data.ApplyId;
    assert.ok(Number.isSafeInteger(applyId) && applyId > 0, 'ApplyId is an integer');
    assert.deepStrictEqual(r.json.Data.InvalidDeviceNameList, { InvalidDeviceName: [] });
    assert.deepStrictEqual(r.json.Data.InvalidDeviceNicknameList, { InvalidDeviceNickname: [] });
    let d = await statusOf(p, applyId);
    assert.deepStrictEqual(d, { Status: 'CHECK', ValidList: { Name: [] }, InvalidList: { Name: [] }, InvalidDetailList: { invalidDetailList: [] } });
    // paging before creation is refused
    r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: String(applyId) });
    assert.strictEqual(r.json.Code, 'iot.device.IncorrentDeviceApplyInfo');
    d = await waitStage(p, applyId);
    assert.deepStrictEqual(d, { Status: 'CHECK_SUCCESS', ValidList: { Name: [] }, InvalidList: { Name: [] }, InvalidDetailList: { invalidDetailList: [] } },
      'on success the lists are empty, as documented');
    assert.strictEqual(e.device('a1P', 'flow-001'), null, 'checking creates nothing');

    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(applyId) });
    assert.deepStrictEqual([r.json.Success, r.json.Data], [true, { ApplyId: applyId }]);
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CREATE');
    r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: String(applyId) });
    assert.strictEqual(r.json.Code, 'iot.device.CreateDeviceTaskIsRunning');
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(applyId) });
    assert.strictEqual(r.json.Code, 'iot.device.CreateDeviceTaskIsRunning');
    d = await waitStage(p, applyId);
    assert.deepStrictEqual(d, { Status: 'CREATE_SUCCESS', ValidList: { Name: [] }, InvalidList: { Name: [] }, InvalidDetailList: { invalidDetailList: [] } });

    // pages: top-level Page, PageSize, PageCount, Total and ApplyDeviceList.ApplyDeviceInfo[]
    const seen = [];
    for (const page of [1, 2, 3]) {
      r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: String(applyId), PageSize: '50', CurrentPage: String(page), ProductKey: undefined });
      assert.strictEqual(r.json.Success, true);
      assert.strictEqual(r.json.Data, undefined, 'no Data wrapper');
      assert.deepStrictEqual([r.json.Page, r.json.PageSize, r.json.PageCount, r.json.Total], [page, 50, 3, 120]);
      const infos = r.json.ApplyDeviceList.ApplyDeviceInfo;
      assert.strictEqual(infos.length, page < 3 ? 50 : 20);
      for (const i of infos) {
        assert.deepStrictEqual(Object.keys(i).sort(), ['DeviceId', 'DeviceName', 'DeviceSecret', 'IotId']);
        const dev = e.device('a1P', i.DeviceName);
        assert.deepStrictEqual([i.DeviceSecret, i.IotId], [dev.DeviceSecret, dev.IotId]);
        seen.push(i.DeviceName);
      }
    }
    assert.deepStrictEqual(seen, list.map((x) => x.name));
    r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: String(applyId), PageSize: '50', CurrentPage: '4' });
    assert.deepStrictEqual([r.json.Success, r.json.Page, r.json.Total, r.json.ApplyDeviceList.ApplyDeviceInfo], [true, 4, 120, []]);
    r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: String(applyId) });
    assert.deepStrictEqual([r.json.Page, r.json.PageSize, r.json.PageCount, r.json.ApplyDeviceList.ApplyDeviceInfo.length], [1, 10, 12, 10], 'defaults: page 1 of 10');
    for (const bad of [{ PageSize: '51' }, { PageSize: '0' }, { CurrentPage: '0' }, { PageSize: 'ten' }]) {
      r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: String(applyId), ...bad });
      assert.strictEqual(r.json.Code, 'iot.common.InvalidPageParams', JSON.stringify(bad));
    }

    // ordinary devices: QueryDeviceDetail and BatchQueryDeviceDetail find them, UNACTIVE, nickname kept
    r = await batchCall(p, 'QueryDeviceDetail', { DeviceName: 'flow-001' });
    assert.deepStrictEqual([r.json.Success, r.json.Data.Status, r.json.Data.Nickname], [true, 'UNACTIVE', '灯_1']);
    r = await batchCall(p, 'BatchQueryDeviceDetail', names(['flow-002', 'flow-120']));
    assert.deepStrictEqual(r.json.Data.Data.map((x) => [x.DeviceName, x.Status, x.Nickname]), [['flow-002', 'UNACTIVE', '灯_2'], ['flow-120', 'UNACTIVE', '']]);
    // registered once: a second registration and RegisterDevice of the same name are refused
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(applyId) });
    assert.strictEqual(r.json.Code, 'iot.device.IncorrentDeviceApplyInfo');
    r = await batchCall(p, 'RegisterDevice', { DeviceName: 'flow-050' });
    assert.strictEqual(r.json.Code, 'iot.device.AlreadyExistedDeviceName');

    const s = e.stats();
    for (const a of ['BatchCheckDeviceNames', 'QueryBatchRegisterDeviceStatus', 'BatchRegisterDeviceWithApplyId', 'QueryPageByApplyId']) assert.ok(s.byAction[a] >= 1, a);
    assert.strictEqual(s.batch.devicesServed.BatchCheckDeviceNames, 120);
    assert.strictEqual(s.batch.devicesServed.BatchRegisterDeviceWithApplyId, 120);
    assert.deepStrictEqual([s.batch.devicesCreated, s.batch.appliesCreated, s.batch.stagesEnded.CHECK_SUCCESS, s.batch.stagesEnded.CREATE_SUCCESS], [120, 1, 1, 1]);
    assert.strictEqual(s.batch.maxDevicesServed.QueryPageByApplyId, 50);
  } finally {
    await e.close();
  }
});

test('BatchCheckDeviceNames: names malformed, existing, repeated, bad nicknames end in CHECK_FAILED with InvalidList and InvalidDetailList', async () => {
  const { e, p } = await batchEmulator();
  try {
    e.preRegister('a1P', 'chk-exists');
    const list = ['chk-ok-1', 'ab', 'bad name!', 'chk-exists', 'chk-ok-1', { name: 'chk-ok-2', nickname: 'x' }, { name: 'chk-ok-3', nickname: 'Lamp_3' }];
    let r = await batchCall(p, 'BatchCheckDeviceNames', nameList(list));
    assert.strictEqual(r.json.Success, true);
    const applyId = r.json.Data.ApplyId;
    // what is plain from the request comes at once
    assert.deepStrictEqual(r.json.Data.InvalidDeviceNameList, { InvalidDeviceName: ['ab', 'bad name!'] });
    assert.deepStrictEqual(r.json.Data.InvalidDeviceNicknameList, { InvalidDeviceNickname: ['x'] });
    assert.deepStrictEqual(r.json.Data.RepeatedDeviceNameList, { RepeatDevieNameList: ['chk-ok-1'] });
    const d = await waitStage(p, applyId);
    assert.strictEqual(d.Status, 'CHECK_FAILED');
    assert.deepStrictEqual(d.ValidList, { Name: ['chk-ok-1', 'chk-ok-3'] });
    assert.deepStrictEqual(d.InvalidList, { Name: ['ab', 'bad name!', 'chk-exists', 'chk-ok-1', 'chk-ok-2'] });
    assert.deepStrictEqual(d.InvalidDetailList.invalidDetailList, [
      { DeviceName: 'ab', ErrorMsg: 'The device name is illegal.', NickName: '' },
      { DeviceName: 'bad name!', ErrorMsg: 'The device name is illegal.', NickName: '' },
      { DeviceName: 'chk-exists', ErrorMsg: 'The device name already exists.', NickName: '' },
      { DeviceName: 'chk-ok-1', ErrorMsg: 'The device name is repeated.', NickName: '' },
      { DeviceName: 'chk-ok-2', ErrorMsg: 'The nick name is illegal.', NickName: 'x' },
    ]);
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(applyId) });
    assert.deepStrictEqual([r.json.Success, r.json.Code], [false, 'iot.device.IncorrentDeviceApplyInfo']);
    assert.strictEqual(e.device('a1P', 'chk-ok-3'), null);
    // a name that exists only for another product is free here
    e.preRegister('a1Q', 'chk-other-product');
    r = await batchCall(p, 'BatchCheckDeviceNames', names(['chk-other-product']));
    assert.strictEqual((await waitStage(p, r.json.Data.ApplyId)).Status, 'CHECK_SUCCESS');
    assert.strictEqual(e.stats().batch.stagesEnded.CHECK_FAILED, 1);
  } finally {
    await e.close();
  }
});

test('BatchCheckDeviceNames: DeviceNameList wins over DeviceName.N; 10 000 names kept, the rest dropped; empty and incomplete lists refused', async () => {
  const { e, p } = await batchEmulator({ checkDurationMs: 0 });
  try {
    let r = await batchCall(p, 'BatchCheckDeviceNames', { ...names(['win-plain-1', 'win-plain-2']), ...nameList(['win-list-1']) });
    assert.deepStrictEqual(e.batchApply(r.json.Data.ApplyId).DeviceNames, ['win-list-1']);
    // N in numeric order, not text order
    r = await batchCall(p, 'BatchCheckDeviceNames', { 'DeviceName.10': 'ord-10', 'DeviceName.2': 'ord-02', 'DeviceName.1': 'ord-01' });
    assert.deepStrictEqual(e.batchApply(r.json.Data.ApplyId).DeviceNames, ['ord-01', 'ord-02', 'ord-10']);
    const many = Array.from({ length: 10001 }, (_, i) => 'many-' + i);
    r = await batchCall(p, 'BatchCheckDeviceNames', names(many));
    assert.strictEqual(r.json.Success, true);
    const a = e.batchApply(r.json.Data.ApplyId);
    assert.strictEqual(a.DeviceNames.length, 10000);
    assert.strictEqual(a.DeviceNames[9999], 'many-9999');
    assert.strictEqual(a.Status, 'CHECK_SUCCESS', 'checkDurationMs 0: checked at once');
    r = await batchCall(p, 'BatchCheckDeviceNames', {});
    assert.strictEqual(r.json.Code, 'iot.device.NoneDeviceNameElement');
    r = await batchCall(p, 'BatchCheckDeviceNames', { 'DeviceNameList.1.DeviceNickname': 'Lamp_1' });
    assert.strictEqual(r.json.Code, 'iot.device.NullDeviceName');
    r = await batchCall(p, 'BatchCheckDeviceNames', { ...names(['pk-less']), ProductKey: undefined });
    assert.strictEqual(r.json.Code, 'iot.prod.NullProductKey');
    r = await batchCall(p, 'BatchCheckDeviceNames', { ...names(['pk-wrong']), ProductKey: 'a1Nobody' });
    assert.strictEqual(r.json.Code, 'iot.prod.NotExistedProduct');
  } finally {
    await e.close();
  }
});

test('BatchRegisterDeviceWithApplyId and the ApplyId: refused before the check succeeded, unknown, malformed, of another product', async () => {
  const { e, p } = await batchEmulator({ checkDurationMs: 60000 });
  try {
    let r = await batchCall(p, 'BatchCheckDeviceNames', names(['early-1', 'early-2']));
    const applyId = String(r.json.Data.ApplyId);
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: applyId });
    assert.deepStrictEqual([r.status, r.json.Success, r.json.Code], [200, false, 'iot.device.IncorrentDeviceApplyInfo']);
    assert.match(r.json.ErrorMessage, /still being checked/);
    assert.strictEqual(e.stats().batch.registerRefused, 1);
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CHECK', 'the refusal changes nothing');
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(Number(applyId) + 1000) });
    assert.strictEqual(r.json.Code, 'iot.device.DeviceApplyIsNotFound');
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: 'abc' });
    assert.strictEqual(r.json.Code, 'iot.device.InvalidFormattedApplyId');
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', {});
    assert.strictEqual(r.json.Code, 'iot.device.NullApplyId');
    r = await batchCall(p, 'QueryBatchRegisterDeviceStatus', { ApplyId: applyId, ProductKey: 'a1Q' });
    assert.strictEqual(r.json.Code, 'iot.device.DeviceApplyIsNotFound', 'the apply belongs to a1P');
    r = await batchCall(p, 'QueryBatchRegisterDeviceStatus', { ApplyId: applyId, ProductKey: undefined });
    assert.strictEqual(r.json.Code, 'iot.prod.NullProductKey');
    r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: '0' });
    assert.strictEqual(r.json.Code, 'iot.device.DeviceApplyIsNotFound');
    // the check's duration can be shortened for stages to come (not the running one)
    e.setBatch({ checkDurationMs: 30 });
    r = await batchCall(p, 'BatchCheckDeviceNames', names(['later-1']));
    assert.strictEqual((await waitStage(p, r.json.Data.ApplyId)).Status, 'CHECK_SUCCESS');
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CHECK');
  } finally {
    await e.close();
  }
});

test('a name registered between the check and the creation: CREATE_FAILED for it, the others created and paged', async () => {
  const { e, p } = await batchEmulator({ createDurationMs: 300 });
  try {
    let r = await batchCall(p, 'BatchCheckDeviceNames', names(['race-1', 'race-2', 'race-3']));
    const applyId = r.json.Data.ApplyId;
    assert.strictEqual((await waitStage(p, applyId)).Status, 'CHECK_SUCCESS');
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(applyId) });
    assert.strictEqual(r.json.Success, true);
    r = await batchCall(p, 'RegisterDevice', { DeviceName: 'race-2' }); // during CREATE: names are not reserved
    assert.strictEqual(r.json.Success, true);
    const ownSecret = r.json.Data.DeviceSecret;
    const d = await waitStage(p, applyId);
    assert.strictEqual(d.Status, 'CREATE_FAILED');
    assert.deepStrictEqual(d.ValidList, { Name: ['race-1', 'race-3'] });
    assert.deepStrictEqual(d.InvalidList, { Name: ['race-2'] });
    assert.deepStrictEqual(d.InvalidDetailList, { invalidDetailList: [{ DeviceName: 'race-2', ErrorMsg: 'The device name already exists.', NickName: '' }] });
    assert.strictEqual(e.device('a1P', 'race-2').DeviceSecret, ownSecret, 'the device RegisterDevice made is left alone');
    r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: String(applyId), PageSize: '50' });
    assert.deepStrictEqual([r.json.Total, r.json.ApplyDeviceList.ApplyDeviceInfo.map((i) => i.DeviceName)], [2, ['race-1', 'race-3']]);
    assert.deepStrictEqual([e.stats().batch.stagesEnded.CREATE_FAILED, e.stats().batch.devicesCreated], [1, 2]);
  } finally {
    await e.close();
  }
});

test('a batch stage that never finishes: stageStuck (module, /_emulator/batch, /_emulator/faults), released by turning it off or by reset', async () => {
  const { e, p } = await batchEmulator({ checkDurationMs: 20, createDurationMs: 20, stageStuck: 'check' });
  try {
    let r = await batchCall(p, 'BatchCheckDeviceNames', names(['stuck-1', 'stuck-2']));
    const applyId = r.json.Data.ApplyId;
    await new Promise((res) => setTimeout(res, 150));
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CHECK');
    let view = (await httpAt(p, 'GET', '/_emulator/batch')).json;
    assert.deepStrictEqual([view.checkDurationMs, view.createDurationMs, view.stageStuck], [20, 20, 'check']);
    assert.deepStrictEqual(view.applies, [{ ApplyId: applyId, ProductKey: 'a1P', Status: 'CHECK', names: 2, stuck: 'check' }]);
    assert.strictEqual(e.stats().batch.stagesStuck, 1);
    // turned off: the stuck check ends at once
    view = (await httpAt(p, 'POST', '/_emulator/batch', { body: JSON.stringify({ stageStuck: false }) })).json;
    assert.strictEqual(view.stageStuck, false);
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CHECK_SUCCESS');
    // creation stuck through /_emulator/faults (with its durations), then POST /_emulator/reset releases it
    assert.strictEqual((await httpAt(p, 'POST', '/_emulator/faults', { body: JSON.stringify({ stageStuck: true, createDurationMs: 10, checkDurationMs: 5 }) })).status, 200);
    assert.deepStrictEqual((({ checkDurationMs, createDurationMs, stageStuck }) => ({ checkDurationMs, createDurationMs, stageStuck }))(e.batchConfig()),
      { checkDurationMs: 5, createDurationMs: 10, stageStuck: true });
    r = await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(applyId) });
    assert.strictEqual(r.json.Success, true);
    await new Promise((res) => setTimeout(res, 100));
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CREATE');
    r = await batchCall(p, 'QueryPageByApplyId', { ApplyId: String(applyId) });
    assert.strictEqual(r.json.Code, 'iot.device.CreateDeviceTaskIsRunning');
    assert.strictEqual(e.device('a1P', 'stuck-1'), null);
    assert.strictEqual((await httpAt(p, 'GET', `/_emulator/batch?applyId=${applyId}`)).json.stuck, 'create');
    assert.strictEqual((await httpAt(p, 'GET', '/_emulator/batch?applyId=1')).status, 404);
    await httpAt(p, 'POST', '/_emulator/reset');
    assert.strictEqual(e.batchConfig().stageStuck, false);
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CREATE_SUCCESS');
    assert.ok(e.device('a1P', 'stuck-2'));
    // the module API: only the named stage sticks
    e.setBatch({ stageStuck: 'create' });
    r = await batchCall(p, 'BatchCheckDeviceNames', names(['stuck-3']));
    assert.strictEqual((await waitStage(p, r.json.Data.ApplyId)).Status, 'CHECK_SUCCESS');
    e.setBatch({ stageStuck: false });
    const stats = (await httpAt(p, 'GET', '/_emulator/stats')).json;
    assert.ok(stats.batch && stats.byAction.BatchCheckDeviceNames === 1, 'reset cleared the counters; stats.batch is made again');
  } finally {
    await e.close();
  }
});

test('quota for batch actions: the documented QPS by action name, enforced per action when set, off by default', async () => {
  assert.deepStrictEqual(DOCUMENTED_QPS, { RegisterDevice: 30, QueryDeviceDetail: 50, BatchQueryDeviceDetail: 5, BatchCheckDeviceNames: 10,
    QueryBatchRegisterDeviceStatus: 30, BatchRegisterDeviceWithApplyId: 500, QueryPageByApplyId: 50 });
  const { e, p } = await batchEmulator({ quota: { BatchQueryDeviceDetail: DOCUMENTED_QPS.BatchQueryDeviceDetail } });
  try {
    const codes = [];
    for (let i = 0; i < 7; i++) {
      const r = await batchCall(p, 'BatchQueryDeviceDetail', names(['q-dev']));
      codes.push(r.json.Code || 'ok');
      if (r.json.Code) assert.deepStrictEqual([r.status, r.json.Message], [503, 'Request was denied due to user flow control.']);
    }
    assert.deepStrictEqual(codes, ['ok', 'ok', 'ok', 'ok', 'ok', 'Throttling.User', 'Throttling.User']);
    // another action has its own quota (none here)
    for (let i = 0; i < 7; i++) assert.strictEqual((await batchCall(p, 'BatchCheckDeviceNames', names(['q-other-' + i]))).json.Success, true);
    const s = e.stats();
    assert.deepStrictEqual([s.throttled, s.byCode['Throttling.User'], s.byAction.BatchQueryDeviceDetail], [2, 2, 7]);
    // set over the control API: QueryBatchRegisterDeviceStatus at 2 per second
    await httpAt(p, 'POST', '/_emulator/quota', { body: JSON.stringify({ QueryBatchRegisterDeviceStatus: 2 }) });
    const out = [];
    for (let i = 0; i < 3; i++) out.push((await batchCall(p, 'QueryBatchRegisterDeviceStatus', { ApplyId: '1' })).json.Code);
    assert.deepStrictEqual(out, ['iot.device.DeviceApplyIsNotFound', 'iot.device.DeviceApplyIsNotFound', 'Throttling.User']);
  } finally {
    await e.close();
  }
  const free = await batchEmulator();
  try {
    for (let i = 0; i < 8; i++) assert.strictEqual((await batchCall(free.p, 'BatchQueryDeviceDetail', names(['q-dev']))).json.Success, true);
  } finally {
    await free.e.close();
  }
});

test('run as a process: --check-duration-ms, --create-duration-ms, --stage-stuck, and the batch control calls', async () => {
  const { spawn } = require('child_process');
  const proc = spawn(process.execPath, [require.resolve('./emulator.js'), '--port', '0', '--products', 'a1P',
    '--check-duration-ms', '10', '--create-duration-ms', '15', '--stage-stuck', 'create', '--quota', 'BatchCheckDeviceNames=10'],
  { env: { ...process.env, EMULATOR_ACCESS_KEY_ID: ID, EMULATOR_ACCESS_KEY_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let out = '';
    const p = await new Promise((resolve, reject) => {
      proc.stdout.on('data', (d) => { out += d; const m = /"port":(\d+)/.exec(out); if (m) resolve(Number(m[1])); });
      proc.on('exit', () => reject(new Error('the emulator exited')));
    });
    const view = (await httpAt(p, 'GET', '/_emulator/batch')).json;
    assert.deepStrictEqual([view.checkDurationMs, view.createDurationMs, view.stageStuck], [10, 15, 'create']);
    const r = await batchCall(p, 'BatchCheckDeviceNames', names(['proc-1']));
    const applyId = r.json.Data.ApplyId;
    assert.strictEqual((await waitStage(p, applyId)).Status, 'CHECK_SUCCESS');
    await batchCall(p, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(applyId) });
    await new Promise((res) => setTimeout(res, 60));
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CREATE');
    await httpAt(p, 'POST', '/_emulator/batch', { body: JSON.stringify({ stageStuck: false }) });
    assert.strictEqual((await statusOf(p, applyId)).Status, 'CREATE_SUCCESS');
  } finally {
    await new Promise((resolve) => { proc.on('close', resolve); proc.kill('SIGTERM'); });
  }
});

// ---- strict mode (the default): what arrives must be exactly what was signed ----

// A raw request on a plain socket: what a client library would never let a test send.
function rawRequest(p, text) {
  return new Promise((resolve, reject) => {
    const s = require('net').connect(p, '127.0.0.1', () => s.end(text));
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('end', () => { const i = data.indexOf('\r\n\r\n'); resolve({ status: Number(data.split(' ')[1]), body: JSON.parse(data.slice(i + 4)) }); });
    s.on('error', reject);
  });
}

// A V3 RegisterDevice, signed over rawQuery exactly as given, with the header lines given.
function v3Raw(p, { rawQuery, signedQuery = rawQuery, lines = [], body = '', signContentType = null }) {
  const headers = { host: `127.0.0.1:${p}`, 'x-acs-action': 'RegisterDevice', 'x-acs-version': '2018-01-20', 'x-acs-date': nowV3(),
    'x-acs-signature-nonce': crypto.randomUUID(), 'x-acs-content-sha256': sha256Hex(body) };
  if (signContentType) headers['content-type'] = signContentType;
  const signed = Object.keys(headers).sort();
  const sig = signV3(canonicalRequestV3('POST', '/', signedQuery, headers, signed, headers['x-acs-content-sha256']), SECRET);
  const all = [...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), ...lines,
    `authorization: ACS3-HMAC-SHA256 Credential=${ID},SignedHeaders=${signed.join(';')},Signature=${sig}`, `content-length: ${Buffer.byteLength(body)}`];
  return rawRequest(p, `POST /?${rawQuery} HTTP/1.1\r\n${all.join('\r\n')}\r\nconnection: close\r\n\r\n${body}`);
}

test('strict: duplicate headers, lower-case escapes, unknown parameters and a body of another type are refused; the raw query is what is verified', async () => {
  const { e, p } = await batchEmulator();
  try {
    // accepted: upper-case escapes, signed over the query as sent (a MAC address as DeviceName)
    let r = await v3Raw(p, { rawQuery: 'DeviceName=AA%3ABB%3ACC%40x&ProductKey=a1P' });
    assert.deepStrictEqual([r.status, r.body.Success, r.body.Data.DeviceName], [200, true, 'AA:BB:CC@x']);
    // the same request with lower-case escapes, even signed over exactly those bytes (curl's URL API writes them)
    r = await v3Raw(p, { rawQuery: 'DeviceName=AA%3aBB%3aCC%40y&ProductKey=a1P' });
    assert.deepStrictEqual([r.status, r.body.Code], [400, 'SignatureDoesNotMatch']);
    assert.match(r.body.Message, /lower-case escape/);
    r = await v3Raw(p, { rawQuery: 'DeviceName=AA:BB&ProductKey=a1P' }); // ':' left unescaped
    assert.strictEqual(r.body.Code, 'SignatureDoesNotMatch');
    // a second Content-Type (Node's parser would keep only the first): the gateway joins them
    r = await v3Raw(p, { rawQuery: 'DeviceName=dup-ct-1&ProductKey=a1P', signContentType: 'application/x-www-form-urlencoded',
      lines: ['content-type: application/x-www-form-urlencoded'] });
    assert.deepStrictEqual([r.status, r.body.Code], [400, 'SignatureDoesNotMatch']);
    assert.match(r.body.Message, /content-type sent more than once/);
    // a misspelt parameter, correctly signed
    r = await v3Raw(p, { rawQuery: 'DeviceNmae=dev-typo&ProductKey=a1P' });
    assert.deepStrictEqual([r.status, r.body.Code], [400, 'InvalidParameter.Unknown']);
    // a body that is not a form
    r = await v3Raw(p, { rawQuery: 'DeviceName=dev-json&ProductKey=a1P', body: '{"a":1}', signContentType: 'application/json' });
    assert.deepStrictEqual([r.status, r.body.Code], [400, 'InvalidParameter.ContentType']);
    // a form body in canonical encoding is accepted (with its Content-Type signed)
    r = await v3Raw(p, { rawQuery: 'ProductKey=a1P', body: 'DeviceName=AA%3ADD', signContentType: 'application/x-www-form-urlencoded' });
    assert.deepStrictEqual([r.status, r.body.Data && r.body.Data.DeviceName], [200, 'AA:DD']);
    // what the plugin used to do: signed over upper-case escapes, sent with lower-case ones
    const old = { rawQuery: 'DeviceName=AA%3aBB%3aEE&ProductKey=a1P', signedQuery: 'DeviceName=AA%3ABB%3AEE&ProductKey=a1P' };
    r = await v3Raw(p, old);
    assert.deepStrictEqual([r.status, r.body.Code], [400, 'SignatureDoesNotMatch']);
    const st = e.stats().strict;
    assert.deepStrictEqual(st, { queryNotCanonical: 3, duplicateHeader: 1, unknownParameter: 1, contentType: 1 });
    // not strict (decode, encode again, then verify) hid that defect: the reason strict is the default
    e.setStrict(false);
    r = await v3Raw(p, old);
    assert.strictEqual(r.body.Success, true);
  } finally {
    await e.close();
  }
});
