'use strict';
// What a device hears when the platform says no, breaks, throttles or hangs.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');

const { withEnv } = h;

test('a wrong AccessKey secret answers platform_auth (the emulator rejects the signature), V3 and signature 1.0', async () => {
  for (const version of ['v3', 'v1']) {
    await withEnv({ pluginOptions: { signature_version: version }, credentialsOverride: { ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'wrong-' + Date.now() } }, async (env) => {
      const r = await env.rr('dev-auth1');
      assert.strictEqual(r.reply.success, false);
      assert.strictEqual(r.reply.code, 'platform_auth');
      assert.match(r.reply.message, /SignatureDoesNotMatch/);
      assert.strictEqual(r.reply.retryAfter, undefined);
      assert.strictEqual(env.emu.stats().signatureFailures, 1);
      assert.strictEqual(env.emu.stats().bySignature[version], 1, version);
      assert.strictEqual(env.emu.deviceCount(), 0);
      // named as what it is (a wrong secret, or a defect of ours), never a missing RAM permission:
      // in the start-up check, and in the log once
      const want = /platform signature failing: RegisterDevice \(last: RegisterDevice answered SignatureDoesNotMatch\).*not a RAM permission/;
      for (const deadline = Date.now() + 5000; !want.test(env.broker.log()) && Date.now() < deadline;) await h.sleep(50);
      assert.match(env.broker.log(), want);
      assert.match(env.broker.log(), /platform check: refused: SignatureDoesNotMatch: the AccessKey secret does not belong to the AccessKey id.*not a RAM permission/);
      assert.doesNotMatch(env.broker.log(), /grant the RAM/);
      // the credentials were found, never said to be valid or accepted: the platform refused them
      await h.waitForLog(env, /platform credentials \(environment, access key\): the platform refused them: SignatureDoesNotMatch/, 5000);
      assert.match(env.broker.log(), /platform credentials \(environment, access key\): found; the platform has not yet answered/);
      assert.doesNotMatch(env.broker.log(), /platform credentials.*\b(valid|accepted)\b|accepts these credentials/);
      assert.strictEqual(env.broker.log().split('\n').filter((l) => /platform signature failing/.test(l)).length, 1, 'once per change');
    });
  }
});

test('signature_version: V3 by default (Authorization and x-acs-* headers, parameters in the query), v1 when configured', async () => {
  await withEnv({}, async (env) => {
    const r = await env.rr('dev-sig-v3');
    assert.strictEqual(r.reply.success, true);
    const s = env.emu.stats();
    assert.deepStrictEqual(s.bySignature, { v1: 0, v3: 1 });
    // no body, no Content-Type (as the SDK): host and the x-acs-* headers only
    assert.strictEqual(s.lastV3.signedHeaders, 'host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version');
    assert.deepStrictEqual(s.lastV3.query, ['DeviceName', 'ProductKey']);
    assert.strictEqual(s.lastV3.bodyBytes, 0);
  });
  await withEnv({ pluginOptions: { signature_version: 'v1' } }, async (env) => {
    const r = await env.rr('dev-sig-v1');
    assert.strictEqual(r.reply.success, true);
    assert.deepStrictEqual(env.emu.stats().bySignature, { v1: 1, v3: 0 });
    assert.strictEqual(env.emu.stats().lastV3, null);
  });
});

test('STS credentials reach the platform with either signature: the token is checked, never logged', async () => {
  const id = 'STS.' + Date.now().toString(36);
  const secretValue = 'sts-secret-' + Date.now().toString(36);
  const token = 'sts-token/' + Date.now().toString(36) + '+=';
  for (const version of ['v3', 'v1']) {
    await withEnv({ pluginOptions: { signature_version: version }, emulator: { accessKeys: { [id]: { secret: secretValue, securityToken: token } } },
      credentialsOverride: { ALIBABA_CLOUD_ACCESS_KEY_ID: id, ALIBABA_CLOUD_ACCESS_KEY_SECRET: secretValue, ALIBABA_CLOUD_SECURITY_TOKEN: token } }, async (env) => {
      const r = await env.rr('dev-sts-' + version);
      assert.strictEqual(r.reply.success, true, version);
      assert.strictEqual(env.emu.stats().bySignature[version], 1);
      if (version === 'v3') assert.match(env.emu.stats().lastV3.signedHeaders, /x-acs-accesskey-id;.*x-acs-security-token;/);
    });
  }
});

test('an unknown AccessKeyId answers platform_auth', async () => {
  await withEnv({ credentialsOverride: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAIunknown' }, pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
    const r = await env.rr('dev-auth2');
    assert.strictEqual(r.reply.code, 'platform_auth');
    assert.match(r.reply.message, /InvalidAccessKeyId.NotFound/);
    const [line] = await h.waitForAudit(env, (l) => l.deviceId === 'dev-auth2');
    assert.deepStrictEqual([line.code, line.reason, line.platformCode], ['platform_auth', 'platform_credentials_rejected', 'InvalidAccessKeyId.NotFound']);
  });
});

test('failures that persist past request_deadline_ms answer platform_unavailable with retryAfter', async () => {
  await withEnv({ pluginOptions: { request_deadline_ms: 1500, audit_file: '$DIR/audit.log' } }, async (env) => {
    const cases = [
      [{ kind: '5xx', status: 503 }, /kept answering ServiceUnavailable/],
      [{ kind: '5xx', status: 500, code: 'InternalError' }, /kept answering InternalError/],
      [{ kind: 'garbage' }, /kept answering without a usable answer/],
      [{ kind: 'drop' }, /could not be reached|Server returned nothing|Failure when receiving/],
      [{ kind: 'throttle', status: 400 }, /kept answering Throttling.User/],
    ];
    let i = 0;
    for (const [fault, message] of cases) {
      const id = `dev-fail${i++}`;
      env.emu.clearFaults();
      env.emu.addFaults({ ...fault, count: 100000 });
      const before = env.emu.stats().requests;
      const t0 = Date.now();
      const r = await env.rr(id);
      const took = Date.now() - t0;
      assert.strictEqual(r.reply && r.reply.code, 'platform_unavailable', `code after ${fault.kind}`);
      assert.match(r.reply.message, message);
      assert.ok(Number.isInteger(r.reply.retryAfter) && r.reply.retryAfter > 0, 'retryAfter is a positive integer');
      assert.ok(env.emu.stats().requests - before >= 2, `${fault.kind} was retried`);
      assert.ok(took >= 1000 && took < 3500, `gave up at the deadline, after ${took} ms`);
    }
    env.emu.clearFaults();
    // the audit line says it was the retries that ran out, and what the platform last answered
    const audited = h.auditLines(env).filter((l) => /^dev-fail/.test(l.deviceId));
    assert.deepStrictEqual(audited.map((l) => [l.deviceId, l.code, l.reason, l.platformCode]), [
      ['dev-fail0', 'platform_unavailable', 'platform_retries_exhausted', 'ServiceUnavailable'],
      ['dev-fail1', 'platform_unavailable', 'platform_retries_exhausted', 'InternalError'],
      ['dev-fail2', 'platform_unavailable', 'platform_retries_exhausted', null],
      ['dev-fail3', 'platform_unavailable', 'platform_retries_exhausted', null],
      ['dev-fail4', 'platform_unavailable', 'platform_retries_exhausted', 'Throttling.User'],
    ]);
    // and the broker keeps serving: the next request goes through
    const ok = await env.rr('dev-after');
    assert.strictEqual(ok.reply.success, true);
  });
});

test('a platform slower than http_timeout_ms until the deadline answers platform_unavailable', async () => {
  await withEnv({ pluginOptions: { http_timeout_ms: 300, request_deadline_ms: 1000 } }, async (env) => {
    env.emu.setLatency(5000);
    const t0 = Date.now();
    const r = await env.rr('dev-slow1');
    assert.strictEqual(r.reply.code, 'platform_unavailable');
    assert.match(r.reply.message, /[Tt]imeout/);
    assert.ok(Date.now() - t0 < 2500, 'answered at the deadline, not when the platform did');
  });
});

test('signature, permission and not-found answers are not retried', async () => {
  await withEnv({ credentialsOverride: { ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'wrong-' + Date.now() } }, async (env) => {
    await env.rr('dev-noretry1');
    assert.strictEqual(env.emu.stats().requests, 1, 'one call for a signature failure');
  });
  await withEnv({ pluginOptions: { product_key: 'a1NoSuchProduct' } }, async (env) => {
    await env.rr('dev-noretry2');
    assert.strictEqual(env.emu.stats().requests, 1, 'one call for a missing product');
  });
});

test('a business error passes the platform code through as platform_error', async () => {
  await withEnv({ pluginOptions: { product_key: 'a1NoSuchProduct', audit_file: '$DIR/audit.log' } }, async (env) => {
    const r = await env.rr('dev-biz1');
    assert.strictEqual(r.reply.code, 'platform_error');
    assert.match(r.reply.message, /iot\.prod\.NotExistedProduct/);
    assert.strictEqual(r.reply.retryAfter, undefined);
    const [line] = await h.waitForAudit(env, (l) => l.deviceId === 'dev-biz1');
    assert.deepStrictEqual([line.code, line.reason, line.platformCode], ['platform_error', 'platform_refused', 'iot.prod.NotExistedProduct']);
  });
});

test('iot_instance_id is sent as IotInstanceId', async () => {
  await withEnv({ emulator: { iotInstanceId: 'iot-cn-test01' }, pluginOptions: { iot_instance_id: 'iot-cn-test01' } }, async (env) => {
    const r = await env.rr('dev-inst1');
    assert.strictEqual(r.reply.success, true);
  });
  await withEnv({ emulator: { iotInstanceId: 'iot-cn-test01' } }, async (env) => {
    const r = await env.rr('dev-inst2');
    assert.strictEqual(r.reply.code, 'platform_error');
    assert.match(r.reply.message, /InstanceNotFound/);
  });
});

test('credentials from a 0600 credentials_file work', async () => {
  await withEnv({ credentials: 'file' }, async (env) => {
    const r = await env.rr('dev-file1');
    assert.strictEqual(r.reply.success, true);
    assert.match(env.broker.log(), /credentials from credentials file/);
  });
});
