'use strict';
// What a device hears when the platform says no, breaks, throttles or hangs.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');

const { withEnv } = h;

test('a wrong AccessKey secret answers platform_auth (the emulator rejects the signature)', async () => {
  await withEnv({ credentialsOverride: { ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'wrong-' + Date.now() } }, async (env) => {
    const r = await env.rr('dev-auth1');
    assert.strictEqual(r.reply.success, false);
    assert.strictEqual(r.reply.code, 'platform_auth');
    assert.match(r.reply.message, /SignatureDoesNotMatch/);
    assert.strictEqual(r.reply.retryAfter, undefined);
    assert.strictEqual(env.emu.stats().signatureFailures, 1);
    assert.strictEqual(env.emu.deviceCount(), 0);
  });
});

test('an unknown AccessKeyId answers platform_auth', async () => {
  await withEnv({ credentialsOverride: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAIunknown' } }, async (env) => {
    const r = await env.rr('dev-auth2');
    assert.strictEqual(r.reply.code, 'platform_auth');
    assert.match(r.reply.message, /InvalidAccessKeyId.NotFound/);
  });
});

test('failures that persist past request_deadline_ms answer platform_unavailable with retryAfter', async () => {
  await withEnv({ pluginOptions: { request_deadline_ms: 1500 } }, async (env) => {
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
  await withEnv({ pluginOptions: { product_key: 'a1NoSuchProduct' } }, async (env) => {
    const r = await env.rr('dev-biz1');
    assert.strictEqual(r.reply.code, 'platform_error');
    assert.match(r.reply.message, /iot\.prod\.NotExistedProduct/);
    assert.strictEqual(r.reply.retryAfter, undefined);
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
