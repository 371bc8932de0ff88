'use strict';
// Alibaba's own SDKs (installed in bench/seed by the test command) sign their requests; the
// emulator must accept them and refuse them with a wrong secret. This pins the emulator's
// signature checks to the real clients', not only to ours: signature 1.0 with @alicloud/pop-core
// (GET and POST), V3 (ACS3-HMAC-SHA256) with the IoT Platform's generated client,
// @alicloud/iot20180120 on @alicloud/openapi-client, which signs V3 by default.
const test = require('node:test');
const assert = require('assert');
const path = require('path');
const { createEmulator } = require('./emulator.js');

const SEED = path.join(__dirname, '../../bench/seed/node_modules');
const RPCClient = require(path.join(SEED, '@alicloud/pop-core')).RPCClient;
const Iot = require(path.join(SEED, '@alicloud/iot20180120'));
const { Config } = require(path.join(SEED, '@alicloud/openapi-client'));

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

test('the official iot20180120 client (V3) passes the emulator\'s gateway checks, and a wrong secret does not', async () => {
  const emu = createEmulator({ accessKeys: { LTAIsdk3: { secret: 'sdk-v3-secret-value' } }, products: ['a1P'] });
  const port = await emu.listen(0);
  // what reaches the emulator: header names, path and body size (never values)
  const seen = [];
  emu.server.on('request', (req) => {
    let bytes = 0;
    req.on('data', (d) => { bytes += d.length; });
    req.on('end', () => seen.push({ method: req.method, path: req.url.split('?')[0], query: new URL(req.url, 'http://x').searchParams,
      headers: req.headers, bytes }));
  });
  const client = (secret) => new Iot.default(new Config({ accessKeyId: 'LTAIsdk3', accessKeySecret: secret,
    endpoint: `127.0.0.1:${port}`, protocol: 'http', regionId: 'cn-shanghai' }));
  try {
    const r = await client('sdk-v3-secret-value').registerDevice(new Iot.RegisterDeviceRequest({ productKey: 'a1P', deviceName: 'dev-sdk-v3' }));
    assert.strictEqual(r.body.success, true);
    assert.strictEqual(r.body.data.deviceName, 'dev-sdk-v3');
    const q = await client('sdk-v3-secret-value').queryDeviceDetail(new Iot.QueryDeviceDetailRequest({ productKey: 'a1P', deviceName: 'dev-sdk-v3' }));
    assert.strictEqual(q.body.success, true);
    assert.strictEqual(q.body.data.deviceSecret, emu.device('a1P', 'dev-sdk-v3').DeviceSecret);
    assert.strictEqual(q.body.data.status, 'UNACTIVE');
    await assert.rejects(client('wrong').queryDeviceDetail(new Iot.QueryDeviceDetailRequest({ productKey: 'a1P', deviceName: 'dev-sdk-v3' })),
      (e) => e.code === 'SignatureDoesNotMatch');

    // it really signed V3: an ACS3-HMAC-SHA256 Authorization over host and the x-acs-* headers,
    // no signature 1.0 parameters; POST to / with the parameters in the query and no body
    const stats = emu.stats();
    assert.deepStrictEqual(stats.bySignature, { v1: 0, v3: 3 });
    assert.strictEqual(stats.signatureFailures, 1);
    assert.strictEqual(seen.length, 3);
    for (const s of seen) {
      assert.match(s.headers.authorization, /^ACS3-HMAC-SHA256 Credential=LTAIsdk3,SignedHeaders=[a-z0-9;-]+,Signature=[0-9a-f]{64}$/);
      const signed = /SignedHeaders=([^,]+)/.exec(s.headers.authorization)[1].split(';');
      for (const h of ['host', 'x-acs-action', 'x-acs-content-sha256', 'x-acs-date', 'x-acs-signature-nonce', 'x-acs-version']) {
        assert.ok(signed.includes(h), h + ' signed');
      }
      assert.strictEqual(s.headers['x-acs-version'], '2018-01-20');
      assert.match(s.headers['x-acs-date'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.strictEqual(s.method, 'POST');
      assert.strictEqual(s.path, '/');
      assert.strictEqual(s.bytes, 0);
      assert.strictEqual(s.headers['x-acs-content-sha256'], 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
      assert.strictEqual(s.query.get('ProductKey'), 'a1P');
      for (const v1 of ['Signature', 'SignatureMethod', 'SignatureVersion', 'SignatureNonce', 'AccessKeyId', 'Timestamp', 'Action']) {
        assert.strictEqual(s.query.get(v1), null, v1 + ' is a signature 1.0 parameter');
      }
    }
    assert.deepStrictEqual(seen.map((s) => s.headers['x-acs-action']), ['RegisterDevice', 'QueryDeviceDetail', 'QueryDeviceDetail']);
  } finally {
    await emu.close();
  }
});

test('the official iot20180120 client with STS credentials: token and key id in signed x-acs-* headers', async () => {
  const emu = createEmulator({ accessKeys: { STSsdk3: { secret: 'sts-secret-value', securityToken: 'sts-token-value' } }, products: ['a1P'] });
  const port = await emu.listen(0);
  const client = (token) => new Iot.default(new Config({ accessKeyId: 'STSsdk3', accessKeySecret: 'sts-secret-value', securityToken: token,
    endpoint: `127.0.0.1:${port}`, protocol: 'http' }));
  try {
    const r = await client('sts-token-value').registerDevice(new Iot.RegisterDeviceRequest({ productKey: 'a1P', deviceName: 'dev-sdk-sts' }));
    assert.strictEqual(r.body.success, true);
    assert.match(emu.stats().lastV3.signedHeaders, /x-acs-accesskey-id;.*x-acs-security-token;/);
    await assert.rejects(client('another-token').registerDevice(new Iot.RegisterDeviceRequest({ productKey: 'a1P', deviceName: 'dev-sdk-sts2' })),
      (e) => e.code === 'InvalidSecurityToken.Mismatch');
  } finally {
    await emu.close();
  }
});

test('the official iot20180120 client runs the whole batch flow and gets the shapes its models expect', async () => {
  const emu = createEmulator({ accessKeys: { LTAIbatch: { secret: 'sdk-batch-secret' } }, products: ['a1P'], checkDurationMs: 50, createDurationMs: 80 });
  const port = await emu.listen(0);
  const client = new Iot.default(new Config({ accessKeyId: 'LTAIbatch', accessKeySecret: 'sdk-batch-secret', endpoint: `127.0.0.1:${port}`,
    protocol: 'http', regionId: 'cn-shanghai' }));
  // polls QueryBatchRegisterDeviceStatus while a stage runs; returns the body's data (the SDK's model)
  const settle = async (applyId) => {
    for (let i = 0; i < 250; i++) {
      const r = await client.queryBatchRegisterDeviceStatus(new Iot.QueryBatchRegisterDeviceStatusRequest({ productKey: 'a1P', applyId }));
      assert.strictEqual(r.body.success, true);
      if (r.body.data.status !== 'CHECK' && r.body.data.status !== 'CREATE') return r.body.data;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error('stage did not end');
  };
  try {
    // a check that fails: DeviceName.N (a name that exists, one malformed)
    emu.preRegister('a1P', 'sdk-batch-exists');
    let c = await client.batchCheckDeviceNames(new Iot.BatchCheckDeviceNamesRequest({ productKey: 'a1P', deviceName: ['sdk-batch-exists', 'ab', 'sdk-batch-ok'] }));
    assert.deepStrictEqual(emu.stats().lastV3.query.filter((k) => k.startsWith('DeviceName')), ['DeviceName.1', 'DeviceName.2', 'DeviceName.3']);
    assert.strictEqual(c.body.success, true);
    assert.strictEqual(typeof c.body.data.applyId, 'number');
    assert.deepStrictEqual(c.body.data.invalidDeviceNameList.invalidDeviceName, ['ab']);
    let d = await settle(c.body.data.applyId);
    assert.strictEqual(d.status, 'CHECK_FAILED');
    assert.deepStrictEqual(d.invalidList.name, ['sdk-batch-exists', 'ab']);
    assert.deepStrictEqual(d.validList.name, ['sdk-batch-ok']);
    await assert.rejects(client.batchRegisterDeviceWithApplyId(new Iot.BatchRegisterDeviceWithApplyIdRequest({ productKey: 'a1P', applyId: c.body.data.applyId }))
      .then((r) => { if (!r.body.success) { const e = new Error(r.body.errorMessage); e.code = r.body.code; throw e; } }),
    (e) => e.code === 'iot.device.IncorrentDeviceApplyInfo');

    // the whole flow: DeviceNameList.N.DeviceName (+ DeviceNickname), check, register, pages, batch query
    const list = Array.from({ length: 60 }, (_, i) => new Iot.BatchCheckDeviceNamesRequestDeviceNameList({ deviceName: `sdk-batch-${i + 1}`,
      deviceNickname: i === 0 ? 'Lamp_one' : undefined }));
    c = await client.batchCheckDeviceNames(new Iot.BatchCheckDeviceNamesRequest({ productKey: 'a1P', deviceNameList: list }));
    const listKeys = emu.stats().lastV3.query.filter((k) => k.startsWith('DeviceNameList.1.'));
    assert.deepStrictEqual(listKeys, ['DeviceNameList.1.DeviceName', 'DeviceNameList.1.DeviceNickname'], 'how the SDK serialises the list');
    const applyId = c.body.data.applyId;
    assert.ok(Number.isSafeInteger(applyId));
    d = await settle(applyId);
    assert.deepStrictEqual([d.status, d.validList.name, d.invalidList.name], ['CHECK_SUCCESS', [], []]);
    const reg = await client.batchRegisterDeviceWithApplyId(new Iot.BatchRegisterDeviceWithApplyIdRequest({ productKey: 'a1P', applyId }));
    assert.deepStrictEqual([reg.body.success, reg.body.data.applyId], [true, applyId]);
    d = await settle(applyId);
    assert.strictEqual(d.status, 'CREATE_SUCCESS');

    const pages = [];
    for (const currentPage of [1, 2]) {
      const pg = await client.queryPageByApplyId(new Iot.QueryPageByApplyIdRequest({ applyId, pageSize: 50, currentPage }));
      assert.strictEqual(pg.body.success, true);
      assert.deepStrictEqual([pg.body.page, pg.body.pageSize, pg.body.pageCount, pg.body.total], [currentPage, 50, 2, 60]);
      for (const info of pg.body.applyDeviceList.applyDeviceInfo) {
        const dev = emu.device('a1P', info.deviceName);
        assert.deepStrictEqual([info.deviceSecret, info.iotId], [dev.DeviceSecret, dev.IotId]);
        assert.strictEqual(typeof info.deviceId, 'string');
        pages.push(info.deviceName);
      }
    }
    assert.deepStrictEqual(pages, list.map((x) => x.deviceName));

    emu.setDeviceStatus('a1P', 'sdk-batch-2', 'ONLINE');
    const q = await client.batchQueryDeviceDetail(new Iot.BatchQueryDeviceDetailRequest({ productKey: 'a1P', deviceName: ['sdk-batch-1', 'sdk-batch-nobody', 'sdk-batch-2'] }));
    assert.strictEqual(q.body.success, true);
    const rows = q.body.data.data;
    assert.deepStrictEqual(rows.map((x) => [x.deviceName, x.status, x.nickname]), [['sdk-batch-1', 'UNACTIVE', 'Lamp_one'], ['sdk-batch-2', 'ONLINE', '']]);
    for (const x of rows) {
      const dev = emu.device('a1P', x.deviceName);
      assert.deepStrictEqual([x.deviceSecret, x.iotId, x.productKey, x.nodeType, x.region], [dev.DeviceSecret, dev.IotId, 'a1P', 0, 'cn-shanghai']);
      assert.ok(x.gmtCreate && x.utcCreate && x.productName !== undefined);
    }
    // the same device through QueryDeviceDetail: an ordinary device
    const one = await client.queryDeviceDetail(new Iot.QueryDeviceDetailRequest({ productKey: 'a1P', deviceName: 'sdk-batch-60' }));
    assert.deepStrictEqual([one.body.data.status, one.body.data.deviceSecret], ['UNACTIVE', emu.device('a1P', 'sdk-batch-60').DeviceSecret]);

    const stats = emu.stats();
    assert.strictEqual(stats.bySignature.v1, 0);
    assert.deepStrictEqual([stats.byAction.BatchCheckDeviceNames, stats.byAction.BatchRegisterDeviceWithApplyId, stats.byAction.QueryPageByApplyId,
      stats.byAction.BatchQueryDeviceDetail], [2, 2, 2, 1]);
    assert.strictEqual(stats.batch.devicesCreated, 60);
  } finally {
    await emu.close();
  }
});
